//! A minimal HTTP/1 client over loopback for the testbed's integration tests.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use twinpeak_testbed::{Build, Testbed};

/// Longest any one exchange may take before the test fails.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(60);

/// An answer, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON; panics (failing the test) when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `error` message of an error answer, checking its shape.
    pub fn error(&self) -> String {
        let json = self.json();
        let object = json.as_object().expect("an error is an object");
        assert_eq!(object.len(), 1, "{json}");
        object["error"]
            .as_str()
            .expect("error is a string")
            .to_string()
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Starts a testbed on a free loopback port with a temporary database.
pub async fn start(build: Build) -> Testbed {
    Testbed::start(build, "127.0.0.1:0".parse().unwrap(), None)
        .await
        .expect("testbed starts")
}

/// Sends one request on a new connection.
pub async fn send(addr: SocketAddr, method: Method, path: &str, body: Option<&[u8]>) -> Reply {
    let exchange = async {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string());
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let body = Full::new(Bytes::copy_from_slice(body.unwrap_or_default()));
        let response = sender
            .send_request(request.body(body).unwrap())
            .await
            .expect("response");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    };
    tokio::time::timeout(EXCHANGE_LIMIT, exchange)
        .await
        .expect("exchange finishes in time")
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, Method::GET, path, None).await
}

pub async fn post(addr: SocketAddr, path: &str, body: &Value) -> Reply {
    let body = serde_json::to_vec(body).unwrap();
    send(addr, Method::POST, path, Some(&body)).await
}

/// Writes `raw` bytes as the request and reads until the server closes or a limit passes.
pub async fn raw(addr: SocketAddr, raw: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(raw).await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// `days` days from today, as `YYYY-MM-DD`.
pub fn day(days: i64) -> String {
    (chrono::Local::now().date_naive() + chrono::Duration::days(days)).to_string()
}

/// A booking body.
pub fn booking(partner_id: u32, service: &str, slot: &str, customer: &str) -> Value {
    serde_json::json!({
        "partner_id": partner_id,
        "service": service,
        "slot": slot,
        "customer": customer,
    })
}

/// The search results for `service` in `city` on `addr`: `[{"id", "name", "price", ...}]`.
pub async fn offers(addr: SocketAddr, city: &str, service: &str) -> Vec<Value> {
    let reply = get(addr, &format!("/partners?city={city}&service={service}")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["partners"].as_array().unwrap().clone()
}

/// The id of the best-rated partner offering `service` in `city`.
pub async fn partner_offering(addr: SocketAddr, city: &str, service: &str) -> u32 {
    let offers = offers(addr, city, service).await;
    offers[0]["id"].as_u64().unwrap() as u32
}
