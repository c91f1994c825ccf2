//! A run spread over load workers, end to end: four `twinpeak load --worker K/4` processes
//! against an in-process backend send what one process sends alone, and `twinpeak report`
//! merges their records into one verdict, refusing records that do not make up their run.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use common::*;
use twinpeak_core::{PhaseRecord, RunRecord};

const WORKERS: u32 = 4;

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

fn described(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// An RFC 3339 time `seconds` from now, whole seconds.
fn in_seconds(seconds: u64) -> String {
    let at = SystemTime::now() + Duration::from_secs(seconds);
    let secs = at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    twinpeak_core::timestamp::rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Runs `scenario` as `WORKERS` worker processes at once, worker K's record in `out/wK`; every
/// worker must exit 0 (a worker's share alone does not gate).
async fn fleet(scenario: &Path, url: &str, out: &Path, extra: &[&str]) -> Vec<PathBuf> {
    // Time for every worker to start and launch its users, on a busy machine.
    let start = in_seconds(8);
    let runs = (0..WORKERS).map(|k| {
        let mut args = strings(&["load", &scenario.display().to_string(), "--target", url]);
        args.extend(strings(&[
            "--worker",
            &format!("{k}/{WORKERS}"),
            "--start-at",
            &start,
        ]));
        args.extend(strings(&[
            "--seed",
            "7",
            "--quiet",
            "--late-limit",
            "2s",
            "--out",
        ]));
        args.push(out.join(format!("w{k}")).display().to_string());
        args.extend(strings(extra));
        twinpeak(args)
    });
    for output in futures_util::future::join_all(runs).await {
        assert!(output.status.success(), "{}", described(&output));
    }
    (0..WORKERS)
        .map(|k| out.join(format!("w{k}/run.json")))
        .collect()
}

/// A copy of the record `file`, changed by `change`, written to `dir/NAME/run.json`.
fn altered(file: &Path, dir: &Path, name: &str, change: impl FnOnce(&mut RunRecord)) -> PathBuf {
    let mut record = RunRecord::read(file).unwrap();
    change(&mut record);
    let path = dir.join(name).join("run.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    record.write(&path).unwrap();
    path
}

/// Runs `twinpeak report` over `files` and asserts it exits 2 with every one of `says` in its
/// error.
async fn refused(files: &[PathBuf], out: &Path, says: &[&str]) {
    let output = twinpeak(report(files, out)).await;
    assert_eq!(output.status.code(), Some(2), "{}", described(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for said in says {
        assert!(stderr.contains(said), "{said:?} not in {stderr}");
    }
}

/// Requests sent over every phase of `record`.
fn requests_sent(record: &RunRecord) -> u64 {
    record
        .phases
        .iter()
        .flat_map(|p| p.requests.values())
        .map(|r| r.sent)
        .sum()
}

fn report(files: &[PathBuf], out: &Path) -> Vec<String> {
    let mut args = vec!["report".to_owned()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    args.extend(["--out".to_owned(), out.display().to_string()]);
    args
}

/// `report` of the records of a [`fleet`] run, allowing a worker to start up to 5 s late: on
/// a machine busy with other tests, launching a worker's users can take seconds, and what is
/// checked here is how the shares add up (a late worker's refusal is checked on its own).
fn fleet_report(files: &[PathBuf], out: &Path) -> Vec<String> {
    let mut args = report(files, out);
    args.extend(strings(&["--max-late", "5s"]));
    args
}

/// (method, path) of every request the backend received but the workers' clock probes.
fn sent(backend: &Backend) -> Vec<(String, String)> {
    let mut sent: Vec<_> = backend
        .requests()
        .into_iter()
        .filter(|r| r.method != "HEAD")
        .map(|r| (r.method, r.uri))
        .collect();
    sent.sort();
    sent
}

fn p99_us(phases: &[&PhaseRecord]) -> u64 {
    let mut all = twinpeak_core::new_latency_histogram();
    for phase in phases {
        all.add(&phase.totals().unwrap().corrected_us.0).unwrap();
    }
    all.value_at_quantile(0.99)
}

fn within(ours: f64, theirs: f64, share: f64) -> bool {
    (ours - theirs).abs() <= share * theirs.abs()
}

/// The whole run's peak rate: 8,000 a second in an optimised build (`cargo test --release`). A
/// debug build of the harness cannot offer that on two cores, nor launch the users it needs in
/// a few seconds, and runs at 500: four debug processes at more keep two slow cores so busy
/// that answers wait for their client to be scheduled, which the one process compared with
/// does not see as much.
const PEAK_RPS: u64 = if cfg!(debug_assertions) { 500 } else { 8_000 };

/// How long the backend takes to answer: long enough that a few milliseconds of a busy
/// machine's noise stay well within 5% of the p99, short enough that the users it takes to
/// keep the peak's requests in flight start in a few seconds.
const ANSWER_MS: u64 = if cfg!(debug_assertions) { 250 } else { 100 };

const PEAK: &str = "name: fleet
baseline_rps: RATE
max_users: USERS
timeout: 5s
phases:
  - {name: warm, duration: 1s, rps: 0.5x}
  - {name: peak, duration: 2s, rps: 1x}
requests:
  - {name: search, weight: 3, method: GET, path: \"/search/{{int 1 1000000}}\"}
  - {name: book, weight: 1, method: POST, path: \"/book/{{uuid}}\"}
slo: {p99: 10s}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_send_what_one_machine_sends_and_merge_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("peak.yaml");
    // Half as many again as the requests in flight at the peak.
    let users = PEAK_RPS * ANSWER_MS * 3 / 2_000;
    let yaml = PEAK.replace("RATE", &PEAK_RPS.to_string());
    std::fs::write(&scenario, yaml.replace("USERS", &users.to_string())).unwrap();
    let answer = || {
        Backend::start(
            Duration::from_millis(ANSWER_MS),
            std::sync::Arc::new(|_: &Received| text_ok()),
        )
    };
    let (alone_backend, fleet_backend) = (answer().await, answer().await);

    let alone_out = dir.path().join("alone");
    let mut args = strings(&["load", &scenario.display().to_string(), "--target"]);
    args.push(alone_backend.url());
    args.extend(strings(&[
        "--seed",
        "7",
        "--quiet",
        "--late-limit",
        "2s",
        "--out",
    ]));
    args.push(alone_out.display().to_string());
    let output = twinpeak(args).await;
    assert!(output.status.success(), "{}", described(&output));
    let alone = RunRecord::read(alone_out.join("run.json")).unwrap();

    let files = fleet(
        &scenario,
        &fleet_backend.url(),
        &dir.path().join("fleet"),
        &[],
    )
    .await;
    let merged_out = dir.path().join("merged");
    let output = twinpeak(fleet_report(&files, &merged_out)).await;
    assert!(output.status.success(), "{}", described(&output));
    let merged = RunRecord::read(merged_out.join("run.json")).unwrap();
    let workers: Vec<RunRecord> = files.iter().map(|f| RunRecord::read(f).unwrap()).collect();

    assert_eq!(
        sent(&fleet_backend),
        sent(&alone_backend),
        "the same requests, for one seed"
    );
    assert_eq!(
        sent(&alone_backend).len() as u64,
        PEAK_RPS / 2 + 2 * PEAK_RPS
    );
    // The most a generator's own lateness can move completions from one second to the next:
    // the rate times its longest scheduling lag, which the records keep.
    let longest_lag_s = alone
        .phases
        .iter()
        .chain(workers.iter().flat_map(|w| &w.phases))
        .map(|p| p.lag_us.0.max())
        .max()
        .unwrap_or(0) as f64
        / 1e6;
    let moved = PEAK_RPS as f64 * longest_lag_s;
    for phase in &alone.phases {
        let ours = merged.phase(&phase.name, &phase.target).unwrap();
        assert!(
            within(ours.achieved_rps, phase.achieved_rps, 0.01),
            "phase {}: {} req/s merged, {} alone",
            phase.name,
            ours.achieved_rps,
            phase.achieved_rps
        );
        let count = |p: &PhaseRecord| -> BTreeMap<String, u64> {
            p.requests
                .iter()
                .map(|(n, r)| (n.clone(), r.sent))
                .collect()
        };
        assert_eq!(count(ours), count(phase), "phase {}", phase.name);
        for second in &phase.timeline {
            let theirs = ours.timeline.iter().find(|t| t.t_s == second.t_s).unwrap();
            let late: Vec<f64> = workers
                .iter()
                .map(|w| w.worker.as_ref().unwrap().late_ms)
                .collect();
            let off = (theirs.requests as f64 - second.requests as f64).abs();
            assert!(
                off <= 0.02 * second.requests as f64 + moved,
                "second {}: {} merged, {} alone (workers late by {late:?} ms, {moved:.0} moved by the generators' own lag)",
                second.t_s,
                theirs.requests,
                second.requests
            );
        }
        let of_workers: Vec<&PhaseRecord> = workers
            .iter()
            .map(|w| w.phase(&phase.name, &phase.target).unwrap())
            .collect();
        assert_eq!(
            p99_us(&[ours]),
            p99_us(&of_workers),
            "phase {}: added exactly",
            phase.name
        );
    }
    let merged_p99 = p99_us(&merged.phases.iter().collect::<Vec<_>>());
    let alone_p99 = p99_us(&alone.phases.iter().collect::<Vec<_>>());
    // Within 5%, beyond what a generator itself added: its own scheduling lag, which the
    // records keep apart (a lone process stalled by a busy machine delays all its arrivals,
    // workers one at a time). With the generators on time, that is nothing.
    let lag_p99 = |phases: &mut dyn Iterator<Item = u64>| phases.max().unwrap_or(0);
    let own_lag = lag_p99(
        &mut alone
            .phases
            .iter()
            .map(|p| p.lag_us.0.value_at_quantile(0.99)),
    )
    .max(lag_p99(
        &mut merged
            .workers
            .iter()
            .flat_map(|w| w.phases.iter().map(|p| p.lag_p99_us)),
    ));
    assert!(
        (merged_p99 as f64 - alone_p99 as f64).abs() <= 0.05 * alone_p99 as f64 + own_lag as f64,
        "p99 {merged_p99} µs merged, {alone_p99} µs alone, generators' own lag p99 {own_lag} µs"
    );
    let verdict = &merged.slo[0];
    assert_eq!((verdict.metric.as_str(), verdict.pass), ("p99", true));
    assert_eq!(
        (verdict.actual * 1_000.0).round() as u64,
        merged_p99,
        "judged on the merged run"
    );
    assert_eq!(merged.workers.len(), WORKERS as usize);
    let page = std::fs::read_to_string(merged_out.join("report.md")).unwrap();
    assert!(
        page.contains("### Load workers") && page.contains("| 3/4 | peak |"),
        "{page}"
    );
}

fn text_ok() -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    common::text(200, "ok")
}

const SHORT: &str = "name: short
baseline_rps: 200
max_users: 8
phases:
  - {name: flat, duration: 1s, rps: 1x}
requests:
  - {name: get, weight: 1, method: GET, path: \"/bookings/{{int 1 50}}\"}
slo: {p99: 1us}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_merge_judges_the_run_and_names_records_that_do_not_make_it_up() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("short.yaml");
    std::fs::write(&scenario, SHORT).unwrap();
    let backend = Backend::fixed("ok").await;
    let files = fleet(&scenario, &backend.url(), &dir.path().join("fleet"), &[]).await;

    // Each worker exited 0 though its share fails p99 ≤ 1 µs: the merged run fails it.
    let output = twinpeak(fleet_report(&files, &dir.path().join("m"))).await;
    assert_eq!(output.status.code(), Some(1), "{}", described(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("1 SLO(s) failed:\n  FAIL run (target): p99"),
        "{stderr}"
    );
    // The verdict is the whole run's: every worker's requests are in the merged record.
    let merged_file = dir.path().join("m/run.json");
    let merged = RunRecord::read(&merged_file).unwrap();
    let each: Vec<u64> = files
        .iter()
        .map(|f| requests_sent(&RunRecord::read(f).unwrap()))
        .collect();
    assert!(each.iter().all(|&n| n > 0), "{each:?}");
    assert_eq!(requests_sent(&merged), each.iter().sum::<u64>());
    assert_eq!(merged.workers.len(), WORKERS as usize);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("4 worker records merged"), "{stdout}");
    // Each merged second's p99 is read from the workers' histograms of that second, added.
    let workers: Vec<RunRecord> = files.iter().map(|f| RunRecord::read(f).unwrap()).collect();
    let timeline = &merged.phases[0].timeline;
    assert!(!timeline.is_empty());
    for point in timeline {
        let mut seconds = workers
            .iter()
            .flat_map(|w| &w.phases[0].timeline)
            .filter(|theirs| theirs.t_s.round() == point.t_s)
            .map(|theirs| theirs.latency_us.clone().expect("a worker's").0);
        let mut added = seconds.next().unwrap();
        for theirs in seconds {
            added.add(&theirs).unwrap();
        }
        let exact = if added.is_empty() {
            0
        } else {
            added.value_at_quantile(0.99)
        };
        let merged_latency = point
            .latency_us
            .as_ref()
            .expect("kept in the merged record");
        assert_eq!(merged_latency.len(), added.len(), "second {}", point.t_s);
        assert!(
            added.equivalent(point.p99_us, exact),
            "second {}: {} vs {exact}",
            point.t_s,
            point.p99_us
        );
    }

    // A worker that died mid-run left its last checkpoint; one stopped by the Job, its signal.
    let partial = altered(&files[2], dir.path(), "partial", |r| r.partial = true);
    let unfinished = [
        files[0].clone(),
        files[1].clone(),
        partial.clone(),
        files[3].clone(),
    ];
    let named = format!(
        "{} is not the whole of worker 2/4's share",
        partial.display()
    );
    refused(&unfinished, &dir.path().join("m5"), &[&named, "partial"]).await;
    let stopped = altered(&files[1], dir.path(), "stopped", |r| {
        r.interrupted = Some("SIGTERM".into())
    });
    let unfinished = [
        files[0].clone(),
        stopped.clone(),
        files[2].clone(),
        files[3].clone(),
    ];
    let named = format!(
        "{} is not the whole of worker 1/4's share",
        stopped.display()
    );
    refused(&unfinished, &dir.path().join("m6"), &[&named, "SIGTERM"]).await;

    // A worker of another launch under the same run id: another scale.
    let scaled = altered(&files[3], dir.path(), "scaled", |r| r.scale = 2.0);
    let apart = [
        files[0].clone(),
        files[1].clone(),
        files[2].clone(),
        scaled.clone(),
    ];
    let named = format!(
        "{} and {} are not of one run: scale 2 ≠ 1",
        scaled.display(),
        files[0].display()
    );
    refused(&apart, &dir.path().join("m8"), &[&named]).await;

    // A worker two minutes late sent its share of the spike two minutes after the others.
    let late = altered(&files[2], dir.path(), "late", |r| {
        r.worker.as_mut().unwrap().late_ms = 120_000.0
    });
    let behind = [
        files[0].clone(),
        files[1].clone(),
        late.clone(),
        files[3].clone(),
    ];
    let named = format!(
        "worker 2/4 of run `{}` ({}) started its schedule 120000 ms after",
        merged.workers[0].mark.run_id,
        late.display()
    );
    refused(&behind, &dir.path().join("m9"), &[&named, "--max-late"]).await;
    let mut allowed = report(&behind, &dir.path().join("m10"));
    allowed.extend(strings(&["--max-late", "3m"]));
    let output = twinpeak(allowed).await;
    assert_eq!(output.status.code(), Some(1), "{}", described(&output));

    // The merged record given back with the records it came from would count them twice.
    let mut again = files.clone();
    again.push(merged_file.clone());
    let named = format!("{} is the record merged from run", merged_file.display());
    refused(&again, &dir.path().join("m7"), &[&named, "count twice"]).await;

    let missing = twinpeak(report(
        &[files[0].clone(), files[1].clone(), files[3].clone()],
        &dir.path().join("m2"),
    ))
    .await;
    assert_eq!(missing.status.code(), Some(2), "{}", described(&missing));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("lacks the record of worker 2/4"),
        "{stderr}"
    );
    assert!(stderr.contains(&files[3].display().to_string()), "{stderr}");

    let copy = dir.path().join("copy/run.json");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(&files[1], &copy).unwrap();
    let mut twice = files.clone();
    twice.push(copy.clone());
    let duplicated = twinpeak(report(&twice, &dir.path().join("m3"))).await;
    assert_eq!(
        duplicated.status.code(),
        Some(2),
        "{}",
        described(&duplicated)
    );
    let stderr = String::from_utf8_lossy(&duplicated.stderr);
    let both = format!("{}, {}", files[1].display(), copy.display());
    assert!(
        stderr.contains("worker 1/4 of run") && stderr.contains(&both),
        "{stderr}"
    );

    let other_out = dir.path().join("other");
    let mut args = strings(&[
        "load",
        &scenario.display().to_string(),
        "--target",
        &backend.url(),
    ]);
    args.extend(strings(&[
        "--worker", "2/4", "--seed", "7", "--run-id", "another", "--quiet", "--out",
    ]));
    args.push(other_out.display().to_string());
    let output = twinpeak(args).await;
    assert!(output.status.success(), "{}", described(&output));
    let other = other_out.join("run.json");
    let foreign = [
        files[0].clone(),
        files[1].clone(),
        other.clone(),
        files[3].clone(),
    ];
    let mixed = twinpeak(report(&foreign, &dir.path().join("m4"))).await;
    assert_eq!(mixed.status.code(), Some(2), "{}", described(&mixed));
    let stderr = String::from_utf8_lossy(&mixed.stderr);
    assert!(
        stderr.contains("lacks the record of worker 2/4"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{} (run `another`)", other.display())),
        "{stderr}"
    );
}

#[tokio::test]
async fn check_validates_the_share_without_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("seats.yaml");
    std::fs::write(
        &scenario,
        "name: seats\nbaseline_rps: 100\nmax_users: 10\nphases: [{name: flat, duration: 2s, rps: 1x}]\n\
         requests: [{name: book, path: \"/seats/{{seat}}\"}]\ndata: {seat: {split: [a1, a2, a3, a4, a5]}}\n",
    )
    .unwrap();
    let check = |worker: &str| {
        twinpeak(strings(&[
            "load",
            &scenario.display().to_string(),
            "--worker",
            worker,
            "--check",
        ]))
    };
    let output = check("1/4").await;
    assert!(output.status.success(), "{}", described(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("worker 1/4 (from 0)") && stdout.contains("50 of those arrivals"),
        "{stdout}"
    );
    assert!(
        stdout.contains("3 of 10 users") && stdout.contains("data.seat: split, 1 value(s)"),
        "{stdout}"
    );
    // Far ahead passes a check made before the day, but no run waits for it.
    let backend = Backend::fixed("ok").await;
    for (start, check, says) in [
        ("1969-12-31T23:59:59Z", "--check", "before 1970"),
        ("9999-12-31T23:59:59Z", "--quiet", "at most 24 h ahead"),
    ] {
        let output = twinpeak(strings(&[
            "load",
            &scenario.display().to_string(),
            "--target",
            &backend.url(),
            "--worker",
            "1/4",
            "--start-at",
            start,
            check,
        ]))
        .await;
        assert_eq!(output.status.code(), Some(2), "{}", described(&output));
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(says),
            "{}",
            described(&output)
        );
    }
    assert!(backend.requests().is_empty(), "nothing sent");
    for (bad, says) in [
        ("4/4", "workers count from 0"),
        ("5/6", "5 value(s) split over 6"),
        ("0/11", "max_users 10 cannot be split"),
    ] {
        let output = check(bad).await;
        assert_eq!(output.status.code(), Some(2), "{}", described(&output));
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(says),
            "{}",
            described(&output)
        );
    }
}
