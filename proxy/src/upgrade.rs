//! Zero-downtime binary upgrade, as Pingora (and nginx) do it: a new process started with
//! `--upgrade` waits on a Unix socket (`shutdown.upgrade_sock`) for the running one's listening
//! sockets; the running one, on SIGQUIT, writes what it learned to the state store, stops
//! mirroring, hands every listening socket over (proxy listeners, TLS ones included, admin and
//! metrics), keeps accepting for Pingora's 5 s overlap, then stops accepting, drains its
//! requests in flight as on SIGTERM, writes its state once more and exits. No connection is
//! refused meanwhile: the listening sockets themselves never close.
//!
//! The state store sees both processes of one replica for the overlap without harm: each
//! flush adds its deltas in one transaction (SQLite serialises writers; PostgreSQL locks the
//! replica's row), so nothing is counted twice or lost. The new process takes up what the
//! store holds once it has the sockets, so after the old one's hand-over flush; from then on
//! it alone writes the replica's findings as a whole, the old one only its last deltas.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use pingora_core::server::configuration::Opt;
use pingora_core::server::{ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};

use crate::config::Config;
use crate::error::{InvalidKey, SetupError, SetupProblem};
use crate::mirror::{Mirror, MirrorSettings};
use crate::record::Recorder;
use crate::state::live::Live;
use crate::units::Percent;

/// How the proxy starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Binds its listening addresses itself, refusing any that is taken.
    Fresh,
    /// Takes the listening sockets over from the running proxy (`--upgrade`).
    Upgrade,
}

/// Longest Unix socket path the system takes (`sun_path` holds 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The socket the listening sockets are handed over through: `shutdown.upgrade_sock`, or
/// `/tmp/twinpeak-upgrade-PORT.sock` with the admin port, so that proxies of one machine
/// with their own admin ports never meet on it.
pub(crate) fn socket_path(config: &Config) -> PathBuf {
    match &config.shutdown.upgrade_sock {
        Some(path) => path.clone(),
        // Not $TMPDIR: the old and the new process must agree whatever their environments.
        None => PathBuf::from(format!(
            "/tmp/twinpeak-upgrade-{}.sock",
            config.admin.listen.port()
        )),
    }
}

/// Checks `shutdown.upgrade_sock`: a Unix socket path short enough to bind.
pub(crate) fn validate(upgrade_sock: Option<&Path>) -> Result<(), InvalidKey> {
    match upgrade_sock {
        Some(path) if path.as_os_str().len() > MAX_SOCKET_PATH => Err(InvalidKey::new(
            "shutdown.upgrade_sock",
            format!("a Unix socket path takes at most {MAX_SOCKET_PATH} bytes"),
        )),
        Some(path) if path.as_os_str().is_empty() => {
            Err(InvalidKey::new("shutdown.upgrade_sock", "is empty"))
        }
        _ => Ok(()),
    }
}

/// Pingora's options for `start`: `upgrade` makes its bootstrap wait for the sockets.
pub(crate) fn options(start: Start) -> Option<Opt> {
    match start {
        Start::Fresh => None,
        Start::Upgrade => Some(Opt {
            upgrade: true,
            ..Opt::default()
        }),
    }
}

/// Fails at once, naming the key, when no proxy runs to take the sockets from: nothing holds
/// the admin address (a running proxy always does).
pub(crate) fn check_running(config: &Config) -> Result<(), SetupError> {
    let admin: SocketAddr = config.admin.listen;
    match std::net::TcpListener::bind(admin) {
        Ok(_probe) => Err(SetupError::new(
            "admin.listen",
            SetupProblem::NothingToUpgrade {
                address: admin,
                socket: socket_path(config),
            },
        )),
        // Taken: the running proxy's (whether it is one is learnt on the socket).
        Err(_) => Ok(()),
    }
}

/// Whether the listening sockets went to a new process. From then on the old one answers
/// each request with `Connection: close`, so clients' kept-alive connections move to the new
/// process while both accept, rather than be closed, idle, when the old one stops.
#[derive(Clone, Default)]
pub struct HandedOver(Arc<AtomicBool>);

impl HandedOver {
    /// Whether the sockets were handed over.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What the running proxy does on SIGQUIT before it hands its sockets over.
pub(crate) struct HandOver {
    state: Option<Arc<Live>>,
    mirror: Arc<Mirror>,
    recorder: Option<Arc<Recorder>>,
    handed_over: HandedOver,
}

impl HandOver {
    /// The hand-over of `state` (when kept), `mirror` and `recorder` (when recording),
    /// announced to the proxy service through `handed_over`.
    pub(crate) fn new(
        state: Option<Arc<Live>>,
        mirror: Arc<Mirror>,
        recorder: Option<Arc<Recorder>>,
        handed_over: HandedOver,
    ) -> Self {
        HandOver {
            state,
            mirror,
            recorder,
            handed_over,
        }
    }

    /// Stops mirroring and recording new requests (the new process compares and records from
    /// now on), writes what was learned, so that the new process takes it up, and stops
    /// keeping connections alive; blocks on the store.
    fn prepare(&self) {
        let settings = self.mirror.settings();
        let stopped = MirrorSettings::new(
            Percent::new(0.0).expect("0 is a percentage"),
            settings.key.clone(),
            settings.methods.clone(),
        );
        // Zero never fails (only a share above zero needs a shadow).
        let _ = self.mirror.set_settings(stopped);
        if let Some(recorder) = &self.recorder {
            recorder.stop_admitting();
        }
        if let Some(state) = &self.state {
            state.hand_over();
        }
        self.handed_over.set();
    }
}

/// Pingora's signal watch with the hand-over before SIGQUIT's: SIGQUIT upgrades (once the
/// state is written), SIGTERM drains, SIGINT stops at once.
pub(crate) struct UpgradeSignals(pub(crate) Arc<HandOver>);

#[async_trait]
impl ShutdownSignalWatch for UpgradeSignals {
    async fn recv(&self) -> ShutdownSignal {
        let watch = |kind| signal(kind).expect("the runtime can watch signals");
        let mut quit = watch(SignalKind::quit());
        let mut terminate = watch(SignalKind::terminate());
        let mut interrupt = watch(SignalKind::interrupt());
        tokio::select! {
            _ = quit.recv() => {
                log::info!("SIGQUIT: handing the listening sockets over to the new process");
                let hand_over = self.0.clone();
                let _ = tokio::task::spawn_blocking(move || hand_over.prepare()).await;
                ShutdownSignal::GracefulUpgrade
            }
            _ = terminate.recv() => ShutdownSignal::GracefulTerminate,
            _ = interrupt.recv() => ShutdownSignal::FastShutdown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_path_too_long_to_bind_is_refused_naming_its_key() {
        let long = PathBuf::from(format!("/tmp/{}.sock", "x".repeat(120)));
        let error = validate(Some(&long)).unwrap_err();
        assert_eq!(error.key, "shutdown.upgrade_sock");
        assert!(validate(Some(Path::new("/run/twinpeak/upgrade.sock"))).is_ok());
        assert!(validate(None).is_ok());
    }
}
