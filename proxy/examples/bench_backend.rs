//! A small, fast HTTP/1.1 backend for the benchmarks in `bench/`.
//!
//! It answers every request, whatever the method or path, with a fixed `200` body, so that what the
//! benchmark measures is the proxy in front of it rather than the backend. `--delay-ms` turns it into
//! a slow backend (used as the slow shadow), `--json` makes it answer a JSON object like an API would
//! (a booking with a nested customer and an array of line items, about `--body-bytes` long), and
//! `--nonce` adds a `"nonce"` field whose value is unique to each answer (the process id and a
//! per-process counter), so that no two answers, from one backend or two, are byte-identical and a
//! proxy comparing them must parse and diff every pair.
//!
//! It counts the requests it answers; a request for `/__served` gets the count (itself included) in
//! an `x-bench-served` header, which is how `bench/run.sh` checks that a shadow received its copies.
//!
//! ```text
//! cargo run --release -p twinpeak-proxy --example bench_backend -- \
//!     --listen 127.0.0.1:9001 [--delay-ms 0] [--body-bytes 64] [--json [--nonce]]
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

const USAGE: &str =
    "usage: bench_backend --listen ADDR [--delay-ms N] [--body-bytes N] [--json [--nonce]]

  --listen ADDR     address to listen on, e.g. 127.0.0.1:9001 (required)
  --delay-ms N      sleep N milliseconds before answering (default 0)
  --body-bytes N    size of the 200 body in bytes (default 64)
  --json            answer a JSON object of N bytes, or of its fixed fields if N is smaller
                    (content-type application/json)
  --nonce           with --json: give every answer a \"nonce\" field unique to that answer";

/// What the command line asked for.
struct Args {
    listen: SocketAddr,
    delay: Duration,
    body_bytes: usize,
    json: bool,
    nonce: bool,
}

/// Parses the command line by hand; returns a message for the user on error.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut listen = None;
    let mut delay_ms = 0u64;
    let mut body_bytes = 64usize;
    let mut json = false;
    let mut nonce = false;

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
            "--nonce" => nonce = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }

    if nonce && !json {
        return Err("--nonce needs --json".into());
    }
    Ok(Args {
        listen: listen.ok_or("--listen is required")?,
        delay: Duration::from_millis(delay_ms),
        body_bytes,
        json,
        nonce,
    })
}

fn value_of(flag: &str, value: Option<String>) -> Result<String, String> {
    value.ok_or_else(|| format!("{flag} needs a value"))
}

/// Length of a nonce: 8 hex digits for the process id, a dash, 12 for the per-process answer
/// counter (`000010e1-00000000002a`).
const NONCE_WIDTH: usize = 8 + 1 + 12;

/// A body shared by every answer, and where in it each answer writes its own nonce, if anywhere.
struct Template {
    bytes: Bytes,
    nonce_at: Option<usize>,
}

impl Template {
    /// The body of answer number `n`: the shared bytes as they are (a reference count, not a
    /// copy), or a copy carrying `pid` and `n` in its nonce.
    fn body(&self, pid: u32, n: u64) -> Bytes {
        let Some(at) = self.nonce_at else {
            return self.bytes.clone();
        };
        let mut body = self.bytes.to_vec();
        let nonce = &mut body[at..at + NONCE_WIDTH];
        write_hex(&mut nonce[..8], u64::from(pid));
        write_hex(&mut nonce[9..], n);
        Bytes::from(body)
    }
}

/// Writes the lowest `out.len()` hex digits of `value` into `out`.
fn write_hex(out: &mut [u8], mut value: u64) {
    for digit in out.iter_mut().rev() {
        *digit = b"0123456789abcdef"[(value & 0xf) as usize];
        value >>= 4;
    }
}

/// A plain body of exactly `len` bytes.
fn plain_body(len: usize) -> Template {
    Template {
        bytes: Bytes::from(vec![b'x'; len]),
        nonce_at: None,
    }
}

/// A booking as an API would return it: scalar fields, a nested customer with a nested address,
/// an array of line items (as many as fit in `len`), a total and a `notes` string padding it to
/// exactly `len` bytes (or to its fixed fields and no item, if `len` is smaller than those). With
/// `nonce`, a `"nonce"` field of [`NONCE_WIDTH`] characters, filled in per answer, comes second.
fn json_body(len: usize, nonce: bool) -> Template {
    // Line items: what was booked, with a description long enough for a real API.
    const NAMES: [(&str, &str); 4] = [
        (
            "Double room, sea view",
            "Queen bed, balcony facing the pier, non-smoking",
        ),
        (
            "Breakfast for two",
            "Continental buffet served 07:00-10:30 in the garden room",
        ),
        (
            "Late check-out",
            "Room kept until 14:00 on the day of departure",
        ),
        (
            "Airport transfer",
            "Private car from Gatwick, meet and greet at arrivals",
        ),
    ];
    const TAGS: [&str; 3] = ["refundable", "member-rate", "promo-autumn"];
    const NOTES: &str = "Late check-in requested; quiet room away from the lift, please. ";

    let mut head = String::from(r#"{"id":42,"#);
    let nonce_at = nonce.then(|| {
        head.push_str(r#""nonce":""#);
        let at = head.len();
        head.push_str("00000000-000000000000");
        head.push_str(r#"","#);
        at
    });
    head.push_str(concat!(
        r#""status":"confirmed","created_at":"2026-11-21T09:30:00Z","#,
        r#""customer":{"id":1042,"name":"Ada Lovelace","email":"ada@example.com","tier":"gold","#,
        r#""address":{"street":"12 Marine Parade","city":"Brighton","postcode":"BN2 1TL","#,
        r#""country":"GB"}},"items":["#,
    ));
    let tail = |total: f64| format!(r#"],"total":{total:.2},"currency":"EUR","notes":""#);

    // Add items while the whole, with an empty note, still fits.
    let mut items = String::new();
    let mut total = 0.0;
    for i in 0.. {
        let quantity = 1 + i % 3;
        let unit_price = 39.5 + 12.25 * (i % 7) as f64;
        let (name, description) = NAMES[i % NAMES.len()];
        let day = 1 + i % 27;
        let item = format!(
            concat!(
                r#"{}{{"sku":"SKU-{:05}","name":"{}","description":"{}","#,
                r#""dates":{{"from":"2026-12-{:02}","to":"2026-12-{:02}"}},"#,
                r#""quantity":{},"unit_price":{:.2},"refundable":{},"tags":["{}","season-2026"]}}"#,
            ),
            if i == 0 { "" } else { "," },
            1000 + i,
            name,
            description,
            day,
            day + 1 + i % 2,
            quantity,
            unit_price,
            i % 2 == 0,
            TAGS[i % TAGS.len()],
        );
        let with_item = total + quantity as f64 * unit_price;
        if head.len() + items.len() + item.len() + tail(with_item).len() + 2 > len {
            break;
        }
        items.push_str(&item);
        total = with_item;
    }

    let tail = tail(total);
    let pad = len.saturating_sub(head.len() + items.len() + tail.len() + 2);
    let mut body = String::with_capacity(head.len() + items.len() + tail.len() + pad + 2);
    body.push_str(&head);
    body.push_str(&items);
    body.push_str(&tail);
    body.extend(NOTES.chars().cycle().take(pad));
    body.push_str(r#""}"#);
    Template {
        bytes: Bytes::from(body),
        nonce_at,
    }
}

/// What every connection shares.
#[derive(Clone)]
struct Shared {
    body: Arc<Template>,
    content_type: HeaderValue,
    delay: Duration,
    served: Arc<AtomicU64>,
    pid: u32,
}

/// Answers one request: counts it, drains its body (so the connection can be reused), waits if
/// asked, and returns the shared body (with its own nonce, if asked for).
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
    let mut response = Response::new(Full::new(shared.body.body(shared.pid, served)));
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
        json_body(args.body_bytes, args.nonce)
    } else {
        plain_body(args.body_bytes)
    };
    let content_type = HeaderValue::from_static(if args.json {
        "application/json"
    } else {
        "application/octet-stream"
    });
    let shared = Shared {
        body: Arc::new(body),
        content_type,
        delay: args.delay,
        served: Arc::new(AtomicU64::new(0)),
        pid: std::process::id(),
    };
    eprintln!(
        "bench_backend listening on {} (delay {} ms, {} byte {} body{})",
        listener.local_addr()?,
        args.delay.as_millis(),
        shared.body.bytes.len(),
        if args.json { "JSON" } else { "plain" },
        if args.nonce {
            ", a nonce per answer"
        } else {
            ""
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &Bytes) -> serde_json::Value {
        serde_json::from_slice(body).expect("valid JSON")
    }

    #[test]
    fn json_bodies_have_the_asked_size_and_shape() {
        for nonce in [false, true] {
            for len in [1024, 2048, 10_000] {
                let body = json_body(len, nonce).body(4321, 7);
                assert_eq!(body.len(), len, "len {len}, nonce {nonce}");
                let value = parse(&body);
                assert_eq!(value["customer"]["address"]["country"], "GB");
                assert!(!value["items"].as_array().unwrap().is_empty());
                assert_eq!(value.get("nonce").is_some(), nonce);
            }
        }
        let value = parse(&json_body(2048, true).body(1, 1));
        assert!(value["items"].as_array().unwrap().len() >= 3);
    }

    #[test]
    fn a_small_size_keeps_the_fixed_fields() {
        let body = json_body(16, true).body(1, 1);
        assert!(body.len() > 16);
        assert_eq!(parse(&body)["items"], serde_json::json!([]));
    }

    #[test]
    fn every_answer_has_its_own_nonce() {
        let template = json_body(2048, true);
        let (a, b, c) = (
            template.body(4321, 1),
            template.body(4321, 2),
            template.body(4322, 1),
        );
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(parse(&a)["nonce"], "000010e1-000000000001");
        assert_eq!(parse(&c)["nonce"], "000010e2-000000000001");
        assert_eq!(a.len(), b.len());
    }

    #[test]
    fn nonce_needs_json() {
        let args = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()));
        assert!(args(&["--listen", "127.0.0.1:1", "--nonce"]).is_err());
        assert!(args(&["--listen", "127.0.0.1:1", "--json", "--nonce"]).is_ok_and(|a| a.nonce));
    }
}
