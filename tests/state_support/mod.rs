//! What the state and fleet tests share: a `twinpeak proxy` whose configuration lives in a
//! directory of the test's (so it can be killed with SIGKILL and started again on the same
//! state), load that counts what it saw, and admin reads. Every wait is bounded.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{client, get_json, get_text};

/// A free loopback address (the listener is closed before the proxy binds it).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A proxy process run from `dir/NAME.yaml`, restartable on the same files.
pub struct Replica {
    child: Option<Child>,
    pub name: String,
    pub config: PathBuf,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    starts: usize,
}

impl Replica {
    /// Writes `dir/NAME.yaml` (listen and admin filled in before `body`) and starts it.
    pub async fn start(dir: &Path, name: &str, body: &str) -> Replica {
        let mut replica = Replica {
            child: None,
            name: name.to_string(),
            config: dir.join(format!("{name}.yaml")),
            addr: free_addr(),
            admin: free_addr(),
            starts: 0,
        };
        replica.reconfigure(body);
        replica.restart().await;
        replica
    }

    /// Writes its configuration file again with `body` (same listen and admin addresses):
    /// in force from the next start.
    pub fn reconfigure(&mut self, body: &str) {
        let text = format!(
            "listen: {}\nadmin: {{ listen: {} }}\nthreads: 2\n{body}",
            self.addr, self.admin
        );
        std::fs::write(&self.config, text).unwrap();
    }

    fn log_path(&self) -> PathBuf {
        self.config.with_extension(format!("{}.log", self.starts))
    }

    /// Starts it (again) and waits until both listeners take connections.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is running", self.name);
        self.starts += 1;
        let child = Command::new(env!("CARGO_BIN_EXE_twinpeak"))
            .args(["proxy", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .env("HOSTNAME", &self.name)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.log_path()).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("{} exited ({status}): {}", self.name, self.log());
            }
            let up = tokio::net::TcpStream::connect(self.addr).await.is_ok()
                && tokio::net::TcpStream::connect(self.admin).await.is_ok();
            if up {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{} did not start: {}", self.name, self.log());
    }

    /// SIGKILL: nothing is flushed on the way out.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it with `signal` (`INT` or `TERM`, as `kill -s` names them) and waits, at most
    /// 15 s, for it to exit; returns whether it exited by itself with status 0.
    pub fn stop(&mut self, signal: &str) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let pid = child.id().to_string();
        let sent = Command::new("kill").args(["-s", signal, &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -s {signal} {pid}");
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// The log of its latest start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `http://addr` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GETs an admin JSON endpoint.
    pub async fn json(&self, path: &str) -> serde_json::Value {
        get_json(&format!("http://{}{path}", self.admin)).await
    }

    /// The Prometheus text.
    pub async fn metrics(&self) -> String {
        get_text(&format!("http://{}/metrics", self.admin)).await
    }

    /// One sample's value from the Prometheus text (`name{labels}` as written there).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    /// Sends an admin change with a JSON body.
    pub async fn change(&self, method: &str, path: &str, body: &'static str) -> reqwest::Response {
        client()
            .request(
                method.parse().unwrap(),
                format!("http://{}{path}", self.admin),
            )
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Counts of what a load loop saw.
#[derive(Default)]
pub struct Seen {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    /// Slowest answer, µs.
    pub slowest_us: AtomicU64,
}

/// Sends GETs to `urls` from `concurrency` tasks until `stop` is set or `limit` passes.
pub fn load(
    urls: Vec<String>,
    concurrency: usize,
    limit: Duration,
    stop: Arc<AtomicBool>,
) -> Arc<Seen> {
    let seen = Arc::new(Seen::default());
    let deadline = Instant::now() + limit;
    for task in 0..concurrency {
        let url = urls[task % urls.len()].clone();
        let (seen, stop) = (seen.clone(), stop.clone());
        tokio::spawn(async move {
            let c = client();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                i += 1;
                let started = Instant::now();
                let sent = c
                    .get(format!("{url}/{task}-{i}"))
                    .header("x-user-id", format!("u{task}-{}", i % 50))
                    .send()
                    .await;
                let answered = match sent {
                    Ok(res) => res.status().is_success() && res.bytes().await.is_ok(),
                    Err(_) => false,
                };
                let counter = if answered { &seen.ok } else { &seen.failed };
                counter.fetch_add(1, Ordering::Relaxed);
                let us = started.elapsed().as_micros() as u64;
                seen.slowest_us.fetch_max(us, Ordering::Relaxed);
            }
        });
    }
    seen
}

/// Whether a canary history entry is a judge's verdict.
pub fn is_verdict(entry: &serde_json::Value) -> bool {
    ["pass", "fail", "inconclusive"].contains(&entry["decision"].as_str().unwrap_or(""))
}

/// The interval a verdict's summary names (`[interval START over N replicas: A, B]`): its
/// start and the replicas added.
pub fn judged_interval(summary: &str) -> Option<(std::time::SystemTime, Vec<String>)> {
    let (_, note) = summary.rsplit_once("[interval ")?;
    let (start, rest) = note.split_once(" over ")?;
    let (_, replicas) = rest.split_once(": ")?;
    let replicas = replicas
        .trim_end_matches(']')
        .split(", ")
        .map(String::from)
        .collect();
    Some((twinpeak_core::timestamp::parse_rfc3339(start)?, replicas))
}
