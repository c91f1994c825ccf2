//! gRPC through the proxy, end to end against the real `twinpeak` binary: a gRPC echo service
//! (hyper over h2c, gRPC framing and trailers written here) answers unary and server-streaming
//! calls through an h2c listener; a shadow whose unary reply changes one field is reported at
//! that field's number path, one that fails with `grpc-status` 13 as a status finding, and
//! streaming calls are counted and not compared.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

use common::{eventually, Proxy};

const UNARY: &str = "/echo.Echo/Say";
const STREAM: &str = "/echo.Echo/SayMany";
const FAILING: &str = "/echo.Echo/Fail";

/// How the echo service answers: as the legacy one, or as a rebuilt one with differences.
#[derive(Clone, Copy)]
enum Flavour {
    Legacy,
    /// Field 2 of the unary reply is one more, and `Fail` fails with grpc-status 13.
    Changed,
}

/// An `Echo` message: field 1 the text, field 2 a count (protobuf wire format by hand).
fn echo_message(text: &str, count: u8) -> Vec<u8> {
    let mut message = vec![0x0a, u8::try_from(text.len()).expect("short text")];
    message.extend_from_slice(text.as_bytes());
    message.extend_from_slice(&[0x10, count]);
    message
}

/// One gRPC length-prefixed message (uncompressed).
fn framed(message: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.extend_from_slice(&[0]);
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(message);
    frame.freeze()
}

/// The text of the first message in a gRPC request body.
fn request_text(body: &[u8]) -> String {
    let message = body.get(5..).unwrap_or_default();
    let len = usize::from(*message.get(1).unwrap_or(&0));
    String::from_utf8_lossy(message.get(2..2 + len).unwrap_or_default()).into_owned()
}

fn trailers(status: &str, message: Option<&str>) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", status.parse().unwrap());
    if let Some(message) = message {
        trailers.insert("grpc-message", message.parse().unwrap());
    }
    trailers
}

type Body = BoxBody<Bytes, Infallible>;

/// A gRPC answer: the messages, then the trailers.
fn grpc_answer(messages: Vec<Bytes>, trailers: HeaderMap) -> Response<Body> {
    let frames = messages
        .into_iter()
        .map(|m| Ok::<_, Infallible>(Frame::data(m)))
        .chain(std::iter::once(Ok(Frame::trailers(trailers))));
    Response::builder()
        .header("content-type", "application/grpc")
        .body(StreamBody::new(futures_util::stream::iter(frames)).boxed())
        .unwrap()
}

async fn answer(flavour: Flavour, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let text = request_text(&body.unwrap_or_default());
    let changed = matches!(flavour, Flavour::Changed);
    Ok(match path.as_str() {
        UNARY => grpc_answer(
            vec![framed(&echo_message(&text, 1 + u8::from(changed)))],
            trailers("0", None),
        ),
        STREAM => grpc_answer(
            (1..=3).map(|n| framed(&echo_message(&text, n))).collect(),
            trailers("0", None),
        ),
        FAILING if changed => Response::builder()
            .header("content-type", "application/grpc")
            .header("grpc-status", "13")
            .header("grpc-message", "boom")
            .body(Full::new(Bytes::new()).boxed())
            .unwrap(),
        FAILING => grpc_answer(vec![framed(&echo_message(&text, 1))], trailers("0", None)),
        _ => grpc_answer(Vec::new(), trailers("12", Some("unknown method"))),
    })
}

/// The echo service on a loopback port, speaking HTTP/2 only (h2c).
async fn echo_service(flavour: Flavour) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| answer(flavour, req));
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

/// What a gRPC call through the proxy came back with.
struct Answered {
    messages: Vec<Vec<u8>>,
    trailers: HeaderMap,
}

/// One gRPC call over h2c to `addr`.
async fn call(addr: SocketAddr, path: &str, text: &str) -> Answered {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(framed(&echo_message(text, 0))))
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .expect("an answer in time")
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let collected = res.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let mut body = &collected.to_bytes()[..];
    let mut messages = Vec::new();
    while body.len() >= 5 && messages.len() < 16 {
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        messages.push(body[5..5 + len].to_vec());
        body = &body[5 + len..];
    }
    assert!(body.is_empty(), "whole messages only");
    Answered { messages, trailers }
}

/// The proxy on an h2c listener before the legacy echo service, mirroring every call to a
/// changed one.
async fn proxy_before_echo_services() -> Proxy {
    let (primary, shadow) = (
        echo_service(Flavour::Legacy).await,
        echo_service(Flavour::Changed).await,
    );
    Proxy::start_listening(
        &|addr| format!("[{{address: {addr}, http2: true}}]"),
        "",
        &format!(
            "primary: {{url: http://{primary}, http2: true}}\n\
             shadow: {{url: http://{shadow}, http2: true}}\n\
             mirror: {{percent: 100, methods: [POST]}}\n\
             routes: [\"{UNARY}\", \"{STREAM}\", \"{FAILING}\"]\n"
        ),
    )
    .await
}

fn grpc_status(answered: &Answered) -> Option<&str> {
    answered
        .trailers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn unary_and_streaming_calls_answer_through_the_proxy_and_the_shadow_is_compared() {
    let proxy = proxy_before_echo_services().await;

    let unary = call(proxy.addr, UNARY, "hello").await;
    assert_eq!(unary.messages, vec![echo_message("hello", 1)]);
    assert_eq!(grpc_status(&unary), Some("0"), "{}", proxy.log_text());

    let streamed = call(proxy.addr, STREAM, "many").await;
    let expected: Vec<_> = (1..=3).map(|n| echo_message("many", n)).collect();
    assert_eq!(streamed.messages, expected);
    assert_eq!(grpc_status(&streamed), Some("0"));

    let failing = call(proxy.addr, FAILING, "oops").await;
    assert_eq!(
        grpc_status(&failing),
        Some("0"),
        "the client sees the primary"
    );

    let compared = |diffs: &serde_json::Value, route: &str| {
        diffs["routes"][route]["compared"].as_u64().unwrap_or(0)
    };
    let settled = eventually(Duration::from_secs(10), || async {
        let diffs = proxy.admin_json("/api/v1/diffs").await;
        let status = proxy.admin_json("/api/v1/status").await;
        compared(&diffs, UNARY) == 1
            && compared(&diffs, FAILING) == 1
            && status["counters"]["compared"]["streaming"].as_u64() == Some(1)
    })
    .await;
    let diffs = proxy.admin_json("/api/v1/diffs").await;
    assert!(
        settled,
        "{diffs}\n{}",
        proxy.admin_json("/api/v1/status").await
    );

    let fields = |route: &str| -> Vec<(String, String)> {
        diffs["routes"][route]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["path"].as_str().unwrap().to_owned(),
                    f["kind"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        fields(UNARY),
        vec![("$.2".to_owned(), "value_changed".to_owned())],
        "{diffs}"
    );
    let failed = fields(FAILING);
    assert!(
        failed.contains(&("grpc-status".to_owned(), "status".to_owned())),
        "{diffs}"
    );
    assert!(
        failed.contains(&("grpc-message".to_owned(), "header".to_owned())),
        "{diffs}"
    );
    assert_eq!(
        compared(&diffs, STREAM),
        0,
        "streaming calls are not compared"
    );
    let metrics = proxy.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("twinpeak_compared_total")
                && l.contains("result=\"streaming\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
}
