//! A steady load (keep-alive and new connections both) through the proxy across a SIGHUP
//! that changes the mirror share, one whose file is refused, and a binary upgrade (a second
//! process started with `--upgrade`, SIGQUIT to the first): no request fails, no connection
//! is refused, the new settings are in force, the old process exits, and the state store
//! holds every request exactly once. The real binary on loopback.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// Requests each load worker sends a second.
const PER_WORKER_PER_SECOND: u64 = 50;
/// Longest the load runs, whatever happens.
const LOAD_LIMIT: Duration = Duration::from_secs(60);
/// Failures kept for the assertion's message.
const KEPT_FAILURES: usize = 10;

/// What the load saw.
#[derive(Default)]
struct Tally {
    answered: AtomicU64,
    failed: AtomicU64,
    refused: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn failure(&self, refused: bool, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if refused {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        let mut kept = self.failures.lock().unwrap();
        if kept.len() < KEPT_FAILURES {
            kept.push(what);
        }
    }
}

/// Steady requests to `url` until `stop`: two workers on kept-alive connections, two on a
/// new connection for every request.
fn steady_load(
    url: String,
    stop: Arc<AtomicBool>,
) -> (Arc<Tally>, Vec<tokio::task::JoinHandle<()>>) {
    let tally = Arc::new(Tally::default());
    let workers = [true, true, false, false]
        .into_iter()
        .map(|keep_alive| {
            let (url, stop, tally) = (url.clone(), stop.clone(), tally.clone());
            tokio::spawn(async move {
                let client = match keep_alive {
                    true => client(),
                    false => reqwest::Client::builder()
                        .timeout(Duration::from_secs(10))
                        .pool_max_idle_per_host(0)
                        .build()
                        .unwrap(),
                };
                let mut ticks =
                    tokio::time::interval(Duration::from_secs(1) / PER_WORKER_PER_SECOND as u32);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) && started.elapsed() < LOAD_LIMIT {
                    ticks.tick().await;
                    match client.get(&url).send().await {
                        Ok(answer) => {
                            let status = answer.status().as_u16();
                            match answer.text().await {
                                Ok(body) if status == 200 && body == "legacy" => {
                                    tally.answered.fetch_add(1, Ordering::Relaxed);
                                }
                                other => tally.failure(false, format!("{status}: {other:?}")),
                            }
                        }
                        Err(e) => tally.failure(e.is_connect(), format!("{e:?}")),
                    }
                }
            })
        })
        .collect();
    (tally, workers)
}

/// A `twinpeak proxy` started here, killed when dropped.
struct Started(Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Started {
    /// `twinpeak proxy --config CONFIG ARGS...`, its log written to `log`.
    fn proxy(config: &Path, args: &[&str], log: &Path) -> Started {
        let child = Command::new(env!("CARGO_BIN_EXE_twinpeak"))
            .args(["proxy", "--config"])
            .arg(config)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        Started(child)
    }

    async fn exited_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

async fn mirror_percent(admin: &str) -> f64 {
    match client().get(admin).send().await {
        Ok(answer) => answer
            .json::<serde_json::Value>()
            .await
            .map(|v| v["percent"].as_f64().unwrap_or(-1.0))
            .unwrap_or(-1.0),
        Err(_) => -1.0,
    }
}

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Requests the proxy at `admin` counts on every route.
async fn requests_counted(admin: &str) -> u64 {
    let status = get_json(&format!("{admin}/api/v1/status")).await;
    status["counters"]["requests"]
        .as_object()
        .map(|routes| routes.values().filter_map(|n| n.as_u64()).sum())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_load_survives_reloads_and_a_binary_upgrade_without_a_failed_request() {
    let primary = Backend::fixed("legacy").await;
    let shadow = Backend::fixed("rebuilt").await;
    let here = tempfile::tempdir().unwrap();
    let socket = here.path().join("upgrade.sock");
    let mut old = Proxy::start(&format!(
        "primary: {{ url: {} }}\nshadow: {{ url: {} }}\nmirror: {{ percent: 10 }}\n\
         routes: [\"/bookings/{{id}}\", {{ path: \"/partners/{{id}}\", mirror: false }}]\n\
         shutdown: {{ drain: 5s, upgrade_sock: {} }}\n",
        primary.url(),
        shadow.url(),
        socket.display()
    ))
    .await;
    let mirror_url = old.admin_url("/api/v1/mirror");
    let original = std::fs::read_to_string(&old.config).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (tally, workers) = steady_load(old.url("/bookings/1"), stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;

    // (a) A SIGHUP that changes the mirror share and a route's mirror setting.
    let original = original.replace("mirror: false", "mirror: true");
    std::fs::write(&old.config, original.replace("percent: 10", "percent: 50")).unwrap();
    old.signal("HUP");
    assert!(
        eventually(Duration::from_secs(5), || async {
            mirror_percent(&mirror_url).await == 50.0
        })
        .await,
        "the share changed by SIGHUP is in force"
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            old.log_text()
                .contains("applied: mirror, routes (mirror settings)")
        })
        .await,
        "{}",
        old.log_text()
    );

    // (b) A SIGHUP with a file that does not load: refused, the running share stays.
    std::fs::write(&old.config, original.replace("percent: 10", "percent: 250")).unwrap();
    old.signal("HUP");
    assert!(
        eventually(Duration::from_secs(5), || async {
            old.log_text().contains("reload refused")
        })
        .await,
        "{}",
        old.log_text()
    );
    assert_eq!(mirror_percent(&mirror_url).await, 50.0);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // (c) A binary upgrade: the new process reads the file as it now is.
    std::fs::write(&old.config, original.replace("percent: 10", "percent: 75")).unwrap();
    let new_log = here.path().join("new.log");
    let mut new = Started::proxy(&old.config, &["--upgrade"], &new_log);
    assert!(
        eventually(Duration::from_secs(10), || async {
            log_of(&new_log).contains("upgrade: waiting on")
        })
        .await,
        "the new process waits for the sockets: {}",
        log_of(&new_log)
    );
    old.signal("QUIT");
    let status = old.exited_within(Duration::from_secs(20)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "the old process exits after handing over: {status:?}\n{}",
        old.log_text()
    );
    assert!(
        new.0.try_wait().unwrap().is_none(),
        "the new process serves on: {}",
        log_of(&new_log)
    );
    assert_eq!(
        mirror_percent(&mirror_url).await,
        75.0,
        "the new process's share is in force"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }

    let answered = tally.answered.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    let refused = tally.refused.load(Ordering::Relaxed);
    println!("across the reloads and the upgrade: {answered} answered, {failed} failed, {refused} refused");
    assert_eq!(
        (failed, refused),
        (0, 0),
        "{answered} answered; failures: {:?}",
        tally.failures.lock().unwrap()
    );
    assert!(answered >= 1000, "a steady load ran: {answered} answered");
    let old_log = old.log_text();
    for step in [
        "SIGQUIT: handing the listening sockets over",
        "for the new process",
        "listener sockets sent",
        "every request answered",
    ] {
        assert!(
            old_log.contains(step),
            "{step:?} in the old log:\n{old_log}"
        );
    }

    // The store holds every request exactly once: what both processes wrote, taken up by a
    // proxy started afresh on it.
    let admin = format!("http://{}", old.admin);
    let served_by_new = requests_counted(&admin).await;
    assert!(served_by_new > 0 && served_by_new <= answered);
    kill(&new, "TERM");
    assert!(new.exited_within(Duration::from_secs(10)).await.is_some());
    let fresh_log = here.path().join("fresh.log");
    let fresh = Started::proxy(&old.config, &[], &fresh_log);
    assert!(
        eventually(Duration::from_secs(10), || async {
            tokio::net::TcpStream::connect(old.admin).await.is_ok()
        })
        .await,
        "{}",
        log_of(&fresh_log)
    );
    assert_eq!(
        requests_counted(&admin).await,
        answered,
        "every request is in the store once"
    );
    drop(fresh);
}

fn kill(started: &Started, signal: &str) {
    let sent = Command::new("kill")
        .args(["-s", signal, &started.0.id().to_string()])
        .status();
    assert!(sent.is_ok_and(|s| s.success()), "kill -s {signal}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrading_with_no_proxy_running_fails_at_once_saying_so() {
    let here = tempfile::tempdir().unwrap();
    let config = here.path().join("proxy.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: {}\nadmin: {{ listen: {} }}\nprimary: {{ url: http://127.0.0.1:9 }}\n\
             state: {{ off: true }}\n",
            free_port(),
            free_port()
        ),
    )
    .unwrap();
    let log = here.path().join("new.log");
    let started = Instant::now();
    let mut new = Started::proxy(&config, &["--upgrade"], &log);
    let status = new.exited_within(Duration::from_secs(10)).await;
    assert!(
        status.is_some_and(|s| !s.success()),
        "exits with a failure: {status:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let text = log_of(&log);
    assert!(
        text.contains("admin.listen: --upgrade: nothing listens on"),
        "{text}"
    );
    assert!(
        text.contains("/upgrade-") && text.contains(".sock"),
        "names the socket: {text}"
    );
}

/// A proxy of `primary` with its hand-over socket in `here`, and no state kept.
async fn proxy_to_upgrade(primary: &Backend, here: &Path) -> Proxy {
    Proxy::start(&format!(
        "primary: {{ url: {} }}\nshutdown: {{ upgrade_sock: {} }}\nstate: {{ off: true }}\n",
        primary.url(),
        here.join("upgrade.sock").display()
    ))
    .await
}

/// Starts `twinpeak proxy --upgrade` with `old`'s configuration, the line starting with `key`
/// replaced by `line`; asserts that it fails before it waits for the sockets, and that `old`
/// was never asked for them and serves on. The new process's log.
async fn refused_upgrade(old: &Proxy, here: &Path, key: &str, line: &str) -> String {
    let running = std::fs::read_to_string(&old.config).unwrap();
    let new_config = running
        .lines()
        .map(|l| match l.starts_with(key) {
            true => line,
            false => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(new_config.contains(line), "{new_config}");
    let config = here.join("new.yaml");
    std::fs::write(&config, new_config).unwrap();
    let log = here.join("new.log");
    let mut new = Started::proxy(&config, &["--upgrade"], &log);
    let status = new.exited_within(Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| !s.success()), "{status:?}");
    let text = log_of(&log);
    assert!(
        !text.contains("waiting on"),
        "never waited for the sockets: {text}"
    );
    let answer = client().get(old.url("/bookings/1")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "legacy");
    text
}

#[tokio::test]
async fn an_upgrade_whose_state_store_cannot_open_stops_before_taking_the_sockets_over() {
    let primary = Backend::fixed("legacy").await;
    let here = tempfile::tempdir().unwrap();
    let old = proxy_to_upgrade(&primary, here.path()).await;
    // The new configuration keeps its state under a path that is a file, not a directory.
    let blocker = here.path().join("not-a-directory");
    std::fs::write(&blocker, "").unwrap();
    let state = format!(
        "state: {{ sqlite: {} }}",
        blocker.join("state.db").display()
    );
    let text = refused_upgrade(&old, here.path(), "state:", &state).await;
    assert!(text.contains("state"), "names the store: {text}");
}

#[tokio::test]
async fn an_upgrade_to_an_address_another_process_holds_stops_before_taking_the_sockets_over() {
    let primary = Backend::fixed("legacy").await;
    let here = tempfile::tempdir().unwrap();
    let old = proxy_to_upgrade(&primary, here.path()).await;
    // This test's own process holds the address the new configuration adds.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap();
    let listen = format!("listen: [{}, {taken}]", old.addr);
    let text = refused_upgrade(&old, here.path(), "listen:", &listen).await;
    let expected = format!(
        "listen: --upgrade: {taken} is held by process {}, not by the running proxy (process {})",
        std::process::id(),
        old.pid()
    );
    assert!(text.contains(&expected), "{text}");
}

#[tokio::test]
async fn sigquit_with_no_new_process_waiting_is_refused_and_the_proxy_serves_on() {
    let primary = Backend::fixed("legacy").await;
    let here = tempfile::tempdir().unwrap();
    let socket = here.path().join("upgrade.sock");
    let proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\nshutdown: {{ upgrade_sock: {} }}\nstate: {{ off: true }}\n",
        primary.url(),
        socket.display()
    ))
    .await;
    // The socket file a new process that stopped while waiting leaves: nothing listens on it.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    proxy.signal("QUIT");
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.log_text().contains("SIGQUIT refused, serving on")
        })
        .await,
        "says why: {}",
        proxy.log_text()
    );
    // Past the 5 s a hand-over would have given both processes, the proxy still serves.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let answer = client().get(proxy.url("/bookings/1")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "legacy");
    assert!(
        !proxy.log_text().contains("sending socks"),
        "{}",
        proxy.log_text()
    );
}

#[tokio::test]
async fn an_upgrade_that_does_not_happen_leaves_the_recordings_manifest_alone() {
    let primary = Backend::fixed("legacy").await;
    let here = tempfile::tempdir().unwrap();
    let recording = here.path().join("rec");
    let old = Proxy::start(&format!(
        "primary: {{ url: {} }}\nshutdown: {{ upgrade_sock: {} }}\nstate: {{ off: true }}\n\
         record: {{ dir: {} }}\n",
        primary.url(),
        here.path().join("upgrade.sock").display(),
        recording.display()
    ))
    .await;
    let set = admin_change(
        "PUT",
        &old.admin_url("/api/v1/record"),
        r#"{"enabled": true, "percent": 10, "by": "ops"}"#,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(set.status(), 200);
    let manifest = recording.join("recording.json");
    let percent =
        |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap()["percent"].clone();
    assert!(
        eventually(Duration::from_secs(5), || async {
            percent(&std::fs::read_to_string(&manifest).unwrap()) == 10.0
        })
        .await
    );
    let before = std::fs::read_to_string(&manifest).unwrap();

    // No SIGQUIT: the new process gives up waiting for the sockets.
    let log = here.path().join("new.log");
    let mut new = Started::proxy(&old.config, &["--upgrade"], &log);
    let status = new.exited_within(Duration::from_secs(20)).await;
    assert!(status.is_some_and(|s| !s.success()), "{status:?}");
    assert_eq!(
        std::fs::read_to_string(&manifest).unwrap(),
        before,
        "{}",
        log_of(&log)
    );
    let answer = client().get(old.url("/bookings/1")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
}
