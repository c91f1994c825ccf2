//! Stopping a run from outside: Ctrl-C (SIGINT), or SIGTERM (`kill`, a container or job being
//! stopped). The first signal stops the run in progress gracefully — what was measured so far is
//! kept and written — and a second of either exits at once. Installed before Goose starts, so
//! Goose's own Ctrl-C handler stands aside.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Once;

use tokio::sync::Notify;

/// A signal that stops a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Ctrl-C.
    Interrupt,
    /// A request to terminate.
    Terminate,
}

impl Signal {
    /// Its usual name, as records keep it.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// The exit status of a process it stopped: 128 + the signal's number.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }

    fn code(self) -> u8 {
        match self {
            Signal::Interrupt => 1,
            Signal::Terminate => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Signal::Interrupt),
            2 => Some(Signal::Terminate),
            _ => None,
        }
    }
}

/// The first signal received, by [`Signal::code`]; 0 before any.
static RECEIVED: AtomicU8 = AtomicU8::new(0);
static STOPPING: Notify = Notify::const_new();
static INSTALL: Once = Once::new();

/// Installs the handlers (once per process; later calls do nothing).
pub fn install() {
    INSTALL.call_once(|| {
        if let Err(e) = ctrlc::set_handler(|| received(Signal::Interrupt)) {
            log::warn!("cannot install the Ctrl-C handler: {e}");
        }
        watch_terminate();
    });
}

/// Whether a signal asked the run to stop.
pub fn interrupted() -> bool {
    signal().is_some()
}

/// The first signal that asked the run to stop, if any.
pub fn signal() -> Option<Signal> {
    Signal::from_code(RECEIVED.load(Ordering::SeqCst))
}

/// Returns once a signal asks the run to stop (at once if one already has).
pub(crate) async fn stopping() {
    loop {
        // Created before the check, so a signal in between still wakes it.
        let notified = STOPPING.notified();
        if interrupted() {
            return;
        }
        notified.await;
    }
}

fn received(signal: Signal) {
    let first = RECEIVED.compare_exchange(0, signal.code(), Ordering::SeqCst, Ordering::SeqCst);
    if first.is_err() {
        eprintln!("{} again: exiting at once", signal.name());
        std::process::exit(i32::from(signal.exit_code()));
    }
    eprintln!(
        "{}: stopping, the record keeps what was measured (again to exit at once)",
        signal.name()
    );
    goose::trigger_killswitch(signal.name());
    STOPPING.notify_waiters();
}

/// Listens for SIGTERM on a thread of its own. The handler is registered before this returns,
/// so a SIGTERM from then on stops the run instead of killing the process.
#[cfg(unix)]
fn watch_terminate() {
    use tokio::signal::unix::{signal, SignalKind};

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            log::warn!("cannot listen for SIGTERM: {e}");
            return;
        }
    };
    let terminate = {
        let _context = runtime.enter();
        signal(SignalKind::terminate())
    };
    let mut terminate = match terminate {
        Ok(terminate) => terminate,
        Err(e) => {
            log::warn!("cannot install the SIGTERM handler: {e}");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("twinpeak-signals".to_owned())
        .spawn(move || {
            runtime.block_on(async {
                while terminate.recv().await.is_some() {
                    received(Signal::Terminate);
                }
            });
        });
    if let Err(e) = spawned {
        log::warn!("cannot listen for SIGTERM: {e}");
    }
}

#[cfg(not(unix))]
fn watch_terminate() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_exit_as_shells_expect() {
        assert_eq!(Signal::Interrupt.exit_code(), 130);
        assert_eq!(Signal::Terminate.exit_code(), 143);
        for signal in [Signal::Interrupt, Signal::Terminate] {
            assert_eq!(Signal::from_code(signal.code()), Some(signal));
        }
        assert_eq!(Signal::from_code(0), None);
        assert_eq!(Signal::Terminate.name(), "SIGTERM");
    }
}
