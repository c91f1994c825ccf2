//! A plain Goose attack: the baseline `bench/load.sh` compares `twinpeak load` with.
//!
//! One scenario with one transaction, `GET /`, no wait time: every user sends its next request as
//! soon as the last one is answered (a closed model, as fast as the users can go). Goose's own
//! metrics stay on, as they are by default. When the attack is over it prints, as its last line,
//! the rate Goose measured: every request Goose counted divided by the duration it counted them
//! over (Goose resets its metrics once every user is launched, so both leave the launch out).
//!
//! ```text
//! cargo run --release -p twinpeak-loadgen --example plain_goose -- \
//!     --host http://127.0.0.1:19201 --users 64 --run-time 10
//! ```

use std::process::ExitCode;

use goose::config::GooseConfiguration;
use goose::metrics::GooseMetrics;
use goose::prelude::*;

const USAGE: &str = "usage: plain_goose --host URL --users N --run-time SECS

  --host URL        base URL to load, e.g. http://127.0.0.1:19201 (required)
  --users N         Goose users, each sending GET / in a loop without waiting (required, >= 1)
  --run-time SECS   seconds to run once every user is launched (required, >= 1)";

/// What the command line asked for.
struct Args {
    host: String,
    users: usize,
    run_time: usize,
}

/// Parses the command line by hand, so that Goose never sees it; returns a message on error.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut host, mut users, mut run_time) = (None, None, None);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--host" => {
                let url = value()?;
                if !url.starts_with("http://") && !url.starts_with("https://") {
                    return Err(format!("--host {url:?}: the URL must start with http://"));
                }
                host = Some(url);
            }
            "--users" => users = Some(positive(&flag, &value()?)?),
            "--run-time" => run_time = Some(positive(&flag, &value()?)?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        host: host.ok_or("--host is required")?,
        users: users.ok_or("--users is required")?,
        run_time: run_time.ok_or("--run-time is required")?,
    })
}

fn positive(flag: &str, text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "{flag} {text:?}: expected a whole number of at least 1"
        )),
    }
}

async fn get_root(user: &mut GooseUser) -> TransactionResult {
    let _goose = user.get("/").await?;
    Ok(())
}

async fn attack(args: &Args) -> Result<GooseMetrics, GooseError> {
    let attack = GooseAttack::initialize_with_config(GooseConfiguration::default())?
        .register_scenario(scenario!("PlainGoose").register_transaction(transaction!(get_root)));
    let attack = *attack.set_default(GooseDefault::Host, args.host.as_str())?;
    let attack = *attack.set_default(GooseDefault::Users, args.users)?;
    // Every user launched within about a quarter of a second, as `twinpeak load` does.
    let attack = *attack.set_default(
        GooseDefault::IncreaseRate,
        (args.users * 4).to_string().as_str(),
    )?;
    // And all stop as fast, once the run time is over.
    let attack = *attack.set_default(
        GooseDefault::DecreaseRate,
        (args.users * 4).to_string().as_str(),
    )?;
    let attack = *attack.set_default(GooseDefault::RunTime, args.run_time)?;
    // No remote control: its telnet listener would only collide between runs.
    let attack = *attack.set_default(GooseDefault::NoTelnet, true)?;
    attack.execute().await
}

/// Requests per second Goose measured: every request it counted ÷ the seconds it counted them
/// over; `None` when it measured no time.
fn requests_per_second(metrics: &GooseMetrics) -> Option<f64> {
    let requests: usize = metrics
        .requests
        .values()
        .map(|r| r.success_count + r.fail_count)
        .sum();
    (metrics.duration > 0).then(|| requests as f64 / metrics.duration as f64)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            if message.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("plain_goose: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let metrics = match attack(&args).await {
        Ok(metrics) => metrics,
        Err(e) => {
            eprintln!("plain_goose: the attack failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    match requests_per_second(&metrics) {
        Some(rps) => {
            println!("plain-goose requests/s: {rps:.1}");
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("plain_goose: Goose measured no time, so no rate");
            ExitCode::FAILURE
        }
    }
}
