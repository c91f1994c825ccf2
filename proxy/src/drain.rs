//! Stopping on SIGTERM without failing a request: Pingora stops accepting connections at once
//! and gives the requests in flight its grace period (`shutdown.drain`) before it stops its
//! runtimes. [`DrainService`] ends that wait as soon as no request is left, having written what
//! the proxy persists ([`ExitFlush`]): an idle proxy exits at once, a busy one as its last
//! request is answered, and one whose requests outlast the drain cuts them when it ends.

use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use prometheus::IntGauge;

use crate::access_log::AccessLog;
use crate::record::Recorder;
use crate::state::live::Live;

/// How often the requests in flight are counted while draining.
const POLL: Duration = Duration::from_millis(50);

/// What the proxy writes before it exits, written once whichever way it stops.
pub struct ExitFlush {
    recorder: Option<Arc<Recorder>>,
    access_log: Option<Arc<AccessLog>>,
    state: Option<Arc<Live>>,
    done: Once,
}

impl ExitFlush {
    /// The flush of the recorder's queue and of the state learned since the last flush.
    pub fn new(recorder: Option<Arc<Recorder>>, state: Option<Arc<Live>>) -> Self {
        ExitFlush {
            recorder,
            access_log: None,
            state,
            done: Once::new(),
        }
    }

    /// The flush, writing the access log's queue too.
    pub fn with_access_log(mut self, access_log: Option<Arc<AccessLog>>) -> Self {
        self.access_log = access_log;
        self
    }

    /// Writes the requests recorded and the state learned since the last flush; only the
    /// first call does anything.
    pub fn run(&self) {
        self.done.call_once(|| {
            if let Some(recorder) = &self.recorder {
                recorder.flush_at_exit();
            }
            if let Some(access_log) = &self.access_log {
                access_log.flush_at_exit();
            }
            if let Some(state) = &self.state {
                state.flush_at_exit();
            }
        });
    }
}

/// Exits the process once a graceful stop has left no request in flight.
pub struct DrainService {
    in_flight: IntGauge,
    flush: Arc<ExitFlush>,
    limit: Duration,
}

impl DrainService {
    /// Watches `in_flight` for at most `limit` after a graceful stop begins.
    pub fn new(in_flight: IntGauge, flush: Arc<ExitFlush>, limit: Duration) -> Self {
        DrainService {
            in_flight,
            flush,
            limit,
        }
    }
}

#[async_trait]
impl BackgroundService for DrainService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // Pingora broadcasts only a graceful stop (SIGTERM, or SIGQUIT once the listening
        // sockets are handed over); SIGINT stops the runtimes without one.
        if shutdown.changed().await.is_err() || !*shutdown.borrow() {
            return;
        }
        let started = Instant::now();
        log::info!(
            "shutdown: no longer accepting; {} request(s) in flight get up to {:?}",
            self.in_flight.get(),
            self.limit
        );
        loop {
            // The first wait also lets a request whose connection was accepted just before
            // the stop be read.
            tokio::time::sleep(POLL).await;
            if self.in_flight.get() <= 0 {
                break;
            }
            if started.elapsed() >= self.limit {
                log::warn!(
                    "shutdown: {} request(s) still in flight after {:?}; they are cut",
                    self.in_flight.get(),
                    self.limit
                );
                return;
            }
        }
        log::info!(
            "shutdown: every request answered {} ms after the stop began; exiting",
            started.elapsed().as_millis()
        );
        self.flush.run();
        std::process::exit(0);
    }
}
