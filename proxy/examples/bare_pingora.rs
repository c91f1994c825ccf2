//! The smallest Pingora pass-through proxy: every request goes to one upstream over plain HTTP,
//! with no filters, no metrics and no mirroring.
//!
//! The benchmarks in `bench/` use it as the baseline: the gap between this and `twinpeak proxy` is
//! what twinpeak's own work costs, separate from what Pingora itself costs.
//!
//! ```text
//! cargo run --release -p twinpeak-proxy --example bare_pingora -- \
//!     --listen 127.0.0.1:19081 --upstream 127.0.0.1:19001 [--threads 2]
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;

use async_trait::async_trait;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Server;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::Result;
use pingora_proxy::{ProxyHttp, Session};

const USAGE: &str = "usage: bare_pingora --listen ADDR --upstream HOST:PORT [--threads N]

  --listen ADDR         address to listen on, e.g. 127.0.0.1:19081 (required)
  --upstream HOST:PORT  plain-HTTP upstream every request goes to (required)
  --threads N           worker threads (default 1, Pingora's default)";

/// Sends every request to one upstream, unchanged.
struct Passthrough {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Passthrough {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

/// What the command line asked for.
struct Args {
    listen: String,
    upstream: SocketAddr,
    threads: usize,
}

/// Parses the command line by hand; returns a message for the user on error.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut listen = None;
    let mut upstream = None;
    let mut threads = 1usize;

    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => listen = Some(value()?),
            "--upstream" => {
                let value = value()?;
                // Resolve once here, so the request path does no address parsing or lookup.
                let addr = std::net::ToSocketAddrs::to_socket_addrs(&value)
                    .map_err(|e| format!("--upstream {value:?}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("--upstream {value:?}: no address"))?;
                upstream = Some(addr);
            }
            "--threads" => {
                let value = value()?;
                threads = match value.parse() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(format!("--threads {value:?}: expected a positive integer")),
                };
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }

    Ok(Args {
        listen: listen.ok_or("--listen is required")?,
        upstream: upstream.ok_or("--upstream is required")?,
        threads,
    })
}

/// The same allocator as the `twinpeak` binary, so the comparison measures twinpeak's own work.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            if message.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("bare_pingora: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    let conf = ServerConf {
        threads: args.threads,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let mut service = pingora_proxy::http_proxy_service(
        &server.configuration,
        Passthrough {
            upstream: args.upstream,
        },
    );
    service.add_tcp(&args.listen);
    server.add_service(service);

    eprintln!(
        "bare_pingora listening on {} -> {} ({} threads)",
        args.listen, args.upstream, args.threads
    );
    server.run_forever()
}
