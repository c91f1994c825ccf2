use super::*;

#[test]
fn targets_are_named_or_default() {
    let t = parse_targets(&["http://127.0.0.1:8080/".into()]).unwrap();
    assert_eq!(t[0].name, "target");
    assert_eq!(t[0].url, "http://127.0.0.1:8080");
    let t = parse_targets(&["legacy=http://a:1".into(), "rebuilt=http://b:2".into()]).unwrap();
    assert_eq!(
        (t[0].name.as_str(), t[1].name.as_str()),
        ("legacy", "rebuilt")
    );
    assert!(parse_targets(&["http://a:1".into(), "http://b:2".into()]).is_err());
    assert!(parse_targets(&["a=ftp://x".into()]).is_err());
    assert!(parse_targets(&["a=http://x".into(), "a=http://y".into()]).is_err());
}

mod compare {
    use std::collections::BTreeMap;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::Mutex;
    use std::time::Duration;

    use clap::Parser;
    use twinpeak_core::recording::{
        encode_member, segment_name, RecordedBody, RecordedExchange, RecordedResponse,
    };
    use twinpeak_core::DiffSummary;

    use super::*;
    use crate::compare::{ReplayCompare, ReplayedAnswer};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        load: LoadCommand,
    }

    fn command(args: &[&str]) -> LoadCommand {
        Cli::parse_from(std::iter::once("load").chain(args.iter().copied())).load
    }

    /// Counts answers whose body differs from the recorded one, per target and route.
    #[derive(Debug, Default)]
    struct BodyCompare(Mutex<BTreeMap<(String, String), DiffSummary>>);

    impl ReplayCompare for BodyCompare {
        fn compare(&self, target: &str, recorded: &RecordedExchange, answer: &ReplayedAnswer<'_>) {
            let mut found = self.0.lock().unwrap();
            let summary = found
                .entry((target.to_owned(), recorded.route.clone()))
                .or_default();
            summary.compared += 1;
            let expected = recorded.response.as_ref().and_then(|r| r.body.bytes());
            if expected.as_deref() == Some(answer.body) && answer.status == 200 {
                summary.identical += 1;
            } else {
                summary.different += 1;
            }
        }

        fn summary(&self, target: &str) -> BTreeMap<String, DiffSummary> {
            let found = self.0.lock().unwrap();
            found
                .iter()
                .filter(|((t, _), _)| t == target)
                .map(|((_, route), s)| (route.clone(), s.clone()))
                .collect()
        }
    }

    /// A loopback HTTP server answering every request `{"price":2}`; its address.
    fn backend() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(1_000) {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut buffer = [0u8; 4096];
                    for _ in 0..10_000 {
                        match stream.read(&mut buffer) {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        let body = br#"{"price":2}"#;
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                            body.len()
                        );
                        if stream.write_all(head.as_bytes()).is_err()
                            || stream.write_all(body).is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    /// A recording of 20 GETs, the even ones recorded with the answer the backend gives.
    fn recording(dir: &std::path::Path) -> std::path::PathBuf {
        let records: Vec<RecordedExchange> = (0..20u64)
            .map(|i| RecordedExchange {
                at_us: 1_767_225_600_000_000 + i * 5_000,
                request_id: String::new(),
                route: "/prices/{id}".into(),
                method: "GET".into(),
                path: format!("/prices/{i}"),
                headers: vec![],
                body: RecordedBody::default(),
                response: Some(RecordedResponse {
                    status: 200,
                    headers: vec![],
                    body: RecordedBody {
                        data: if i % 2 == 0 {
                            r#"{"price":2}"#.into()
                        } else {
                            r#"{"price":1}"#.into()
                        },
                        ..RecordedBody::default()
                    },
                    latency_us: 800,
                }),
            })
            .collect();
        let rec = dir.join("rec");
        std::fs::create_dir_all(&rec).unwrap();
        std::fs::write(
            rec.join(segment_name(0, 0)),
            encode_member(&records).unwrap(),
        )
        .unwrap();
        rec
    }

    #[test]
    fn compared_answers_land_in_the_run_record_per_target_and_route() {
        let dir = tempfile::tempdir().unwrap();
        let rec = recording(dir.path());
        let out = dir.path().join("out");
        let (rec, out, url) = (
            rec.display().to_string(),
            out.display().to_string(),
            backend(),
        );
        let args = [
            "--replay",
            &rec,
            "--compare",
            "--speed",
            "4x",
            "--target",
            &url,
            "--out",
            &out,
            "--quiet",
        ];
        let compare = Arc::new(BodyCompare::default());
        let code = command(&args).execute_with(Some(compare.clone()));
        assert_eq!(code, ExitCode::SUCCESS);
        let record = twinpeak_core::RunRecord::read(dir.path().join("out/run.json")).unwrap();
        let found = &record.targets[0].comparison["/prices/{id}"];
        assert_eq!(
            (found.compared, found.identical, found.different),
            (20, 10, 10)
        );
    }

    #[test]
    fn compare_without_a_comparer_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let rec = recording(dir.path()).display().to_string();
        let err = command(&[
            "--replay",
            &rec,
            "--compare",
            "--target",
            "http://127.0.0.1:9",
        ])
        .prepare(None)
        .err()
        .unwrap();
        assert!(err.to_string().starts_with("--compare needs"), "{err}");
        let config_alone = Cli::try_parse_from([
            "load", "--replay", &rec, "--target", "http://x", "--config", "p.yaml",
        ]);
        assert!(config_alone.is_err(), "--config is --compare's");
    }
}
