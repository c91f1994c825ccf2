//! Ctrl-C (SIGINT) during a run: the first stops the attack in progress gracefully (what was
//! measured so far is kept), a second exits at once. Installed before Goose starts, so Goose's
//! own handler stands aside.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();

/// Installs the handler (once per process; later calls do nothing).
pub fn install() {
    INSTALL.call_once(|| {
        let result = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                eprintln!("interrupted again: exiting at once");
                std::process::exit(130);
            }
            eprintln!("interrupted: stopping (Ctrl-C again to exit at once)");
            goose::trigger_killswitch("SIGINT received");
        });
        if let Err(e) = result {
            log::warn!("cannot install the Ctrl-C handler: {e}");
        }
    });
}

/// Whether Ctrl-C was pressed.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
