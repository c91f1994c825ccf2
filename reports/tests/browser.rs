//! The report in a real browser: headless Chromium renders `report.html`, and the picture must
//! show something and the page must hold the headline figures as the report formatted them.
//!
//! Needs Chromium (`/usr/bin/chromium`, or the path in `$CHROMIUM`): `apt-get install -y
//! chromium`. Without it the test fails, saying so.

mod common;

use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{holiday_run, proxy_snapshot};
use twinpeak_reports::report::{Input, Report};

/// Longest a Chromium run may take before it is killed.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Share of pixels that must differ from the page's background.
const MIN_INK: f64 = 0.02;

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "this test renders the report in headless Chromium, which was not found at {}: install \
         it with `apt-get install -y chromium`, or set CHROMIUM to its path",
        path.display()
    );
    path
}

/// What one Chromium run printed.
struct Output {
    stdout: String,
    stderr: String,
}

/// Runs headless Chromium on `page` with `extra` arguments and a profile of its own, killing
/// it after [`TIMEOUT`].
fn run_chromium(page: &Path, extra: &[String]) -> Output {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Chromium starts");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Chromium did not finish within {TIMEOUT:?}; killed it");
        }
        thread::sleep(Duration::from_millis(50));
    };
    let output = Output {
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    assert!(
        status.success(),
        "Chromium failed ({status}): {}",
        output.stderr
    );
    output
}

/// The PNG's size and its pixels as RGB.
fn decode_png(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let mut decoder = png::Decoder::new(BufReader::new(File::open(path).unwrap()));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let samples = info.color_type.samples();
    let pixels = buf[..info.buffer_size()]
        .chunks_exact(samples)
        .map(|p| match samples {
            1 | 2 => [p[0], p[0], p[0]],
            _ => [p[0], p[1], p[2]],
        })
        .collect();
    (info.width, info.height, pixels)
}

fn written_report() -> (tempfile::TempDir, PathBuf, Report) {
    let report = Report::build(vec![
        (PathBuf::from("holiday.json"), Input::Run(holiday_run())),
        (
            PathBuf::from("proxy.json"),
            Input::Snapshot(proxy_snapshot()),
        ),
    ])
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let written = report.write(dir.path()).unwrap();
    (dir, written.html, report)
}

#[test]
fn chromium_renders_the_report() {
    let (dir, html, report) = written_report();

    let shot = dir.path().join("report.png");
    run_chromium(
        &html,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,2000".to_owned(),
        ],
    );
    if let Some(keep) = std::env::var_os("TWINPEAK_KEEP_SCREENSHOT") {
        fs::copy(&shot, keep).unwrap();
    }
    let (width, height, pixels) = decode_png(&shot);
    assert_eq!((width, height), (1280, 2000));
    let background = pixels[0];
    let differs = |p: &[u8; 3]| p.iter().zip(background).any(|(a, b)| a.abs_diff(b) > 8);
    let ink = pixels.iter().filter(|p| differs(p)).count() as f64 / pixels.len() as f64;
    assert!(
        ink > MIN_INK,
        "the screenshot is nearly blank: {:.2}% of pixels differ from the background",
        ink * 100.0
    );
    let colours: std::collections::BTreeSet<[u8; 3]> = pixels.iter().copied().collect();
    assert!(colours.len() > 50, "only {} colours", colours.len());

    let dom = run_chromium(&html, &["--dump-dom".to_owned()]).stdout;
    assert!(
        dom.contains("<h1>holiday-peak: legacy vs rebuilt</h1>"),
        "{dom}"
    );
    let headline = report.headline();
    for row in &headline.rows {
        for figure in [&row.before, &row.after].into_iter().flatten() {
            assert!(
                dom.contains(&figure.text),
                "{}: no {}",
                row.label,
                figure.text
            );
        }
        if let Some(change) = &row.change {
            assert!(
                dom.contains(&change.text),
                "{}: no {}",
                row.label,
                change.text
            );
        }
    }
    for sentence in &headline.summary {
        assert!(
            dom.contains(sentence.as_str()),
            "no summary sentence: {sentence}"
        );
    }
    assert!(
        dom.contains("<code>/bookings/{id}</code>"),
        "route names unescaped"
    );
    assert_eq!(dom.matches("<svg class=\"chart\"").count(), 3);
    assert!(dom.contains(">FAIL</span>") && dom.contains(">PASS</span>"));
}
