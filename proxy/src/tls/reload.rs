//! Certificate reload: every few seconds (off the request path) the files of each pair served
//! are looked at (modification time, size, inode), and read again when they change, or on
//! SIGHUP whether they changed or not. A pair that loads and matches its key is served to new
//! handshakes from then on; one that does not is refused with its reason in the log, and the
//! pair before it stays. Open connections are not touched either way.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;

use super::certs::{load_pair, FileStamp};
use super::metrics::TlsMetrics;
use super::resolver::{CertificateSet, SniResolver};
use crate::listen::CertificateFiles;

/// How often the files are looked at.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// One pair's files and how they looked when last read.
struct Watched {
    files: CertificateFiles,
    stamps: [Option<FileStamp>; 2],
}

impl Watched {
    fn stamps_now(&self) -> [Option<FileStamp>; 2] {
        [
            FileStamp::of(&self.files.cert),
            FileStamp::of(&self.files.key),
        ]
    }
}

/// A TLS listener's resolver and the files behind each of its pairs, in the same order.
pub struct WatchedListener {
    address: SocketAddr,
    resolver: Arc<SniResolver>,
    pairs: Mutex<Vec<Watched>>,
}

impl WatchedListener {
    /// Watches `files` (in the order `resolver`'s set holds their pairs) of the listener on
    /// `address`, as they look now.
    pub fn new(
        address: SocketAddr,
        resolver: Arc<SniResolver>,
        files: Vec<CertificateFiles>,
    ) -> Self {
        let pairs = files
            .into_iter()
            .map(|files| {
                let mut watched = Watched {
                    files,
                    stamps: [None, None],
                };
                watched.stamps = watched.stamps_now();
                watched
            })
            .collect();
        WatchedListener {
            address,
            resolver,
            pairs: Mutex::new(pairs),
        }
    }

    /// Reads again the pairs whose files changed (every pair when `all`), and serves the new
    /// set when one of them loaded.
    fn check(&self, all: bool, metrics: &TlsMetrics) {
        let mut watched = self.pairs.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.resolver.current();
        let mut pairs = current.pairs().to_vec();
        let mut changed = false;
        for (i, pair) in watched.iter_mut().enumerate() {
            let stamps = pair.stamps_now();
            if !all && stamps == pair.stamps {
                continue;
            }
            // Remembered even when the pair is refused: it is read again at its next change,
            // not every few seconds with the same complaint.
            pair.stamps = stamps;
            let (cert, key) = (&pair.files.cert, &pair.files.key);
            match load_pair(cert, key) {
                Ok(loaded) => {
                    log::info!(
                        "tls: {}: now serving {} for {} (valid until {})",
                        self.address,
                        cert.display(),
                        loaded.names.join(", "),
                        utc(loaded.not_after),
                    );
                    pairs[i] = loaded;
                    changed = true;
                    metrics.reload(true);
                }
                Err(problem) => {
                    log::warn!(
                        "tls: {}: refused the new {} / {}: {problem}; still serving the previous \
                         certificate for {}",
                        self.address,
                        cert.display(),
                        key.display(),
                        pairs[i].names.join(", "),
                    );
                    metrics.reload(false);
                }
            }
        }
        if changed {
            self.resolver.replace(CertificateSet::new(pairs));
        }
    }

    /// The set served now.
    fn current(&self) -> Arc<CertificateSet> {
        self.resolver.current()
    }
}

/// A Unix time as an RFC 3339 UTC time, for the log.
fn utc(seconds: i64) -> String {
    x509_parser::time::ASN1Time::from_timestamp(seconds)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| seconds.to_string())
}

/// The background service that keeps every TLS listener's certificates current.
pub struct CertificateWatch {
    listeners: Vec<WatchedListener>,
    metrics: TlsMetrics,
}

impl CertificateWatch {
    /// Watches `listeners`, counting in `metrics`.
    pub fn new(listeners: Vec<WatchedListener>, metrics: TlsMetrics) -> Self {
        let watch = CertificateWatch { listeners, metrics };
        watch.show_expiry();
        watch
    }

    /// Looks at every listener's files (reads every pair again when `all`).
    pub fn check(&self, all: bool) {
        for listener in &self.listeners {
            listener.check(all, &self.metrics);
        }
        self.show_expiry();
    }

    fn show_expiry(&self) {
        let sets: Vec<_> = self
            .listeners
            .iter()
            .map(WatchedListener::current)
            .collect();
        self.metrics
            .serving(sets.iter().flat_map(|set| set.pairs().iter()));
    }
}

#[async_trait]
impl BackgroundService for CertificateWatch {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => Some(hangups),
            Err(error) => {
                log::warn!("tls: cannot watch for SIGHUP ({error}); certificates are still read again when their files change");
                None
            }
        };
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + CHECK_INTERVAL, CHECK_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let hangup = async {
                match hangups.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = ticks.tick() => self.check(false),
                Some(()) = hangup => {
                    log::info!("tls: SIGHUP: reading every certificate again");
                    self.check(true);
                }
                _ = shutdown.changed() => break,
            }
        }
    }
}
