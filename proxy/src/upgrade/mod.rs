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

mod sockets;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use pingora_core::server::configuration::Opt;
use pingora_core::server::{ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};

use crate::canary::fleet::Fleet;
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
/// `upgrade-PORT.sock` with the admin port in the private directory [`default_socket_dir`], so
/// that proxies of one machine with their own admin ports never meet on it.
pub(crate) fn socket_path(config: &Config) -> PathBuf {
    match &config.shutdown.upgrade_sock {
        Some(path) => path.clone(),
        None => default_socket_dir().join(format!("upgrade-{}.sock", config.admin.listen.port())),
    }
}

/// `/tmp/twinpeak-UID`, readable and writable by this user alone. Not $TMPDIR: the old and
/// the new process must agree whatever their environments. Private, because whoever can reach
/// the socket could take the listening sockets (binding the path before the new process does)
/// or hand the new process sockets of its own.
fn default_socket_dir() -> PathBuf {
    PathBuf::from(format!("/tmp/twinpeak-{}", own_uid()))
}

/// The user this process runs as: the owner of its `/proc/self`.
fn own_uid() -> u32 {
    std::fs::metadata("/proc/self").map_or(0, |meta| meta.uid())
}

/// Upgrading with the default socket: makes its directory, mode 0700, or checks that the one
/// there is a directory (not a link) of this user's that no one else can enter.
pub(crate) fn prepare_socket_dir(config: &Config) -> Result<(), SetupError> {
    if config.shutdown.upgrade_sock.is_some() {
        return Ok(());
    }
    let dir = default_socket_dir();
    prepare_private_dir(&dir).map_err(|reason| {
        SetupError::new(
            "shutdown.upgrade_sock",
            SetupProblem::HandOverDirectory { dir, reason },
        )
    })
}

/// Makes `dir` with mode 0700, or checks that the one there is a directory (not a link) of this
/// user's that no one else can enter; why not otherwise.
fn prepare_private_dir(dir: &Path) -> Result<(), String> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot make it: {e}")),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| e.to_string())?;
    let uid = own_uid();
    if !meta.file_type().is_dir() {
        Err("is not a directory".into())
    } else if meta.uid() != uid {
        Err(format!(
            "belongs to uid {}, not to this process's {uid}; remove it or set \
             shutdown.upgrade_sock",
            meta.uid()
        ))
    } else if meta.mode() & 0o077 != 0 {
        Err(format!(
            "others may enter it (mode {:o}); make it 0700 or remove it",
            meta.mode() & 0o777
        ))
    } else {
        Ok(())
    }
}

/// Whether a new process waits on `socket` for the listening sockets: a socket of this user's
/// that something listens on. Otherwise why not: handing the sockets over then would leave
/// no one serving, since the running proxy stops once it has tried.
fn receiver_waiting(socket: &Path) -> Result<(), String> {
    let meta =
        std::fs::symlink_metadata(socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    let uid = own_uid();
    if !meta.file_type().is_socket() {
        return Err(format!("{} is not a socket", socket.display()));
    }
    if meta.uid() != uid {
        return Err(format!(
            "{} belongs to uid {}, not to this process's {uid}",
            socket.display(),
            meta.uid()
        ));
    }
    let listening =
        std::fs::read_to_string("/proc/net/unix").map_err(|e| format!("/proc/net/unix: {e}"))?;
    match listens_on(&listening, socket) {
        true => Ok(()),
        false => Err(format!(
            "nothing listens on {} (left by a new process that gave up or stopped)",
            socket.display()
        )),
    }
}

/// Whether `/proc/net/unix` (`table`) holds a listening socket bound to `path`: its flags have
/// `__SO_ACCEPTCON` (0x10000), and its path follows the seven numeric columns.
fn listens_on(table: &str, path: &Path) -> bool {
    const ACCEPTING: u32 = 0x0001_0000;
    let path = path.to_string_lossy();
    table.lines().skip(1).any(|line| {
        let mut columns = line.split_whitespace();
        let accepting = columns
            .nth(3)
            .and_then(|flags| u32::from_str_radix(flags, 16).ok())
            .is_some_and(|flags| flags & ACCEPTING != 0);
        accepting && columns.skip(3).collect::<Vec<_>>().join(" ") == path
    })
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

/// Upgrading: refuses an address of the new configuration that a process other than the
/// running proxy (the one holding `admin.listen`) holds. The running proxy's addresses come
/// with its sockets and free ones are bound afresh; a taken one would make the new process fail
/// once the running one had handed its sockets over and was leaving, with no one to serve.
pub(crate) fn check_addresses(config: &Config) -> Result<(), SetupError> {
    let listening = sockets::listening();
    let admin = sockets::holding(&listening, config.admin.listen);
    let taken: Vec<_> = config
        .bound_addresses()
        .into_iter()
        .filter(|(key, _)| *key != "admin.listen")
        .filter(|(_, address)| std::net::TcpListener::bind(address).is_err())
        .map(|(key, address)| (key, address, sockets::holding(&listening, address)))
        .collect();
    if taken.is_empty() {
        return Ok(());
    }
    let inodes: BTreeSet<u64> = admin
        .iter()
        .chain(taken.iter().flat_map(|(_, _, held)| held))
        .map(|held| held.inode)
        .collect();
    let owners = sockets::owners(&inodes);
    let pids_of = |held: &[sockets::Listening]| -> BTreeSet<u32> {
        held.iter()
            .filter_map(|h| owners.get(&h.inode))
            .flatten()
            .copied()
            .collect()
    };
    let running = pids_of(&admin);
    for (key, address, held) in taken {
        let holders = pids_of(&held);
        if running.is_empty() || holders.is_empty() || !holders.is_subset(&running) {
            return Err(SetupError::new(
                key,
                SetupProblem::UpgradeAddressTaken {
                    address,
                    holders: processes(&holders),
                    running: processes(&running),
                },
            ));
        }
    }
    Ok(())
}

/// `process 12, 34`, or what to say when none could be seen.
fn processes(pids: &BTreeSet<u32>) -> String {
    if pids.is_empty() {
        return "a process this user cannot look into".into();
    }
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    format!("process {}", pids.join(", "))
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

/// What the running proxy does on SIGQUIT before it hands its sockets over: the hand-over
/// through `socket` of `state` (when kept), the canary's `fleet` (when judged through the
/// store), `mirror` and `recorder` (when recording), announced to the proxy service through
/// `handed_over`.
pub(crate) struct HandOver {
    /// Where the new process waits for the sockets.
    pub(crate) socket: PathBuf,
    /// The state learned, written for the new process to take up.
    pub(crate) state: Option<Arc<Live>>,
    /// The canary's judge, which leaves judging to the new process.
    pub(crate) fleet: Option<Arc<Fleet>>,
    /// The mirror, stopped.
    pub(crate) mirror: Arc<Mirror>,
    /// The recorder, which stops admitting requests.
    pub(crate) recorder: Option<Arc<Recorder>>,
    /// Set once the sockets are on their way.
    pub(crate) handed_over: HandedOver,
}

impl HandOver {
    /// Stops mirroring and recording new requests (the new process compares and records from
    /// now on) and judging the canary, writes what was learned, so that the new process takes it up, and stops
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
        if let Some(fleet) = &self.fleet {
            fleet.retire();
        }
        if let Some(state) = &self.state {
            state.hand_over();
        }
        self.handed_over.set();
    }
}

/// Pingora's signal watch with the hand-over before SIGQUIT's: SIGQUIT upgrades (once the
/// state is written) when a new process waits for the sockets, and is refused, the proxy
/// serving on, when none does; SIGTERM drains, SIGINT stops at once.
pub(crate) struct UpgradeSignals(pub(crate) Arc<HandOver>);

#[async_trait]
impl ShutdownSignalWatch for UpgradeSignals {
    async fn recv(&self) -> ShutdownSignal {
        let watch = |kind| signal(kind).expect("the runtime can watch signals");
        let mut quit = watch(SignalKind::quit());
        let mut terminate = watch(SignalKind::terminate());
        let mut interrupt = watch(SignalKind::interrupt());
        loop {
            tokio::select! {
                _ = quit.recv() => {
                    if let Err(why) = receiver_waiting(&self.0.socket) {
                        log::error!(
                            "SIGQUIT refused, serving on: no new process waits for the \
                             listening sockets: {why}; start `twinpeak proxy --upgrade` first, \
                             then send SIGQUIT"
                        );
                        continue;
                    }
                    log::info!("SIGQUIT: handing the listening sockets over to the new process");
                    let hand_over = self.0.clone();
                    let _ = tokio::task::spawn_blocking(move || hand_over.prepare()).await;
                    return ShutdownSignal::GracefulUpgrade;
                }
                _ = terminate.recv() => return ShutdownSignal::GracefulTerminate,
                _ = interrupt.recv() => return ShutdownSignal::FastShutdown,
            }
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

    #[test]
    fn only_a_socket_something_listens_on_is_a_waiting_receiver() {
        let here = tempfile::tempdir().unwrap();
        let socket = here.path().join("upgrade.sock");
        assert!(receiver_waiting(&socket).is_err(), "no file");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        assert_eq!(receiver_waiting(&socket), Ok(()));
        drop(listener);
        let stale = receiver_waiting(&socket).unwrap_err();
        assert!(stale.contains("nothing listens"), "{stale}");
        let file = here.path().join("plain");
        std::fs::write(&file, "").unwrap();
        let plain = receiver_waiting(&file).unwrap_err();
        assert!(plain.contains("not a socket"), "{plain}");
    }

    #[test]
    fn the_hand_over_directory_is_made_private_and_one_others_may_enter_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let here = tempfile::tempdir().unwrap();
        let dir = here.path().join("twinpeak-0");
        assert_eq!(prepare_private_dir(&dir), Ok(()));
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(prepare_private_dir(&dir), Ok(()), "kept as it is");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let open = prepare_private_dir(&dir).unwrap_err();
        assert!(open.contains("others may enter it (mode 777)"), "{open}");
        let link = here.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let linked = prepare_private_dir(&link).unwrap_err();
        assert!(linked.contains("not a directory"), "{linked}");
    }

    #[test]
    fn the_table_of_unix_sockets_is_read_by_flags_and_path() {
        let table = "Num       RefCount Protocol Flags    Type St Inode Path\n\
            0000000010143f45: 00000003 00000000 00000000 0001 03  8097 /run/a.sock\n\
            000000007c3e2a86: 00000002 00000000 00010000 0001 01   123 /tmp/b c.sock\n";
        assert!(
            !listens_on(table, Path::new("/run/a.sock")),
            "connected, not listening"
        );
        assert!(listens_on(table, Path::new("/tmp/b c.sock")));
        assert!(!listens_on(table, Path::new("/tmp/b")));
    }
}
