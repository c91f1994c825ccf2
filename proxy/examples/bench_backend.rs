//! A small, fast HTTP/1.1 backend for the benchmarks in `bench/`.
//!
//! It answers every request, whatever the method or path, with a fixed `200` body, so that what the
//! benchmark measures is the proxy in front of it rather than the backend. `--delay-ms` turns it into
//! a slow backend (used as the slow shadow), `--json` makes it answer a JSON object like an API would.
//!
//! It counts the requests it answers; a request for `/__served` gets the count (itself included) in
//! an `x-bench-served` header, which is how `bench/run.sh` checks that a shadow received its copies.
//!
//! ```text
//! cargo run --release -p twinpeak-proxy --example bench_backend -- \
//!     --listen 127.0.0.1:9001 [--delay-ms 0] [--body-bytes 64] [--json]
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const USAGE: &str = "usage: bench_backend --listen ADDR [--delay-ms N] [--body-bytes N] [--json]

  --listen ADDR     address to listen on, e.g. 127.0.0.1:9001 (required)
  --delay-ms N      sleep N milliseconds before answering (default 0)
  --body-bytes N    size of the 200 body in bytes (default 64)
  --json            answer a JSON object of about N bytes (content-type application/json)";

/// What the command line asked for.
struct Args {
    listen: SocketAddr,
    delay: Duration,
    body_bytes: usize,
    json: bool,
}

/// Parses the command line by hand; returns a message for the user on error.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut listen = None;
    let mut delay_ms = 0u64;
    let mut body_bytes = 64usize;
    let mut json = false;

    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                let value = value_of(&arg, args.next())?;
                listen = Some(
                    value
                        .parse::<SocketAddr>()
                        .map_err(|e| format!("--listen {value:?}: {e}"))?,
                );
            }
            "--delay-ms" => {
                let value = value_of(&arg, args.next())?;
                delay_ms = value
                    .parse()
                    .map_err(|e| format!("--delay-ms {value:?}: {e}"))?;
            }
            "--body-bytes" => {
                let value = value_of(&arg, args.next())?;
                body_bytes = value
                    .parse()
                    .map_err(|e| format!("--body-bytes {value:?}: {e}"))?;
            }
            "--json" => json = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }

    Ok(Args {
        listen: listen.ok_or("--listen is required")?,
        delay: Duration::from_millis(delay_ms),
        body_bytes,
        json,
    })
}

fn value_of(flag: &str, value: Option<String>) -> Result<String, String> {
    value.ok_or_else(|| format!("{flag} needs a value"))
}

/// A plain body of exactly `len` bytes.
fn plain_body(len: usize) -> Bytes {
    Bytes::from(vec![b'x'; len])
}

/// A JSON object of `len` bytes (or its fixed fields, if `len` is smaller than those), padded with
/// a string field so the size is predictable.
fn json_body(len: usize) -> Bytes {
    let head = r#"{"id":42,"status":"confirmed","service":"bench_backend","pad":""#;
    let tail = r#""}"#;
    let pad = len.saturating_sub(head.len() + tail.len());
    let mut body = String::with_capacity(head.len() + pad + tail.len());
    body.push_str(head);
    body.extend(std::iter::repeat_n('x', pad));
    body.push_str(tail);
    Bytes::from(body)
}

/// What every connection shares. `Bytes` and `HeaderValue` clones are reference counts, not copies.
#[derive(Clone)]
struct Shared {
    body: Bytes,
    content_type: HeaderValue,
    delay: Duration,
    served: Arc<AtomicU64>,
}

/// Answers one request: counts it, drains its body (so the connection can be reused), waits if
/// asked, and returns the shared body.
async fn answer(
    req: Request<Incoming>,
    shared: Shared,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let served = shared.served.fetch_add(1, Ordering::Relaxed) + 1;
    let wants_count = req.uri().path() == "/__served";
    // A body that fails to arrive is the client's problem; the answer is the same either way.
    let _ = req.into_body().collect().await;
    if !shared.delay.is_zero() {
        tokio::time::sleep(shared.delay).await;
    }
    let mut response = Response::new(Full::new(shared.body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, shared.content_type);
    if wants_count {
        headers.insert("x-bench-served", HeaderValue::from(served));
    }
    Ok(response)
}

async fn serve(args: Args) -> std::io::Result<()> {
    let listener = TcpListener::bind(args.listen).await?;
    let body = if args.json {
        json_body(args.body_bytes)
    } else {
        plain_body(args.body_bytes)
    };
    let content_type = HeaderValue::from_static(if args.json {
        "application/json"
    } else {
        "application/octet-stream"
    });
    let shared = Shared {
        body,
        content_type,
        delay: args.delay,
        served: Arc::new(AtomicU64::new(0)),
    };
    eprintln!(
        "bench_backend listening on {} (delay {} ms, {} byte {} body)",
        listener.local_addr()?,
        args.delay.as_millis(),
        shared.body.len(),
        if args.json { "JSON" } else { "plain" },
    );

    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Typically EMFILE under heavy load: back off briefly rather than spin or exit.
                eprintln!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Small answers must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(req, shared.clone()));
            // Keep-alive is on by default; errors here are clients hanging up, not worth a line each.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            if message.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("bench_backend: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("bench_backend: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_backend: {e}");
            ExitCode::FAILURE
        }
    }
}
