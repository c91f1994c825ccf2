//! `twinpeak demo`: the whole story on the built-in testbed. Starts both booking API builds,
//! puts the shadowing proxy in front of legacy (mirroring 30% to rebuilt, comparing answers),
//! runs the holiday-peak scenario at a reduced scale through the proxy and directly against
//! both builds, takes the proxy's snapshot, and writes the before/after report.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use twinpeak_loadgen::{interrupt, run, LoadedScenario, RunOptions, RunResult, Scenario, Target};
use twinpeak_reports::report::{Input, Report};
use twinpeak_testbed::{Build, Testbed};

/// The shipped scenario the demo plays, and its data files.
const SCENARIO: &str = include_str!("../scenarios/holiday-peak.yaml");
const CITIES: &str = include_str!("../scenarios/data/cities.csv");
const SERVICES: &str = include_str!("../scenarios/data/services.csv");

/// A normal day's rate in the demo: the scenario's multiples (up to 15×) of this stay within
/// what one small machine can offer while both builds, the proxy and the load run on it.
const DEMO_BASELINE_RPS: f64 = 20.0;

/// Arguments of `twinpeak demo`.
#[derive(Debug, Args)]
pub struct DemoCommand {
    /// Finish in under a minute (a shorter rehearsal).
    #[arg(long)]
    pub quick: bool,
    /// Where to write the run (default runs/demo-TIME).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed for the load (default 1: the demo is repeatable).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The proxy, run as a child process; stopped when dropped.
struct ProxyProcess {
    child: Child,
    admin: SocketAddr,
    listen: SocketAddr,
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("no free loopback port")
}

impl DemoCommand {
    /// Runs the demo; returns the exit status: 130 or 143 when SIGINT or SIGTERM stopped it, as
    /// for `twinpeak load`.
    pub fn execute(&self) -> ExitCode {
        interrupt::install();
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: cannot start the runtime: {e}");
                return ExitCode::from(2);
            }
        };
        let outcome = runtime.block_on(self.run());
        if let Err(e) = &outcome {
            eprintln!("error: {e:#}");
        }
        match (interrupt::signal(), outcome) {
            (Some(signal), _) => ExitCode::from(signal.exit_code()),
            (None, Ok(())) => ExitCode::SUCCESS,
            (None, Err(_)) => ExitCode::FAILURE,
        }
    }

    /// Share of the scenario's durations played: the full holiday peak is about 20 minutes.
    fn scale(&self) -> f64 {
        if self.quick {
            0.005
        } else {
            0.04
        }
    }

    async fn run(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        let dir = self.out.clone().unwrap_or_else(|| {
            PathBuf::from("runs").join(format!(
                "demo-{}",
                chrono::Local::now().format("%Y%m%d-%H%M%S")
            ))
        });
        std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
        let scenario = write_scenario(&dir)?;
        let loaded = Scenario::load(&scenario)?;
        let loaded = LoadedScenario {
            scenario: Scenario {
                baseline_rps: DEMO_BASELINE_RPS,
                max_users: 256,
                ..loaded.scenario.scaled(self.scale())
            },
            ..loaded
        };

        step("starting the booking API, legacy and rebuilt builds");
        let legacy = Testbed::start(
            Build::Legacy,
            loopback_any_port(),
            Some(dir.join("legacy.db")),
        )
        .await
        .context("legacy testbed")?;
        let rebuilt = Testbed::start(
            Build::Rebuilt,
            loopback_any_port(),
            Some(dir.join("rebuilt.db")),
        )
        .await
        .context("rebuilt testbed")?;
        println!("  legacy  {}\n  rebuilt {}", legacy.url(), rebuilt.url());

        step(
            "starting the proxy: legacy serves clients, 30% mirrored to rebuilt, answers compared",
        );
        let proxy = start_proxy(&dir, &legacy.url(), &rebuilt.url()).await?;
        println!(
            "  proxy   http://{}   admin http://{}",
            proxy.listen, proxy.admin
        );

        let options = |targets: Vec<Target>| RunOptions {
            // With two builds, the full demo alternates them phase by phase so drift hits both
            // alike; the quick one runs each build in one go, which starts the load fewer times.
            interleave: targets.len() > 1 && !self.quick,
            targets,
            seed: self.seed,
            scale: self.scale(),
            late_limit: Duration::from_millis(100),
            progress: true,
            end_at_schedule: false,
            replay: None,
        };
        step(&format!(
            "holiday peak through the proxy ({:.0} s)",
            loaded.scenario.total_duration().as_secs_f64()
        ));
        let through_proxy = run(
            &loaded,
            &options(vec![Target {
                name: "proxy".into(),
                url: format!("http://{}", proxy.listen),
            }]),
        )
        .await?;
        write_record(&dir.join("proxy-run.json"), &through_proxy)?;
        if interrupt::interrupted() {
            bail!("interrupted");
        }
        let snapshot_path = dir.join("snapshot.json");
        let snapshot = fetch_snapshot(proxy.admin).await?;
        std::fs::write(&snapshot_path, &snapshot)
            .with_context(|| snapshot_path.display().to_string())?;

        step(&format!(
            "holiday peak directly against legacy and rebuilt ({:.0} s)",
            2.0 * loaded.scenario.total_duration().as_secs_f64()
        ));
        let direct = run(
            &loaded,
            &options(vec![
                Target {
                    name: "legacy".into(),
                    url: legacy.url(),
                },
                Target {
                    name: "rebuilt".into(),
                    url: rebuilt.url(),
                },
            ]),
        )
        .await?;
        let direct_path = dir.join("run.json");
        write_record(&direct_path, &direct)?;
        if interrupt::interrupted() {
            bail!("interrupted");
        }

        step("writing the report");
        drop(proxy);
        legacy.shutdown().await;
        rebuilt.shutdown().await;
        let inputs = [direct_path, snapshot_path]
            .into_iter()
            .map(|p| twinpeak_reports::report::read_input(&p).map(|i| (p, i)))
            .collect::<Result<Vec<(PathBuf, Input)>, _>>()?;
        let report = Report::build(inputs)?;
        report.write(&dir)?;
        println!("\n{}", report.headline());
        println!(
            "report: {}\n(finished in {:.0} s)",
            dir.join("report.html").display(),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

/// `127.0.0.1:0`: a free port chosen when binding.
fn loopback_any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn step(text: &str) {
    println!("==> {text}");
}

fn write_record(path: &Path, result: &RunResult) -> anyhow::Result<()> {
    Ok(result.record.write(path)?)
}

/// Writes the shipped scenario and its data next to the run, so the run is reproducible from
/// its directory alone.
fn write_scenario(dir: &Path) -> anyhow::Result<PathBuf> {
    let scenario_dir = dir.join("scenario");
    std::fs::create_dir_all(scenario_dir.join("data"))
        .with_context(|| scenario_dir.display().to_string())?;
    for (name, text) in [
        ("holiday-peak.yaml", SCENARIO),
        ("data/cities.csv", CITIES),
        ("data/services.csv", SERVICES),
    ] {
        let path = scenario_dir.join(name);
        std::fs::write(&path, text).with_context(|| path.display().to_string())?;
    }
    Ok(scenario_dir.join("holiday-peak.yaml"))
}

/// The demo's proxy configuration: bookings are state only legacy holds, so their reads are
/// kept off the mirror; searches and availability are compared.
fn proxy_config(
    listen: SocketAddr,
    admin: SocketAddr,
    legacy: &str,
    rebuilt: &str,
    corpus: &Path,
) -> String {
    format!(
        r#"# twinpeak demo: legacy serves every client; 30% of safe requests are mirrored to rebuilt.
listen: {listen}
threads: 2
admin: {{ listen: {admin} }}
primary: {{ url: {legacy} }}
shadow: {{ url: {rebuilt}, timeout: 5s, max_in_flight: 256 }}
mirror: {{ percent: 30 }}
routes:
  - "/partners"
  - "/partners/{{id}}/availability"
  - {{ path: "/bookings/{{id}}", mirror: false }}
  - "/bookings/{{id}}/cancel"
  - "/bookings"
  - "/health"
diff:
  noise: {{ resample_percent: 10 }}
  corpus: {corpus}
"#,
        corpus = corpus.display()
    )
}

/// Starts `twinpeak proxy` on free ports and waits until it answers (a few tries, since a free
/// port can be taken between choosing and binding).
async fn start_proxy(dir: &Path, legacy: &str, rebuilt: &str) -> anyhow::Result<ProxyProcess> {
    let exe = std::env::current_exe().context("cannot find the twinpeak binary")?;
    let mut last = String::new();
    for _ in 0..3 {
        let (listen, admin) = (free_addr()?, free_addr()?);
        let config = dir.join("proxy.yaml");
        std::fs::write(
            &config,
            proxy_config(listen, admin, legacy, rebuilt, &dir.join("corpus")),
        )
        .with_context(|| config.display().to_string())?;
        let log_path = dir.join("proxy.log");
        let log =
            std::fs::File::create(&log_path).with_context(|| log_path.display().to_string())?;
        let child = Command::new(&exe)
            .args(["proxy", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start the proxy")?;
        let mut proxy = ProxyProcess {
            child,
            admin,
            listen,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                last = format!("the proxy exited ({status}); see {}", log_path.display());
                break;
            }
            if tokio::net::TcpStream::connect(listen).await.is_ok()
                && tokio::net::TcpStream::connect(admin).await.is_ok()
            {
                return Ok(proxy);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if last.is_empty() {
            last = "the proxy did not start listening within 10 s".into();
        }
    }
    bail!(last)
}

/// `GET /api/v1/snapshot` from the proxy's admin listener.
async fn fetch_snapshot(admin: SocketAddr) -> anyhow::Result<Vec<u8>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let response = client
        .get(format!("http://{admin}/api/v1/snapshot"))
        .send()
        .await
        .context("cannot reach the proxy's admin listener")?;
    if !response.status().is_success() {
        bail!("the proxy's snapshot failed: {}", response.status());
    }
    let body = response
        .bytes()
        .await
        .context("cannot read the proxy's snapshot")?;
    Ok(body.to_vec())
}
