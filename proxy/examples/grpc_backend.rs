//! A small gRPC echo backend for the benchmarks in `bench/`: HTTP/2 with prior knowledge (h2c),
//! every request answered, whatever its path, with one gRPC message (the request's first message
//! with field 2 set to `--count`) and the trailer `grpc-status: 0`. Two of them with different
//! `--count` values make a primary and a shadow that differ at `$.2`.
//!
//! ```text
//! cargo run --release -p twinpeak-proxy --example grpc_backend -- --listen 127.0.0.1:9001 [--count 1]
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

const USAGE: &str = "usage: grpc_backend --listen ADDR [--count N]

  --listen ADDR   address to listen on, e.g. 127.0.0.1:9001 (required)
  --count N       value of field 2 in every answer (0 to 127, default 1)";

/// Most request bytes echoed; the rest of a larger first message is left out.
const MAX_ECHOED_BYTES: usize = 64 * 1024;

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(SocketAddr, u8), String> {
    let (mut listen, mut count) = (None, 1u8);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => {
                let text = value()?;
                listen = Some(
                    text.parse()
                        .map_err(|e| format!("--listen {text:?}: {e}"))?,
                );
            }
            "--count" => {
                let text = value()?;
                count = text
                    .parse()
                    .ok()
                    .filter(|n| *n < 0x80)
                    .ok_or_else(|| format!("--count {text:?}: a number from 0 to 127"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((listen.ok_or("--listen is required")?, count))
}

/// The answer's one message: the request body's bytes after the first message prefix (up to
/// [`MAX_ECHOED_BYTES`]) followed by field 2 = `count`.
fn answer_body(request: &[u8], count: u8) -> Bytes {
    let echoed = request.get(5..).unwrap_or_default();
    let echoed = &echoed[..echoed.len().min(MAX_ECHOED_BYTES)];
    let message_len = echoed.len() + 2;
    let mut body = BytesMut::with_capacity(5 + message_len);
    body.put_u8(0);
    body.put_u32(u32::try_from(message_len).unwrap_or(u32::MAX));
    body.put_slice(echoed);
    body.put_slice(&[0x10, count]);
    body.freeze()
}

async fn answer(
    req: Request<Incoming>,
    count: u8,
) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    let request = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().expect("a valid value"));
    let frames = [
        Ok(Frame::data(answer_body(&request, count))),
        Ok(Frame::trailers(trailers)),
    ];
    let body = StreamBody::new(futures_util::stream::iter(frames)).boxed();
    let mut response = Response::new(body);
    response.headers_mut().insert(
        "content-type",
        "application/grpc".parse().expect("a valid value"),
    );
    Ok(response)
}

#[tokio::main]
async fn main() -> ExitCode {
    let (listen, count) = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("grpc_backend: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("grpc_backend: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(req, count));
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}
