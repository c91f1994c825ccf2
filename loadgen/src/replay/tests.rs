use twinpeak_core::recording::{encode_member, segment_name, RecordedBody, RecordedResponse};

use super::*;
use crate::replay::rails::ALLOW_WRITES;
use crate::replay::recording::tests::exchange;

const START: u64 = 1_767_225_600_000_000;

/// A recording directory of `records` in two segments.
fn recording(records: &[RecordedExchange]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = records.split_at(records.len() / 2);
    for (seq, part) in [a, b].into_iter().enumerate() {
        let name = segment_name(part.first().map_or(0, |r| r.at_us / 1_000), seq as u64);
        std::fs::write(dir.path().join(name), encode_member(part).unwrap()).unwrap();
    }
    dir
}

fn gets(n: u64, gap_us: u64) -> Vec<RecordedExchange> {
    (0..n)
        .map(|i| exchange(START + i * gap_us, "GET", &format!("/r/{i}")))
        .collect()
}

fn request(inputs: &[PathBuf]) -> ReplayRequest<'_> {
    ReplayRequest {
        inputs,
        scale: 1.0,
        ..ReplayRequest::default()
    }
}

#[test]
fn speeds_read_as_factors() {
    assert_eq!(parse_speed("10x").unwrap(), 10.0);
    assert_eq!(parse_speed("10").unwrap(), 10.0);
    assert_eq!(parse_speed(" 0.5X").unwrap(), 0.5);
    for bad in ["0x", "-1", "fast", "infx"] {
        assert!(parse_speed(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_recording_keeps_its_gaps_scaled_by_the_speed_or_the_rate() {
    let dir = recording(&gets(101, 10_000));
    let inputs = [dir.path().to_path_buf()];
    let (loaded, plan) = prepare(&request(&inputs)).unwrap();
    let schedule = plan.schedule(Share::WHOLE).unwrap().unwrap();
    assert_eq!(schedule.total_arrivals(), 101);
    assert_eq!(
        schedule.arrival(100).unwrap().offset,
        Duration::from_secs(1)
    );
    assert_eq!(
        loaded.scenario.phases[0].duration,
        schedule.total_duration()
    );
    assert_eq!(plan.entries[7].path, "/r/7");
    let fast = ReplayRequest {
        speed: Some("10x"),
        ..request(&inputs)
    };
    let (_, plan) = prepare(&fast).unwrap();
    let schedule = plan.schedule(Share::WHOLE).unwrap().unwrap();
    assert_eq!(
        schedule.arrival(100).unwrap().offset,
        Duration::from_millis(100)
    );
    let rate = ReplayRequest {
        rps: Some(400.0),
        ..request(&inputs)
    };
    let (_, plan) = prepare(&rate).unwrap();
    let schedule = plan.schedule(Share::WHOLE).unwrap().unwrap();
    assert_eq!(
        schedule.arrival(100).unwrap().offset,
        Duration::from_millis(250)
    );
    assert!(
        plan.description.contains("replayed at 4x"),
        "{}",
        plan.description
    );
    let both = ReplayRequest {
        rps: Some(400.0),
        speed: Some("2x"),
        ..request(&inputs)
    };
    assert!(prepare(&both).is_err());
    let scaled = ReplayRequest {
        scale: 0.5,
        ..request(&inputs)
    };
    assert!(prepare(&scaled)
        .unwrap_err()
        .to_string()
        .contains("--speed"));
}

#[test]
fn writes_bodies_and_answers_are_handled_as_recorded() {
    let mut records = gets(4, 1_000);
    records[1].method = "POST".into();
    records[1].body = RecordedBody {
        data: "{\"a\":1}".into(),
        ..RecordedBody::default()
    };
    records[2].body = RecordedBody {
        data: "cut".into(),
        truncated_from: Some(9_000),
        ..RecordedBody::default()
    };
    records[3].response = Some(RecordedResponse {
        status: 200,
        headers: vec![],
        body: RecordedBody::default(),
        latency_us: 5,
    });
    let dir = recording(&records);
    let inputs = [dir.path().to_path_buf()];
    let err = prepare(&request(&inputs)).unwrap_err().to_string();
    assert!(
        err.contains("1 write(s) (POST 1)") && err.contains(ALLOW_WRITES),
        "{err}"
    );
    let allowed = ReplayRequest {
        allow_writes: true,
        ..request(&inputs)
    };
    let (_, plan) = prepare(&allowed).unwrap();
    // The truncated body is skipped; the answer is kept for --compare.
    let paths: Vec<_> = plan.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["/r/0", "/r/1", "/r/3"]);
    assert_eq!(plan.entries[1].body, b"{\"a\":1}");
    assert!(plan.entries[2].recorded.is_some() && plan.entries[0].recorded.is_none());
    let reads = ReplayRequest {
        filter: Filter::new(&[], &["GET".into()], None, None).unwrap(),
        ..request(&inputs)
    };
    assert_eq!(prepare(&reads).unwrap().1.entries.len(), 2);
}

#[test]
fn a_corpus_is_replayed_alone_and_without_timing_flags() {
    let dir = recording(&gets(4, 1_000));
    let corpus = dir.path().join("corpus.jsonl");
    std::fs::write(&corpus, "{\"path\":\"/a\"}\n").unwrap();
    let inputs = [corpus.clone()];
    let (loaded, plan) = prepare(&request(&inputs)).unwrap();
    assert!(plan.schedule(Share::WHOLE).is_none());
    assert_eq!(loaded.scenario.baseline_rps, CORPUS_RPS);
    let fast = ReplayRequest {
        speed: Some("2x"),
        ..request(&inputs)
    };
    assert!(prepare(&fast)
        .unwrap_err()
        .to_string()
        .starts_with("--speed needs"));
    let mixed = [corpus, dir.path().to_path_buf()];
    assert!(prepare(&request(&mixed)).is_err());
}

#[test]
fn a_replay_has_users_for_its_busiest_moment() {
    let even: Vec<_> = (0..1_000).map(|i| Duration::from_millis(i * 10)).collect();
    assert_eq!(users_for(&even), 20, "100/s for 200 ms");
    assert_eq!(users_for(&even[..1]), MIN_REPLAY_USERS);
    let fast: Vec<_> = (0..1_000)
        .map(|i| Duration::from_micros(i * 1_000))
        .collect();
    assert_eq!(users_for(&fast), 200, "1,000/s for 200 ms");
    let mut burst = even.clone();
    burst.extend((0..5_000).map(|i| Duration::from_secs(20) + Duration::from_micros(i * 10)));
    assert_eq!(users_for(&burst), REPLAY_USERS);
}
