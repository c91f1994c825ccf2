use proptest::prelude::*;

use super::*;

fn phase(name: &str, secs: f64, start_rps: f64, end_rps: f64) -> PhasePlan {
    PhasePlan {
        name: name.to_owned(),
        duration: Duration::from_secs_f64(secs),
        start_rps,
        end_rps,
    }
}

fn schedule(phases: Vec<PhasePlan>) -> Schedule {
    Schedule::new(phases).unwrap()
}

fn all_arrivals(s: &Schedule) -> Vec<Arrival> {
    (0..s.total_arrivals())
        .map(|k| s.arrival(k).unwrap())
        .collect()
}

/// Checks each phase holds its expected count ±1, and every arrival lies in order within its
/// phase.
fn check_consistent(s: &Schedule) {
    let arrivals = all_arrivals(s);
    assert_eq!(s.arrival(s.total_arrivals()), None);
    for (p, plan) in s.phases().iter().enumerate() {
        let count = s.arrival_range(p).end - s.arrival_range(p).start;
        assert!(
            (count as f64 - s.expected_count(p)).abs() < 1.0 + 1e-9,
            "phase {p}: {count} arrivals, expected {}",
            s.expected_count(p)
        );
        let start = s.phase_start(p).unwrap();
        for k in s.arrival_range(p) {
            let a = arrivals[k as usize];
            assert_eq!((a.index, a.phase), (k, p));
            assert!(
                a.offset >= start && a.offset < start + plan.duration,
                "{a:?}"
            );
        }
    }
    assert!(arrivals.windows(2).all(|w| w[0].offset <= w[1].offset));
}

#[test]
fn flat_phases_hold_rate_times_duration() {
    let s = schedule(vec![
        phase("warm-up", 10.0, 50.0, 50.0),
        phase("peak", 20.0, 200.0, 200.0),
    ]);
    check_consistent(&s);
    assert_eq!(s.arrival_range(0), 0..500);
    assert_eq!(s.arrival_range(1), 500..4_500);
    assert_eq!(s.total_duration(), Duration::from_secs(30));
    assert_eq!(s.arrival(1).unwrap().offset, Duration::from_millis(20));
    assert_eq!(
        s.arrival(501).unwrap().offset,
        Duration::from_millis(10_005)
    );
    assert_eq!(
        s.arrival(4_499).unwrap().offset,
        Duration::from_millis(29_995)
    );
}

#[test]
fn ramp_spacing_shrinks_as_the_rate_rises() {
    let s = schedule(vec![phase("ramp", 10.0, 0.0, 100.0)]);
    check_consistent(&s);
    assert_eq!(s.expected_count(0), 500.0);
    assert_eq!(s.total_arrivals(), 500);
    let offsets: Vec<f64> = all_arrivals(&s)
        .iter()
        .map(|a| a.offset.as_secs_f64())
        .collect();
    for (k, t) in offsets.iter().enumerate() {
        // N(t) = 5t², so arrival k is due at √(k/5).
        assert!(
            (t - (k as f64 / 5.0).sqrt()).abs() < 1e-6,
            "arrival {k} at {t}"
        );
    }
    let gaps: Vec<f64> = offsets.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.windows(2).all(|g| g[1] <= g[0] + 1e-9));
    assert!(gaps[0] > 40.0 * gaps[gaps.len() - 1]);
}

#[test]
fn ramp_down_and_fractions_carry_over() {
    let s = schedule(vec![
        phase("a", 1.0, 2.5, 2.5),
        phase("b", 1.0, 2.5, 2.5),
        phase("c", 1.0, 2.5, 2.5),
        phase("down", 10.0, 100.0, 0.0),
    ]);
    check_consistent(&s);
    assert_eq!(s.arrival_range(0), 0..3);
    assert_eq!(s.arrival_range(1), 3..5);
    assert_eq!(s.arrival_range(2), 5..8);
    assert_eq!(s.arrival_range(3), 8..508);
    let last = s.arrival(507).unwrap().offset.as_secs_f64();
    assert!(last > 12.5 && last < 13.0, "{last}");
}

#[test]
fn idle_phases_hold_no_arrivals() {
    let s = schedule(vec![
        phase("pause", 5.0, 0.0, 0.0),
        phase("instant", 0.0, 100.0, 100.0),
        phase("flat", 1.0, 4.0, 4.0),
    ]);
    check_consistent(&s);
    assert_eq!(s.arrival_range(0), 0..0);
    assert_eq!(s.arrival_range(1), 0..0);
    assert_eq!(s.arrival(0).unwrap().offset, Duration::from_secs(5));
    assert_eq!(s.arrival(0).unwrap().phase, 2);
    assert_eq!(s.arrival_range(9), 0..0);
    assert_eq!(s.expected_count(9), 0.0);
    assert_eq!(s.phase_start(9), None);
}

#[test]
fn floating_error_does_not_add_an_arrival() {
    let third = vec![phase("third", 1.0 / 3.0, 3.0, 3.0); 3];
    assert_eq!(schedule(third).total_arrivals(), 3);
    let tenth = vec![phase("tenth", 0.1, 10.0, 10.0); 10];
    assert_eq!(schedule(tenth).total_arrivals(), 10);
    let ramp = vec![phase("ramp", 0.7, 0.0, 20.0 / 7.0); 7];
    assert_eq!(schedule(ramp).total_arrivals(), 7);
}

#[test]
fn empty_schedule_has_no_arrivals() {
    let s = schedule(Vec::new());
    assert_eq!(s.total_arrivals(), 0);
    assert_eq!(s.total_duration(), Duration::ZERO);
    assert_eq!(s.arrival(0), None);
}

#[test]
fn bad_rates_and_sizes_are_refused() {
    for rate in [-1.0, f64::NAN, f64::INFINITY] {
        let err = Schedule::new(vec![phase("peak", 1.0, 1.0, rate)]).unwrap_err();
        assert!(err.to_string().contains("phase `peak`: end rate"), "{err}");
    }
    let err = Schedule::new(vec![phase("huge", 1e6, 1e12, 1e12)]).unwrap_err();
    assert!(
        matches!(err, ScheduleError::TooManyArrivals { .. }),
        "{err}"
    );
    let long = PhasePlan {
        duration: Duration::MAX,
        ..phase("long", 0.0, 0.0, 0.0)
    };
    let err = Schedule::new(vec![long.clone(), long]).unwrap_err();
    assert_eq!(err, ScheduleError::TooLong);
}

#[test]
fn arrivals_before_matches_offsets() {
    let s = schedule(vec![
        phase("ramp", 4.0, 1.0, 9.0),
        phase("flat", 2.0, 3.0, 3.0),
    ]);
    assert_eq!(s.arrivals_before(Duration::ZERO), 0);
    assert_eq!(s.arrivals_before(Duration::from_nanos(1)), 1);
    assert_eq!(
        s.arrivals_before(Duration::from_secs(60)),
        s.total_arrivals()
    );
    for a in all_arrivals(&s) {
        assert_eq!(s.arrivals_before(a.offset), a.index);
        assert_eq!(
            s.arrivals_before(a.offset + Duration::from_nanos(1)),
            a.index + 1
        );
    }
}

proptest! {
    #[test]
    fn any_phases_make_a_consistent_schedule(
        phases in prop::collection::vec((0u64..5_000, 0.0f64..300.0, 0.0f64..300.0), 0..6)
    ) {
        let phases = phases
            .into_iter()
            .map(|(ms, a, b)| phase("p", ms as f64 / 1_000.0, a, b))
            .collect();
        check_consistent(&schedule(phases));
    }
}

proptest! {
    #[test]
    fn arrivals_before_agrees_with_every_offset(
        phases in prop::collection::vec((0u64..3_000, 0.0f64..2_000.0, 0.0f64..2_000.0), 1..5),
        probes in prop::collection::vec(0u64..12_000_000, 1..40)
    ) {
        let phases = phases
            .into_iter()
            .map(|(ms, a, b)| phase("p", ms as f64 / 1_000.0, a, b))
            .collect();
        let s = schedule(phases);
        for us in probes {
            let offset = Duration::from_micros(us);
            let k = s.arrivals_before(offset);
            prop_assert!(k == 0 || s.arrival(k - 1).unwrap().offset < offset);
            prop_assert!(s.arrival(k).is_none_or(|a| a.offset >= offset));
        }
    }
}

proptest! {
    #[test]
    fn shares_interleave_into_the_whole_run(
        phases in prop::collection::vec((0u64..3_000, 0.0f64..900.0, 0.0f64..900.0), 1..4),
        count in 1u64..6,
        probes in prop::collection::vec(0u64..10_000_000, 1..20)
    ) {
        let phases: Vec<_> = phases
            .into_iter()
            .map(|(ms, a, b)| phase("p", ms as f64 / 1_000.0, a, b))
            .collect();
        let whole = schedule(phases);
        let shares: Vec<Schedule> = (0..count)
            .map(|index| whole.clone().share(Share { index, count }))
            .collect();
        let mut joined: Vec<Arrival> = shares.iter().flat_map(all_arrivals).collect();
        joined.sort_by_key(|a| a.run_index);
        let expected: Vec<_> = all_arrivals(&whole);
        prop_assert_eq!(joined.len(), expected.len());
        for (ours, theirs) in joined.iter().zip(&expected) {
            prop_assert_eq!((ours.run_index, ours.phase, ours.offset), (theirs.index, theirs.phase, theirs.offset));
            prop_assert_eq!(ours.run_index % count, shares.iter().position(|s| s.arrival(ours.index) == Some(*ours)).unwrap() as u64);
        }
        for p in 0..whole.phases().len() {
            let held: u64 = shares.iter().map(|s| s.arrival_range(p).end - s.arrival_range(p).start).sum();
            prop_assert_eq!(held, whole.arrival_range(p).end - whole.arrival_range(p).start);
            let expected: f64 = shares.iter().map(|s| s.expected_count(p)).sum();
            prop_assert!((expected - whole.expected_count(p)).abs() < 1e-6);
        }
        for us in probes {
            let offset = Duration::from_micros(us);
            let before: u64 = shares.iter().map(|s| s.arrivals_before(offset)).sum();
            prop_assert_eq!(before, whole.arrivals_before(offset));
            for s in &shares {
                let k = s.arrivals_before(offset);
                prop_assert!(k == 0 || s.arrival(k - 1).unwrap().offset < offset);
                prop_assert!(s.arrival(k).is_none_or(|a| a.offset >= offset));
            }
        }
    }
}

#[test]
fn a_share_holds_every_nth_arrival() {
    let s = schedule(vec![phase("flat", 1.0, 10.0, 10.0)]).share(Share { index: 1, count: 4 });
    let picked: Vec<_> = all_arrivals(&s)
        .iter()
        .map(|a| (a.index, a.run_index))
        .collect();
    assert_eq!(picked, [(0, 1), (1, 5), (2, 9)]);
    assert_eq!(s.arrival(0).unwrap().offset, Duration::from_millis(100));
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

#[test]
fn recorded_offsets_are_due_as_recorded() {
    let s = Schedule::recorded(
        "replay",
        vec![ms(1_010), ms(1_000), ms(1_030), ms(1_090)],
        None,
    )
    .unwrap();
    check_consistent(&s);
    let offsets: Vec<_> = all_arrivals(&s).iter().map(|a| a.offset).collect();
    assert_eq!(offsets, [ms(0), ms(10), ms(30), ms(90)]);
    assert_eq!(s.total_duration(), ms(120), "one mean gap after the last");
    assert_eq!(s.arrivals_before(ms(10)), 1);
    assert_eq!(s.arrivals_before(ms(11)), 2);
    assert_eq!(s.arrivals_before(ms(10_000)), 4);
    assert!((s.phases()[0].start_rps - 4.0 / 0.12).abs() < 1e-9);
}

#[test]
fn a_looped_recording_repeats_every_span_and_gap() {
    let s = Schedule::recorded("replay", vec![ms(0), ms(10), ms(40)], Some(ms(125))).unwrap();
    check_consistent(&s);
    // Period 40 + 20: starts at 0, 60, 120.
    let offsets: Vec<_> = all_arrivals(&s).iter().map(|a| a.offset).collect();
    assert_eq!(
        offsets,
        [ms(0), ms(10), ms(40), ms(60), ms(70), ms(100), ms(120)]
    );
    assert_eq!(s.arrivals_before(ms(61)), 4);
    assert_eq!(s.arrivals_before(ms(1_000)), 7);
    assert_eq!(
        Schedule::recorded("r", vec![ms(5)], Some(ms(100))).unwrap_err(),
        ScheduleError::NoPeriod
    );
    assert_eq!(
        Schedule::recorded("r", vec![], None)
            .unwrap()
            .total_arrivals(),
        0
    );
}

#[test]
fn shares_of_a_recording_send_it_once() {
    let offsets: Vec<_> = (0..101).map(|i| ms(i * i % 997)).collect();
    let whole = Schedule::recorded("replay", offsets.clone(), None).unwrap();
    let mut seen = Vec::new();
    for index in 0..3 {
        let s = Schedule::recorded("replay", offsets.clone(), None)
            .unwrap()
            .share(Share { index, count: 3 });
        for k in 0..s.total_arrivals() {
            let a = s.arrival(k).unwrap();
            assert_eq!(a.offset, whole.arrival(a.run_index).unwrap().offset);
            assert_eq!(s.arrivals_before(a.offset), k);
            seen.push(a.run_index);
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..101).collect::<Vec<u64>>());
}
