use std::collections::HashSet;

use super::*;
use crate::schedule::PhasePlan;

fn phase(name: &str, secs: f64, rps: f64) -> PhasePlan {
    PhasePlan {
        name: name.to_owned(),
        duration: Duration::from_secs_f64(secs),
        start_rps: rps,
        end_rps: rps,
    }
}

fn schedule(phases: Vec<PhasePlan>) -> Schedule {
    Schedule::new(phases).unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn the_ledger_takes_in_order_and_drops_whose_it_is() {
    // 100/s: arrival k is due at 10k ms. Phase `a` holds 0..50, phase `b` 50..150.
    let s = schedule(vec![phase("a", 0.5, 100.0), phase("b", 1.0, 100.0)]);
    let mut ledger = Ledger::new(2, (Duration::from_secs(1), 3));
    let first = ledger.peek(&s).unwrap();
    ledger.take(first, Handoff::OnTime);
    let second = ledger.peek(&s).unwrap();
    assert_eq!(second.index, 1);
    ledger.take(second, Handoff::Queued);
    // Nothing is stale before its late limit has passed.
    ledger.drop_stale(&s, ms(25), ms(50), false);
    assert_eq!(ledger.next, 2);
    // At 480 ms with every user busy, arrivals due before 430 ms (2..=42) are the target's.
    ledger.drop_stale(&s, ms(480), ms(50), false);
    assert_eq!(ledger.next, 43);
    // At 700 ms with a user free, 43..=64 are the generator's, across both phases.
    ledger.drop_stale(&s, ms(700), ms(50), true);
    assert_eq!(ledger.next, 65);
    assert_eq!(
        ledger.counts,
        [
            PhaseCounts {
                on_time: 1,
                queued: 1,
                dropped_busy: 41,
                dropped_late: 7
            },
            PhaseCounts {
                dropped_late: 15,
                ..PhaseCounts::default()
            }
        ]
    );
    let a = s.arrival_range(0);
    assert_eq!(ledger.counts[0].taken() + ledger.counts[0].dropped(), a.end);
    assert_eq!(
        ledger.not_taken,
        [41, 0, 0],
        "by the second they were due in"
    );
}

#[test]
fn the_lead_follows_how_long_users_take_to_wake() {
    let wake = WakeLatency::default();
    assert_eq!(wake.lead(), Duration::ZERO, "no lead before any hand-off");
    for _ in 0..50 {
        wake.observe(Duration::from_micros(40));
    }
    let steady = wake.lead();
    assert!(
        steady >= Duration::from_micros(40) && steady < Duration::from_micros(45),
        "{steady:?}"
    );
    // Jittery wakes widen the lead; it never exceeds the most a user waits awake.
    for i in 0..50 {
        wake.observe(Duration::from_micros(if i % 2 == 0 { 10 } else { 90 }));
    }
    assert!(
        wake.lead() > steady + Duration::from_micros(60),
        "{:?}",
        wake.lead()
    );
    wake.observe(Duration::from_secs(1));
    assert_eq!(wake.lead(), MAX_LEAD);
}

#[test]
fn a_huge_backlog_is_dropped_in_one_step() {
    // A hundred million arrivals a second for an hour: dropping an hour's worth takes no
    // longer than dropping one.
    let s = schedule(vec![phase("flood", 3_600.0, 1e8)]);
    let mut ledger = Ledger::new(1, timeline_shape(s.total_duration()));
    let started = Instant::now();
    ledger.drop_stale(&s, Duration::from_secs(3_600), ms(100), false);
    assert_eq!(
        ledger.counts[0].dropped_busy,
        s.arrivals_before(Duration::from_millis(3_599_900))
    );
    assert!(ledger.counts[0].dropped_busy > 359_000_000_000);
    assert!(started.elapsed() < Duration::from_secs(1));
    ledger.drop_stale(&s, Duration::from_secs(7_200), ms(100), false);
    assert_eq!(ledger.peek(&s), None, "the whole schedule is disposed of");
    assert_eq!(ledger.counts[0].dropped(), s.total_arrivals());
    assert_eq!(ledger.not_taken.iter().sum::<u64>(), s.total_arrivals());
    // Five-second points at 100 million a second.
    assert_eq!(ledger.not_taken[1], 500_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_user_gets_each_arrival_when_due() {
    let s = schedule(vec![phase("flat", 0.3, 100.0)]);
    let pacer = Pacer::start(s, Instant::now() + ms(20), ms(50));
    let mut seen = Vec::new();
    while let Some(slot) = pacer.next().await {
        assert!(Instant::now() >= slot.intended);
        assert_eq!(slot.intended, pacer.start_instant() + slot.arrival.offset);
        assert_eq!(slot.handoff, Handoff::OnTime);
        seen.push(slot.arrival.index);
    }
    assert_eq!(seen, (0..30).collect::<Vec<_>>());
    let counts = pacer.counts(0);
    assert_eq!(
        (counts.on_time, counts.queued, counts.dropped()),
        (30, 0, 0)
    );
    assert_eq!(pacer.next().await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_user_queues_then_drops_what_it_cannot_take() {
    // 200/s for 0.6 s, one user busy for 300 ms after its first arrival, late limit 50 ms.
    let s = schedule(vec![phase("flat", 0.6, 200.0)]);
    let pacer = Pacer::start(s, Instant::now() + ms(10), ms(50));
    let first = pacer.next().await.unwrap();
    assert_eq!(first.handoff, Handoff::OnTime);
    std::thread::sleep(ms(300));
    let late = pacer.next().await.unwrap();
    assert_eq!(
        late.handoff,
        Handoff::Queued,
        "every user was busy when it fell due"
    );
    assert!(
        Instant::now() - late.intended < ms(250),
        "it is no older than the late limit"
    );
    while pacer.next().await.is_some() {}
    let counts = pacer.counts(0);
    assert!(counts.dropped_busy >= 40, "{counts:?}");
    assert_eq!(counts.dropped_late, 0, "{counts:?}");
    assert_eq!(counts.taken() + counts.dropped(), 120, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_releases_waiters() {
    let s = schedule(vec![phase("slow", 3_600.0, 1.0)]);
    let pacer = Pacer::start(s, Instant::now(), Duration::from_secs(1));
    assert_eq!(pacer.next().await.unwrap().arrival.index, 0);
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let pacer = Arc::clone(&pacer);
            tokio::spawn(async move { pacer.next().await })
        })
        .collect();
    tokio::time::sleep(ms(50)).await;
    assert!(!pacer.is_stopped());
    let stopped = Instant::now();
    pacer.stop();
    for waiter in waiters {
        assert_eq!(waiter.await.unwrap(), None);
    }
    assert!(
        stopped.elapsed() < Duration::from_secs(1),
        "no waiter slept on"
    );
    assert_eq!(pacer.next().await, None);
    assert!(pacer.is_stopped());
    assert_eq!(pacer.counts(0).taken(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_never_take_the_same_arrival_and_every_one_is_accounted_for() {
    // 20,000/s for 0.25 s to 32 users that each hold an arrival for 0–3 ms: some are sent on
    // time, some queue, none twice, and taken plus dropped is every arrival.
    let s = schedule(vec![phase("burst", 0.25, 20_000.0)]);
    let total = s.total_arrivals();
    let pacer = Pacer::start(s, Instant::now() + ms(10), ms(20));
    let users: Vec<_> = (0..32u64)
        .map(|user| {
            let pacer = Arc::clone(&pacer);
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while let Some(slot) = pacer.next().await {
                    mine.push(slot.arrival.index);
                    let busy = (slot.arrival.index * 7 + user * 13) % 4;
                    tokio::time::sleep(ms(busy)).await;
                }
                mine
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for user in users {
        for k in user.await.unwrap() {
            assert!(seen.insert(k), "arrival {k} handed out twice");
        }
    }
    let counts = pacer.counts(0);
    assert_eq!(seen.len() as u64, counts.taken());
    assert_eq!(counts.taken() + counts.dropped(), total, "{counts:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn the_clock_asks_for_timed_sleeps_to_wake_on_time() {
    let slack_ns = std::thread::spawn(|| {
        precise_clock();
        nix::sys::prctl::get_timerslack().unwrap()
    })
    .join()
    .unwrap();
    // 1 ns as asked, or none at all: the kernel gives a real-time thread no slack.
    assert!(slack_ns <= 1, "timer slack {slack_ns} ns");
}
