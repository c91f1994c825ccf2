//! The recorder's request-path half with no writer behind its queue: what it admits, what it
//! copies, and what it drops (counted) when the queue or its byte bound is full.

use std::path::Path;
use std::time::Instant;

use bytes::Bytes;

use super::*;
use crate::routes::RouteTable;

fn record_config(yaml: &str) -> RecordConfig {
    let text = format!(
        "listen: 127.0.0.1:1\nprimary: {{url: http://127.0.0.1:2}}\nroutes: [\"/bookings/{{id}}\"]\nrecord: {yaml}\n"
    );
    crate::config::Config::parse(&text, Path::new("proxy.yaml"))
        .unwrap()
        .record
        .unwrap()
}

fn recorder(yaml: &str) -> (Recorder, Receiver<Message>, RouteTable) {
    let config = record_config(yaml);
    let routes = RouteTable::new(&[serde_yaml::from_str("/bookings/{id}").unwrap()]);
    let metrics = Metrics::new(&routes);
    let (recorder, intake) = Recorder::new(&config, "http://127.0.0.1:2", &routes, &metrics);
    (recorder, intake, routes)
}

fn request(
    recorder: &Recorder,
    routes: &RouteTable,
    method: &str,
    uri: &str,
) -> Option<RecordingHandle> {
    let uri: http::Uri = uri.parse().unwrap();
    let route = routes.route_for(uri.path());
    let mut headers = HeaderMap::new();
    headers.insert("x-user", "u-1".parse().unwrap());
    recorder.admit(
        Instant::now(),
        route,
        &method.parse().unwrap(),
        &uri,
        &headers,
    )
}

fn pending(intake: &Receiver<Message>) -> Vec<PendingRecord> {
    intake
        .try_iter()
        .filter_map(|m| match m {
            Message::Record(r) => Some(*r),
            Message::Stop => None,
        })
        .collect()
}

#[test]
fn routes_methods_and_the_switch_decide_what_is_recorded() {
    let (recorder, intake, routes) =
        recorder("{dir: /r, routes: [\"/bookings/{id}\"], methods: [GET, POST]}");
    assert!(request(&recorder, &routes, "GET", "/bookings/1?x=1").is_some());
    assert!(request(&recorder, &routes, "POST", "/bookings/1").is_some());
    assert!(request(&recorder, &routes, "DELETE", "/bookings/1").is_none());
    assert!(request(&recorder, &routes, "GET", "/partners").is_none());
    recorder.set(false, Percent::new(100.0).unwrap());
    assert!(request(&recorder, &routes, "GET", "/bookings/1").is_none());
    assert_eq!(recorder.metrics.enabled.get(), 0);
    recorder.set(true, Percent::new(0.0).unwrap());
    assert!(request(&recorder, &routes, "GET", "/bookings/1").is_none());
    let next = lock(&recorder.next_manifest).clone().unwrap();
    assert_eq!(next.percent, 0.0);
    drop(intake);
}

#[test]
fn at_a_hand_over_new_requests_are_not_recorded_but_admitted_ones_are_written() {
    let (recorder, intake, routes) = recorder("{dir: /r}");
    let admitted = request(&recorder, &routes, "GET", "/bookings/1").unwrap();
    recorder.stop_admitting();
    assert!(request(&recorder, &routes, "GET", "/bookings/2").is_none());
    assert_eq!(recorder.metrics.enabled.get(), 0);
    // The manifest is the new process's to write.
    assert!(lock(&recorder.next_manifest).is_none());
    admitted.finish(&recorder, false);
    let records = pending(&intake);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].uri, "/bookings/1");
}

#[test]
fn a_record_keeps_capped_copies_of_body_and_answer_and_counts_their_whole_length() {
    let (recorder, intake, routes) =
        recorder("{dir: /r, max_body_bytes: 4, max_response_bytes: 3}");
    let mut handle = request(&recorder, &routes, "POST", "/bookings/1?token=t").unwrap();
    handle.request_body(Some(&Bytes::from_static(b"abc")));
    // A retry sends the body again from its start: only new bytes are kept.
    handle.new_attempt();
    handle.request_body(Some(&Bytes::from_static(b"abcdef")));
    let mut answer = HeaderMap::new();
    answer.insert("content-type", "text/plain".parse().unwrap());
    handle.response_header(http::StatusCode::CREATED, &answer);
    handle.response_body(Some(&Bytes::from_static(b"hello")), true);
    handle.finish(&recorder, true);
    let records = pending(&intake);
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.uri, "/bookings/1?token=t");
    assert_eq!((&record.body.bytes[..], record.body_len), (&b"abcd"[..], 6));
    let answer = record.answer.as_ref().unwrap();
    assert_eq!(
        (answer.status, &answer.body.bytes[..], answer.body_len),
        (201, &b"hel"[..], 5)
    );
    assert_eq!(recorder.metrics.queue.get(), 1);
    // An answer that did not come from the primary is not kept.
    let mut handle = request(&recorder, &routes, "GET", "/bookings/2").unwrap();
    handle.response_header(http::StatusCode::OK, &HeaderMap::new());
    handle.finish(&recorder, false);
    assert!(pending(&intake)[0].answer.is_none());
}

#[test]
fn a_full_queue_drops_and_counts_without_waiting() {
    let (recorder, intake, routes) = recorder("{dir: /r, queue: 2}");
    let started = Instant::now();
    for i in 0..10 {
        let handle = request(&recorder, &routes, "GET", &format!("/bookings/{i}")).unwrap();
        handle.finish(&recorder, true);
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    assert_eq!(recorder.metrics.total(RecordResult::DroppedQueue), 8);
    assert_eq!(pending(&intake).len(), 2);
    // Once the writer is gone, records are counted as failed.
    drop(intake);
    request(&recorder, &routes, "GET", "/bookings/1")
        .unwrap()
        .finish(&recorder, true);
    assert_eq!(recorder.metrics.total(RecordResult::Failed), 1);
}

#[test]
fn records_past_the_byte_bound_are_dropped_and_counted() {
    let (recorder, intake, routes) = recorder(
        "{dir: /r, max_body_bytes: 1KiB, max_response_bytes: 1KiB, max_queued_bytes: 2KiB}",
    );
    let body = Bytes::from(vec![b'x'; 1024]);
    let mut handle = request(&recorder, &routes, "POST", "/bookings/1").unwrap();
    handle.request_body(Some(&body));
    handle.response_header(http::StatusCode::OK, &HeaderMap::new());
    handle.response_body(Some(&body), true);
    handle.finish(&recorder, true);
    assert_eq!(recorder.metrics.total(RecordResult::DroppedBytes), 1);
    assert!(pending(&intake).is_empty());
    // What the dropped record held is given back: a small one fits.
    assert_eq!(recorder.budget.used(), 0);
    request(&recorder, &routes, "GET", "/bookings/1")
        .unwrap()
        .finish(&recorder, true);
    assert_eq!(pending(&intake).len(), 1);
}

#[test]
fn arrival_times_follow_the_monotonic_clock() {
    let clock = Clock::new();
    let start = Instant::now();
    let later = start + std::time::Duration::from_micros(1_234);
    assert_eq!(clock.at_us(later) - clock.at_us(start), 1_234);
}
