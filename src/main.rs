//! `twinpeak`: prove a rebuilt backend against the legacy one under real and peak traffic.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod demo;
mod replay_compare;
mod report;
mod report_state;
mod scenario;
use twinpeak_proxy::{Config, LoadedConfig};

#[derive(Parser)]
#[command(name = "twinpeak", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the shadowing proxy: serve clients from the primary, mirror a share to the shadow.
    Proxy {
        /// The proxy configuration (YAML).
        #[arg(long, short)]
        config: PathBuf,
        /// Take the listening sockets over from the running proxy (which then drains and
        /// exits once sent SIGQUIT) instead of binding them.
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate a proxy configuration and print it with every default filled in.
    CheckConfig {
        /// The proxy configuration (YAML).
        config: PathBuf,
    },
    /// Replay a peak scenario (or recorded requests) at open-model arrival rates.
    Load(Box<twinpeak_loadgen::LoadCommand>),
    /// Make scenarios from what was observed (`scenario from-recording DIR --out FILE`).
    #[command(subcommand)]
    Scenario(scenario::ScenarioCommand),
    /// Run the booking API testbed, legacy or rebuilt build.
    Testbed(twinpeak_testbed::TestbedCommand),
    /// Write the before/after report from run records and proxy snapshots.
    Report(report::ReportCommand),
    /// Show it all on the built-in testbed: shadowing, load, comparison and the report.
    Demo(demo::DemoCommand),
}

/// mimalloc: the proxy allocates small buffers per request from several threads, which glibc's
/// allocator serves markedly slower.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn load(path: &Path) -> Result<LoadedConfig, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

/// How the proxy starts: binding its addresses, or taking them over with `--upgrade`.
fn start(upgrade: bool) -> twinpeak_proxy::Start {
    match upgrade {
        true => twinpeak_proxy::Start::Upgrade,
        false => twinpeak_proxy::Start::Fresh,
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match cli.command {
        Command::Proxy { config, upgrade } => match load(&config) {
            Ok(loaded) => match twinpeak_proxy::run(loaded, start(upgrade)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            },
            Err(code) => code,
        },
        Command::Load(command) => replay_compare::execute_load(&command),
        Command::Scenario(command) => command.execute(),
        Command::Testbed(command) => command.execute(),
        Command::Report(command) => command.execute(),
        Command::Demo(command) => command.execute(),
        Command::CheckConfig { config } => match load(&config) {
            Ok(loaded) => {
                println!("# {} (sha256 {})", loaded.path.display(), loaded.sha256);
                println!("# state: {}", loaded.state_location());
                print!("{}", loaded.config.to_yaml());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
    }
}
