//! What can stop the proxy, each naming the configuration key at fault and saying why.
//!
//! - [`InvalidKey`]: a check across keys failed while the configuration was read (the file's
//!   line and column are added by the configuration, which knows the text).
//! - [`SetupError`]: a value that reads well could not be put to use as the proxy started: an
//!   address to listen on is taken, an upstream does not resolve, the corpus cannot be opened.
//! - [`StartError`]: a [`SetupError`] with the file it came from, shown as
//!   `FILE: KEY: reason`.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A configuration check that failed: the dotted key at fault (`canary.ramp[1].hold`) and what
/// is wrong, shown as `key: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct InvalidKey {
    /// The dotted key at fault.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl InvalidKey {
    /// The check of `key` failed for `message`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        InvalidKey {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// A configured value the proxy could not put to use as it started, shown as `key: reason`.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct SetupError {
    /// The dotted key whose value failed (`shadow.url`, `admin.listen`).
    pub key: &'static str,
    /// What went wrong with it.
    pub problem: SetupProblem,
}

impl SetupError {
    /// `key`'s value failed with `problem`.
    pub fn new(key: &'static str, problem: SetupProblem) -> Self {
        SetupError { key, problem }
    }
}

/// What went wrong with a configured value at start. The messages carry the system's own
/// error text, so each reads whole.
#[derive(Debug, thiserror::Error)]
pub enum SetupProblem {
    /// An upstream's host name did not resolve.
    #[error("cannot resolve {authority}: {error}")]
    Unresolved {
        /// The `host:port` looked up.
        authority: String,
        /// Why the lookup failed.
        error: std::io::Error,
    },
    /// An upstream's host name resolved to no address at all.
    #[error("cannot resolve {authority}: no address")]
    NoAddress {
        /// The `host:port` looked up.
        authority: String,
    },
    /// An address to listen on is taken or not this machine's.
    #[error("cannot listen on {address}: {error}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why it could not be bound.
        error: std::io::Error,
    },
    /// A certificate or key a listener or upstream names could not be used.
    #[error("{0}")]
    Tls(String),
    /// The diff corpus directory could not be opened.
    #[error("cannot open {}: {error}", dir.display())]
    Corpus {
        /// The directory.
        dir: PathBuf,
        /// Why it could not be opened.
        error: std::io::Error,
    },
    /// The recording directory could not be made, or its manifest or first segment written.
    #[error("cannot record to {}: {error}", dir.display())]
    Recording {
        /// The directory.
        dir: PathBuf,
        /// What the system reported.
        error: std::io::Error,
    },
    /// The access log's file could not be opened for appending.
    #[error("cannot write the access log to {}: {error}", path.display())]
    AccessLog {
        /// The file.
        path: PathBuf,
        /// What the system reported.
        error: std::io::Error,
    },
    /// A canary has no candidate to send traffic to.
    #[error("no candidate (and no shadow to default to)")]
    NoCandidate,
    /// A header name the configuration gives is not one.
    #[error("{name:?} is not a valid header name")]
    HeaderName {
        /// The name as given.
        name: String,
    },
    /// The state store could not be opened, or what it holds taken up.
    #[error("{0}")]
    State(Box<crate::state::StateError>),
    /// `--upgrade`, but no proxy runs to take the listening sockets from.
    #[error(
        "--upgrade: nothing listens on {address}, so no running twinpeak can hand its \
         listening sockets over through {}; start without --upgrade",
        socket.display()
    )]
    NothingToUpgrade {
        /// The admin address a running proxy would hold.
        address: SocketAddr,
        /// The socket the hand-over would use.
        socket: PathBuf,
    },
    /// `--upgrade`, but an address to listen on is held by another process than the running
    /// proxy, so the new process could not listen on it once the running one had left.
    #[error(
        "--upgrade: {address} is held by {holders}, not by the running proxy ({running}); \
         free it or listen elsewhere"
    )]
    UpgradeAddressTaken {
        /// The address.
        address: SocketAddr,
        /// The processes holding it, as far as they could be seen.
        holders: String,
        /// The running proxy's processes (those holding `admin.listen`).
        running: String,
    },
    /// The private directory of the default hand-over socket cannot be made or is not private.
    #[error("{}: {reason}", dir.display())]
    HandOverDirectory {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why the proxy could not start, shown as `FILE: KEY: reason`.
#[derive(Debug, thiserror::Error)]
#[error("{}: {setup}", file.display())]
pub struct StartError {
    /// The configuration file.
    pub file: PathBuf,
    /// The value that failed, and why.
    pub setup: SetupError,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_file_key_and_reason() {
        let taken = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let error = StartError {
            file: PathBuf::from("proxy.yaml"),
            setup: SetupError::new(
                "admin.listen",
                SetupProblem::Listen {
                    address: "127.0.0.1:9901".parse().unwrap(),
                    error: taken,
                },
            ),
        };
        assert!(
            error
                .to_string()
                .starts_with("proxy.yaml: admin.listen: cannot listen on 127.0.0.1:9901: "),
            "{error}"
        );
        let invalid = InvalidKey::new("threads", "must be at least 1");
        assert_eq!(invalid.to_string(), "threads: must be at least 1");
    }
}
