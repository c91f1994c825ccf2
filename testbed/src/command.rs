//! `twinpeak testbed`: its arguments and what it does with them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::{Build, Testbed};

/// Exit status when the testbed could not start.
pub const EXIT_START_FAILED: u8 = 2;

/// Arguments of `twinpeak testbed`: serve one build of the demo booking API until stopped.
#[derive(Debug, Clone, Args)]
pub struct TestbedCommand {
    /// Which build to serve.
    #[arg(value_enum)]
    pub build: Build,
    /// Address to listen on [default: 127.0.0.1:9001 for legacy, 127.0.0.1:9002 for rebuilt].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// SQLite database file: created and seeded when new or empty, kept as it is otherwise
    /// [default: a temporary file, removed on exit].
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
}

impl TestbedCommand {
    /// The address it listens on: `--listen`, or the build's default.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.unwrap_or_else(|| self.build.default_addr())
    }

    /// Serves until Ctrl-C (SIGINT) or SIGTERM, then stops in order; returns the exit status.
    pub fn execute(&self) -> ExitCode {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                return ExitCode::from(EXIT_START_FAILED);
            }
        };
        runtime.block_on(async {
            let testbed =
                match Testbed::start(self.build, self.listen_addr(), self.db.clone()).await {
                    Ok(testbed) => testbed,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(EXIT_START_FAILED);
                    }
                };
            stop_signal().await;
            log::info!("stopping testbed {}", testbed.build());
            testbed.shutdown().await;
            ExitCode::SUCCESS
        })
    }
}

/// Resolves on the first Ctrl-C (SIGINT) or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                log::warn!("cannot watch for SIGTERM ({e}); stop with Ctrl-C");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        command: TestbedCommand,
    }

    #[test]
    fn parses_build_address_and_database() {
        let cli = Cli::try_parse_from(["t", "rebuilt"]).unwrap();
        assert_eq!(cli.command.build, Build::Rebuilt);
        assert_eq!(cli.command.listen_addr().to_string(), "127.0.0.1:9002");
        assert_eq!(cli.command.db, None);
        let cli = Cli::try_parse_from(["t", "legacy", "--listen", "0.0.0.0:8000", "--db", "x.db"])
            .unwrap();
        assert_eq!(cli.command.listen_addr().to_string(), "0.0.0.0:8000");
        assert_eq!(cli.command.db, Some(PathBuf::from("x.db")));
        let cli = Cli::try_parse_from(["t", "legacy"]).unwrap();
        assert_eq!(cli.command.listen_addr().to_string(), "127.0.0.1:9001");
        assert!(Cli::try_parse_from(["t", "modern"]).is_err());
        assert!(Cli::try_parse_from(["t"]).is_err());
    }
}
