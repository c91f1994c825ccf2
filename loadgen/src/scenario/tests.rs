use super::*;

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(text, Path::new("s.yaml"))
}

const EXAMPLE: &str = r#"
name: holiday-peak
baseline_rps: 200               # a normal day's rate; phase rates are multiples of it
max_users: 2000                 # concurrency ceiling
timeout: 10s                    # per request (default 30s)
phases:
  - {name: warmup,  duration: 2m,  rps: 1x}
  - {name: ramp,    duration: 5m,  rps: 1x..10x}   # linear ramp
  - {name: peak,    duration: 10m, rps: 10x}
  - {name: spike,   duration: 30s, rps: 15x, slo: {p99: 400ms}}
  - {name: recover, duration: 3m,  rps: 2x}
requests:
  - {name: search, weight: 6, method: GET, path: "/partners?city={{city}}&service={{service}}"}
  - {name: book,   weight: 2, method: POST, path: /bookings, json: {partner_id: "{{int 1 500}}", slot: "{{date +1d..+7d}}"}, extract: {booking_id: "$.id"}}
  - {name: status, weight: 3, method: GET, path: "/bookings/{{booking_id}}", after: book}
data: {city: [mumbai, delhi, bengaluru, pune], service: data/services.csv}
slo: {p99: 200ms, p95: 150ms, error_rate: 1%}
"#;

/// A valid scenario whose lines are numbered for the error tests.
const MIN: &str = "name: t\n\
                   baseline_rps: 10\n\
                   max_users: 5\n\
                   phases:\n  \
                     - {name: p, duration: 1s, rps: 1x}\n\
                   requests:\n  \
                     - {name: a, path: /a}\n";

#[test]
fn parses_the_example() {
    let s = parse(EXAMPLE).unwrap();
    assert_eq!(s.name, "holiday-peak");
    assert_eq!(s.baseline_rps, 200.0);
    assert_eq!(s.max_users, 2000);
    assert_eq!(s.timeout, Duration::from_secs(10));
    assert_eq!(s.phases.len(), 5);
    assert_eq!(
        s.phases[1].rps,
        RateSpec {
            start: 1.0,
            end: 10.0
        }
    );
    assert_eq!(s.phases[3].duration, Duration::from_secs(30));
    assert_eq!(s.total_duration(), Duration::from_secs(20 * 60 + 30));
    assert_eq!(s.peak_rps(), 3000.0);
    let book = &s.requests[1];
    assert_eq!(book.method, http::Method::POST);
    assert_eq!(book.extract["booking_id"].as_str(), "$.id");
    assert_eq!(s.requests[2].after.as_deref(), Some("book"));
    assert!(s.requests[0].is_success(302) && !s.requests[0].is_success(404));
    assert_eq!(
        s.data["service"],
        DataSource::Csv {
            file: "data/services.csv".into(),
            column: None
        }
    );
    assert_eq!(s.slo.error_rate.map(Percent::fraction), Some(0.01));
    assert_eq!(s.slo.p95, Some(Duration::from_millis(150)));
    let spike = s.slo_for(&s.phases[3]);
    assert_eq!(spike.p99, Some(Duration::from_millis(400)));
    assert_eq!(spike.p95, Some(Duration::from_millis(150)));
    assert_eq!(s.slo_for(&s.phases[0]), s.slo);
}

#[test]
fn defaults_and_round_trip() {
    let s = parse(MIN).unwrap();
    assert_eq!(s.timeout, Duration::from_secs(30));
    assert_eq!(s.requests[0].weight, 1);
    assert_eq!(s.requests[0].method, http::Method::GET);
    for text in [MIN, EXAMPLE] {
        let s = parse(text).unwrap();
        assert_eq!(parse(&s.to_yaml()).unwrap(), s, "{}", s.to_yaml());
    }
}

#[test]
fn rates_ramp_linearly() {
    let s = parse(&MIN.replace("rps: 1x", "rps: 1x..10x").replace("1s", "10s")).unwrap();
    let phase = &s.phases[0];
    assert!(phase.rps.is_ramp());
    let at = |secs: f64| phase.rate_at(Duration::from_secs_f64(secs), 100.0);
    assert_eq!(at(0.0), 100.0);
    assert_eq!(at(5.0), 550.0);
    assert_eq!(at(10.0), 1000.0);
    assert_eq!(at(60.0), 1000.0);
    let flat = Phase {
        name: "f".into(),
        duration: Duration::from_secs(1),
        rps: RateSpec::constant(2.0),
        slo: None,
    };
    assert_eq!(flat.rate_at(Duration::from_millis(300), 50.0), 100.0);
    assert_eq!(flat.rps.to_string(), "2x");
}

#[test]
fn absolute_rates_become_multiples() {
    let s = parse(&MIN.replace("rps: 1x", "rps: 5/s..2.5x")).unwrap();
    assert_eq!(
        s.phases[0].rps,
        RateSpec {
            start: 0.5,
            end: 2.5
        }
    );
    assert_eq!(s.phases[0].rps.to_string(), "0.5x..2.5x");
}

#[test]
fn a_scale_out_of_range_is_refused_not_a_panic() {
    let s = parse(EXAMPLE).unwrap();
    for (factor, says) in [
        (1e18, "longer than a load run's 30 days"),
        (f64::MAX, "longer than a load run's 30 days"),
        (1e-30, "too short to send anything"),
        (f64::NAN, "must be above 0"),
        (-1.0, "must be above 0"),
    ] {
        let why = s.try_scaled(factor).unwrap_err().0;
        assert!(why.contains(says), "{factor}: {why}");
    }
    assert_eq!(s.try_scaled(0.1).unwrap(), s.scaled(0.1));
}

#[test]
fn scaled_multiplies_phase_durations() {
    let s = parse(EXAMPLE).unwrap();
    let short = s.scaled(0.1);
    assert_eq!(short.phases[0].duration, Duration::from_secs(12));
    assert_eq!(short.phases[3].duration, Duration::from_secs(3));
    assert_eq!(short.total_duration(), Duration::from_secs(123));
    assert_eq!(short.timeout, s.timeout);
    assert_eq!(short.phases[1].rps, s.phases[1].rps);
}

/// Parsing `text` fails at `key` on `line` with a message containing `fragment`.
#[track_caller]
fn fails(text: &str, key: &str, line: usize, fragment: &str) {
    let e = parse(text).expect_err(text);
    assert_eq!(e.key.as_deref(), Some(key), "{e}\n{text}");
    assert_eq!(e.line, Some(line), "{e}\n{text}");
    assert!(e.message.contains(fragment), "{e}\n{text}");
    assert!(e.to_string().starts_with(&format!("s.yaml:{line}:")), "{e}");
    assert!(e.to_string().contains(&format!(": {key}: ")), "{e}");
}

/// MIN with its phase (line 5) replaced.
fn with_phase(phase: &str) -> String {
    MIN.replace("  - {name: p, duration: 1s, rps: 1x}\n", phase)
}

/// MIN with its request (line 7) replaced.
fn with_requests(requests: &str) -> String {
    MIN.replace("  - {name: a, path: /a}\n", requests)
}

#[test]
fn scenario_errors_name_line_and_key() {
    fails(
        &format!("{MIN}colour: red\n"),
        "colour",
        8,
        "unknown field `colour`",
    );
    fails(
        &MIN.replace("max_users: 5", "max_users: 0"),
        "max_users",
        3,
        "at least 1",
    );
    fails(
        &MIN.replace("_rps: 10", "_rps: 0"),
        "baseline_rps",
        2,
        "above 0",
    );
    fails(
        &MIN.replace("_rps: 10", "_rps: -3"),
        "baseline_rps",
        2,
        "above 0",
    );
    let timeout = MIN.replace("max_users: 5\n", "max_users: 5\ntimeout: soon\n");
    fails(&timeout, "timeout", 4, "expected a duration");
}

#[test]
fn phase_errors_name_line_and_key() {
    let phase = |p: &str| with_phase(&format!("  - {{name: p, {p}}}\n"));
    fails(
        &phase("duration: 1s, rsp: 1x"),
        "phases[0].rsp",
        5,
        "unknown field",
    );
    let d = "expected a duration";
    fails(
        &phase("duration: 1 fortnight, rps: 1x"),
        "phases[0].duration",
        5,
        d,
    );
    let d = "longer than zero";
    fails(&phase("duration: 0s, rps: 1x"), "phases[0].duration", 5, d);
    fails(
        &phase("duration: 1s, rps: 10"),
        "phases[0].rps",
        5,
        "write 10x or 10/s",
    );
    fails(
        &phase("duration: 1s, rps: 1x..ten"),
        "phases[0].rps",
        5,
        "such as 2x",
    );
    fails(
        &phase("duration: 1s, rps: -1x"),
        "phases[0].rps",
        5,
        "such as 2x",
    );
    fails(
        &phase("duration: 1s"),
        "phases[0]",
        5,
        "missing field `rps`",
    );
    fails(&with_phase("  []\n"), "phases", 4, "at least one phase");
    let twice = "  - {name: p, duration: 1s, rps: 1x}\n".repeat(2);
    fails(&with_phase(&twice), "phases[1].name", 6, "earlier phase");
}

#[test]
fn request_errors_name_line_and_key() {
    let one = |r: &str| with_requests(&format!("  - {{name: a, path: /a, {r}}}\n"));
    fails(&one("weight: 0"), "requests", 6, "every weight is 0");
    let twice = "  - {name: a, path: /a}\n".repeat(2);
    fails(
        &with_requests(&twice),
        "requests[1].name",
        8,
        "earlier request",
    );
    fails(
        &one("after: nope"),
        "requests[0].after",
        7,
        "names no request",
    );
    fails(&one("after: a"), "requests[0].after", 7, "after itself");
    let looped = "  - {name: a, path: /a, after: b}\n  - {name: b, path: /b, after: a}\n";
    fails(
        &with_requests(looped),
        "requests[0].after",
        7,
        "none of them can ever run",
    );
    let bad = "`int` takes two";
    fails(
        &with_requests("  - {name: a, path: '/{{int 1}}'}\n"),
        "requests[0].path",
        7,
        bad,
    );
    fails(
        &with_requests("  - {name: a, path: a}\n"),
        "requests[0].path",
        7,
        "start with /",
    );
    fails(
        &one("method: G3T"),
        "requests[0].method",
        7,
        "expected GET, HEAD",
    );
    fails(&one("method: TRACE"), "requests[0].method", 7, "or DELETE");
    fails(&one("json: {}, body: x"), "requests[0].body", 7, "not both");
    let header = "requests[0].headers.bad header";
    fails(&one("headers: {'bad header': x}"), header, 7, "header name");
    let status = "from 100 to 599";
    fails(
        &one("expect_status: 700"),
        "requests[0].expect_status",
        7,
        status,
    );
    fails(
        &one("extract: {id: id}"),
        "requests[0].extract.id",
        7,
        "must start with $",
    );
    let reserved = "cannot be used as a variable";
    fails(
        &one("extract: {uuid: $.id}"),
        "requests[0].extract.uuid",
        7,
        reserved,
    );
}

#[test]
fn variable_errors_name_line_and_key() {
    let unknown = "neither a data variable";
    let path = "  - {name: a, path: '/a/{{x}}'}\n";
    fails(&with_requests(path), "requests[0].path", 7, unknown);
    let not_after = "  - {name: a, path: /a, extract: {id: $.id}}\n  \
                     - {name: b, path: '/b/{{id}}'}\n";
    fails(
        &with_requests(not_after),
        "requests[1].path",
        8,
        "add `after: a`",
    );
    let wrong_after = "  - {name: a, path: /a, extract: {id: $.id}}\n  \
                       - {name: b, path: /b, body: '{{id}}', after: c}\n  \
                       - {name: c, path: /c}\n";
    fails(
        &with_requests(wrong_after),
        "requests[1].body",
        8,
        "extracted by \"a\"",
    );
    let both = "  - {name: a, path: /a, extract: {id: $.id}}\ndata: {id: [1]}\n";
    let key = "requests[0].extract.id";
    fails(&with_requests(both), key, 7, "also a data variable");
    let reserved = "cannot be used as a variable";
    fails(
        &format!("{MIN}data: {{int: [1]}}\n"),
        "data.int",
        8,
        reserved,
    );
    fails(
        &format!("{MIN}data: {{city: []}}\n"),
        "data.city",
        8,
        "has no values",
    );
    fails(
        &format!("{MIN}data: {{city: pune}}\n"),
        "data.city",
        8,
        "CSV file",
    );
}

#[test]
fn slo_errors_name_line_and_key() {
    let slo = |s: &str| format!("{MIN}slo: {{{s}}}\n");
    fails(
        &slo("error_rate: 120%"),
        "slo.error_rate",
        8,
        "from 0 to 100",
    );
    fails(
        &slo("error_rate: 101"),
        "slo.error_rate",
        8,
        "from 0 to 100",
    );
    fails(&slo("p90: 1s"), "slo.p90", 8, "unknown field `p90`");
    fails(
        &slo("p95: 1s, p99: 500ms"),
        "slo.p99",
        8,
        "is below p95 (1s)",
    );
    let phase = "  - {name: p, duration: 1s, rps: 1x, slo: {max: 1s, p50: 2s}}\n";
    fails(&with_phase(phase), "phases[0].slo.max", 5, "is below p50");
    let inherits = "  - name: p\n    duration: 1s\n    rps: 1x\n    slo: {p95: 300ms}\n";
    let text = format!("{}slo: {{p99: 200ms}}\n", with_phase(inherits));
    fails(&text, "phases[0].slo.p99", 8, "is below p95 (300ms)");
}

#[test]
fn error_rates_are_percent_with_or_without_the_sign() {
    for (written, percent) in [("2", 2.0), ("2%", 2.0), ("0.5", 0.5), ("0.5%", 0.5)] {
        let s = parse(&format!("{MIN}slo: {{error_rate: {written}}}\n")).unwrap();
        assert_eq!(
            s.slo.error_rate.map(Percent::value),
            Some(percent),
            "{written}"
        );
        assert_eq!(parse(&s.to_yaml()).unwrap(), s, "{}", s.to_yaml());
    }
}

#[test]
fn errors_in_block_style_point_at_the_key() {
    let text = "name: t\nbaseline_rps: 10\nmax_users: 5\nphases:\n  - name: p\n    duration: 1s\n    rps: 2x\nrequests:\n  - name: a\n    path: /a\n    after: b\n";
    let e = parse(text).unwrap_err();
    assert_eq!((e.line, e.column), (Some(11), Some(5)));
    assert_eq!(
        e.to_string(),
        "s.yaml:11:5: requests[0].after: \"b\" names no request"
    );
    let e = parse(&text.replace("rps: 2x", "rps: fast")).unwrap_err();
    assert_eq!((e.line, e.column), (Some(7), Some(5)));
    let e = parse("name: t\nphases: [\n").unwrap_err();
    assert!(e.line.is_some(), "{e}");
    let e = parse("name: t\n").unwrap_err();
    assert!(e.message.contains("missing field"), "{e}");
}

#[test]
fn after_chains_let_later_requests_use_earlier_extractions() {
    let text = with_requests(
        "  - {name: a, path: /a, extract: {id: $.id}}\n  \
           - {name: b, path: '/b/{{id}}', after: a}\n  \
           - {name: c, path: '/c/{{id}}', after: b}\n",
    );
    let s = parse(&text).unwrap();
    assert_eq!(s.ancestors(&s.requests[2]), ["b", "a"]);
}

#[test]
fn load_resolves_data_and_reports_missing_files_at_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.yaml");
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(
        dir.path().join("data/services.csv"),
        "service,minutes\nhaircut,30\n",
    )
    .unwrap();
    std::fs::write(&path, EXAMPLE).unwrap();
    let loaded = Scenario::load(&path).unwrap();
    assert_eq!(loaded.data.values("service").unwrap(), ["haircut"]);
    assert_eq!(loaded.data.values("city").unwrap().len(), 4);
    assert_eq!(loaded.sha256.len(), 64);
    std::fs::write(&path, EXAMPLE.replace("services.csv", "servics.csv")).unwrap();
    let e = Scenario::load(&path).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("data.service"));
    assert_eq!(e.line, Some(16));
    assert!(e.message.starts_with("cannot read data/servics.csv"), "{e}");
    let e = Scenario::load(&dir.path().join("none.yaml")).unwrap_err();
    assert!(e.message.starts_with("cannot read the file"), "{e}");
}

#[test]
fn shipped_scenarios_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut loaded = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            assert_eq!(s.scenario.name, stem);
            loaded.insert(stem, s);
        }
    }
    let names: Vec<&str> = loaded.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "black-friday",
            "holiday-peak",
            "lunch-hour",
            "smoke",
            "soak"
        ]
    );
    let minutes = |name: &str| loaded[name].scenario.total_duration().as_secs_f64() / 60.0;
    let peak = |name: &str| loaded[name].scenario.peak_rps() / loaded[name].scenario.baseline_rps;
    assert!((18.0..=22.0).contains(&minutes("holiday-peak")));
    let holiday = &loaded["holiday-peak"].scenario;
    assert_eq!(
        holiday
            .phases
            .iter()
            .find(|p| p.name == "peak")
            .unwrap()
            .rps,
        RateSpec::constant(10.0)
    );
    assert_eq!(peak("black-friday"), 8.0);
    assert_eq!(minutes("lunch-hour"), 75.0);
    assert!(minutes("soak") >= 8.0 * 60.0);
    let smoke = &loaded["smoke"].scenario;
    assert!((5.0..=7.0).contains(&smoke.total_duration().as_secs_f64()));
    assert_eq!(smoke.baseline_rps, 20.0);
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(3);
    for s in loaded.values() {
        let session = s
            .scenario
            .requests
            .iter()
            .flat_map(|r| r.extract.keys())
            .map(|k| (k.clone(), serde_json::Value::from("17")))
            .collect();
        let mut ctx = crate::template::RenderContext {
            rng: &mut rng,
            data: &s.data,
            session: &session,
            today: chrono::NaiveDate::from_ymd_opt(2024, 11, 29).unwrap(),
        };
        for r in &s.scenario.requests {
            assert!(r.path.render(&mut ctx).unwrap().starts_with('/'));
            if let Some(json) = &r.json {
                assert!(json.render(&mut ctx).unwrap().is_object());
            }
        }
    }
}
