//! Hands a [`Schedule`]'s arrivals to the load users, each exactly once and at its instant, and
//! accounts for every arrival: sent on time, sent late, or dropped — and whose doing it was.
//!
//! A clock of its own, one thread sleeping on the operating system's high-resolution timer
//! (tokio's timer wheel rounds every sleep up to the next millisecond), wakes at each due instant
//! and hands the arrival to a user that is idle, waiting on [`Pacer::next`]. So the pacer knows,
//! at every due instant, whether a user was free:
//!
//! - a free user took it: any lateness (actual send − intended send) is the generator's own
//!   scheduling lag, recorded apart so a reader can tell it from the target's latency;
//! - every user was busy, waiting for the target: the arrival waits, and the first user to finish
//!   sends it; its wait is part of its corrected latency (coordinated omission corrected);
//! - still waiting past the late limit: dropped. With every user busy the target could not take
//!   it (counted against the target); with a user free the generator was too late for it.
//!
//! Waking a thread that sleeps takes time of its own (a parked thread, an idle virtual CPU: tens
//! to hundreds of microseconds), for the clock as for a user. Both are measured: the clock wakes
//! that much before it hands an arrival over and spins the rest, and it hands each arrival over as
//! much before it is due as a user takes to wake; the user waits out the rest and sends at the due
//! instant, never before. Each lead is at most a tenth of the time between arrivals, so the
//! spinning takes at most about a tenth of a core at any rate. Above 5,000 arrivals a second the
//! clock hands them over in groups, at most every 200 µs, each at most that late: every wake-up
//! costs a context switch or two, and at such rates they would cost more CPU than the requests.
//!
//! Waiting arrivals are a range of indices and are dropped as a range, in constant time however
//! many there are, so offering far more than can be sent never starves sending.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use twinpeak_core::sync::lock;

use crate::recorder::timeline_shape;
use crate::schedule::{Arrival, Schedule};

/// Longest the clock sleeps while every user is busy before it drops what fell stale meanwhile.
const BUSY_RECHECK: Duration = Duration::from_millis(50);

/// Most the clock hands an arrival over before it is due: the most a user waits for it awake.
const MAX_LEAD: Duration = Duration::from_micros(300);

/// Shortest time between two hand-overs of the clock: arrivals closer together than this (above
/// 5,000 a second) are handed over together, each at most this late, so the clock and the users
/// wake at most 5,000 times a second.
const MIN_TICK: Duration = Duration::from_micros(200);

/// A lead is at most this fraction of the time since the previous arrival (1/N).
const LEAD_SHARE: u32 = 10;

/// How an arrival reached the user that sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// A user was free when it fell due: lateness is the generator's scheduling lag.
    OnTime,
    /// Every user was busy when it fell due; the first to finish took it.
    Queued,
}

/// An arrival handed to a user, and the instant it is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Which arrival this is.
    pub arrival: Arrival,
    /// When the request was meant to be sent: latencies are measured from here, so time spent
    /// waiting for a free user counts (coordinated omission corrected).
    pub intended: Instant,
    /// Whether a user was free when it fell due.
    pub handoff: Handoff,
}

/// What became of one phase's arrivals so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseCounts {
    /// Taken by a user that was free when they fell due.
    pub on_time: u64,
    /// Taken late: every user was busy when they fell due.
    pub queued: u64,
    /// Dropped: every user was busy for the whole late limit, waiting for the target.
    pub dropped_busy: u64,
    /// Dropped: the generator was later than the late limit while a user was free.
    pub dropped_late: u64,
}

impl PhaseCounts {
    /// Arrivals handed to a user.
    #[cfg(test)]
    pub fn taken(&self) -> u64 {
        self.on_time + self.queued
    }

    /// Arrivals dropped, of both kinds.
    pub fn dropped(&self) -> u64 {
        self.dropped_busy + self.dropped_late
    }
}

/// Which arrivals are disposed of, and how: arrivals are taken or dropped in order, so one
/// index says which are left, and counters per phase say what became of the others; arrivals
/// not taken (every user busy) are also counted by the timeline point they were due in.
#[derive(Debug, Clone, PartialEq)]
struct Ledger {
    /// Index of the first arrival neither taken nor dropped.
    next: u64,
    counts: Vec<PhaseCounts>,
    /// Width of a timeline point.
    point_width: Duration,
    /// Per timeline point, arrivals due in it and dropped with every user busy.
    not_taken: Vec<u64>,
}

impl Ledger {
    /// A ledger for `phases` phases and a timeline of `points` points of `point_width`.
    fn new(phases: usize, (point_width, points): (Duration, usize)) -> Self {
        Self {
            next: 0,
            counts: vec![PhaseCounts::default(); phases],
            point_width: point_width.max(Duration::from_secs(1)),
            not_taken: vec![0; points],
        }
    }

    /// The first arrival neither taken nor dropped; `None` once the schedule is over.
    fn peek(&self, schedule: &Schedule) -> Option<Arrival> {
        schedule.arrival(self.next)
    }

    /// Records `arrival`, the one [`Ledger::peek`] gave, as taken.
    fn take(&mut self, arrival: Arrival, handoff: Handoff) {
        debug_assert_eq!(arrival.index, self.next);
        self.next = arrival.index + 1;
        let counts = &mut self.counts[arrival.phase];
        match handoff {
            Handoff::OnTime => counts.on_time += 1,
            Handoff::Queued => counts.queued += 1,
        }
    }

    /// Drops, in one step, every arrival still waiting that fell due more than `late_limit`
    /// before `elapsed`; `user_free` says whether a user was free meanwhile (the generator's
    /// lateness) or not (the target's).
    fn drop_stale(
        &mut self,
        schedule: &Schedule,
        elapsed: Duration,
        late_limit: Duration,
        user_free: bool,
    ) {
        let Some(horizon) = elapsed.checked_sub(late_limit) else {
            return;
        };
        let stale = self.next..schedule.arrivals_before(horizon).max(self.next);
        if stale.is_empty() {
            return;
        }
        for (phase, counts) in self.counts.iter_mut().enumerate() {
            let range = schedule.arrival_range(phase);
            let overlap = stale
                .end
                .min(range.end)
                .saturating_sub(stale.start.max(range.start));
            if user_free {
                counts.dropped_late += overlap;
            } else {
                counts.dropped_busy += overlap;
            }
        }
        if !user_free {
            self.count_by_point(schedule, stale.clone());
        }
        self.next = stale.end;
    }

    /// Adds the arrivals of `range` to the timeline points they were due in: one step per
    /// point the range spans, however many arrivals it holds.
    fn count_by_point(&mut self, schedule: &Schedule, range: std::ops::Range<u64>) {
        let Some(first) = schedule.arrival(range.start) else {
            return;
        };
        let width = self.point_width.as_secs();
        let mut point = (first.offset.as_secs() / width) as usize;
        let mut from = range.start;
        while from < range.end && point < self.not_taken.len() {
            let point_end = Duration::from_secs(width.saturating_mul(point as u64 + 1));
            let until = if point + 1 == self.not_taken.len() {
                range.end
            } else {
                schedule.arrivals_before(point_end).clamp(from, range.end)
            };
            self.not_taken[point] += until - from;
            from = until;
            point += 1;
        }
    }
}

/// How long a user takes to wake once handed an arrival, smoothed as TCP smooths round-trip
/// times (RFC 6298): a mean and a mean deviation, updated by every hand-off.
#[derive(Debug, Default)]
struct WakeLatency {
    /// Smoothed wake latency, ns; 0 before the first sample.
    mean_ns: AtomicU64,
    /// Smoothed deviation from it, ns.
    deviation_ns: AtomicU64,
}

impl WakeLatency {
    /// Takes in one user's wake latency. Users race on the update, and a lost update only
    /// delays the estimate by one sample.
    fn observe(&self, sample: Duration) {
        let sample = u64::try_from(sample.as_nanos()).unwrap_or(u64::MAX);
        let mean = self.mean_ns.load(Ordering::Relaxed);
        let (mean, deviation) = if mean == 0 {
            (sample.max(1), sample / 2)
        } else {
            let deviation = self.deviation_ns.load(Ordering::Relaxed);
            (
                mean - mean / 8 + sample / 8,
                deviation - deviation / 4 + mean.abs_diff(sample) / 4,
            )
        };
        self.mean_ns.store(mean, Ordering::Relaxed);
        self.deviation_ns.store(deviation, Ordering::Relaxed);
    }

    /// How long before its due instant to hand an arrival over: the mean and four deviations,
    /// at most [`MAX_LEAD`].
    fn lead(&self) -> Duration {
        let mean = self.mean_ns.load(Ordering::Relaxed);
        let deviation = self.deviation_ns.load(Ordering::Relaxed);
        Duration::from_nanos(mean.saturating_add(deviation.saturating_mul(4))).min(MAX_LEAD)
    }
}

/// What the clock and the users share, under one lock.
#[derive(Debug)]
struct State {
    ledger: Ledger,
    /// Users waiting for an arrival, the most recently idle last; each is handed its arrival
    /// with the instant it was handed over.
    idle: Vec<oneshot::Sender<(Slot, Instant)>>,
    stopped: bool,
    /// The clock waits for a user to go idle: every user was busy at the last due instant.
    clock_waits_for_user: bool,
}

/// Hands a [`Schedule`]'s arrivals to the user tasks of a run, each arrival to exactly one, and
/// counts what became of each (see the module's documentation).
///
/// Shared as an `Arc` by every user and its own clock thread. A user calls [`Pacer::next`],
/// which returns the next arrival when it is due.
#[derive(Debug)]
pub struct Pacer {
    schedule: Schedule,
    start: Instant,
    late_limit: Duration,
    state: Mutex<State>,
    /// Wakes the clock: a stop, or a user gone idle while the clock waited for one.
    clock: Condvar,
    /// How long users take to wake once handed an arrival.
    wake: WakeLatency,
    /// How late the clock wakes from its timed sleeps.
    clock_late: WakeLatency,
}

impl Pacer {
    /// Paces `schedule` from `start`, dropping arrivals later than `late_limit`, on a clock
    /// thread that ends with the schedule or at [`Pacer::stop`].
    pub fn start(schedule: Schedule, start: Instant, late_limit: Duration) -> Arc<Self> {
        let phases = schedule.phases().len();
        let duration = schedule.total_duration();
        let pacer = Arc::new(Self {
            schedule,
            start,
            late_limit,
            state: Mutex::new(State {
                ledger: Ledger::new(phases, timeline_shape(duration)),
                idle: Vec::new(),
                stopped: false,
                clock_waits_for_user: false,
            }),
            clock: Condvar::new(),
            wake: WakeLatency::default(),
            clock_late: WakeLatency::default(),
        });
        let clock = Arc::clone(&pacer);
        let spawned = std::thread::Builder::new()
            .name("twinpeak-pacer".to_owned())
            .spawn(move || clock.run_clock());
        if let Err(e) = spawned {
            // Without its clock no arrival is ever due: stop, so every user returns at once.
            log::error!("cannot start the pacer's clock thread: {e}");
            pacer.stop();
        }
        pacer
    }

    /// The schedule being paced.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The instant the run started: arrival offsets count from here.
    pub fn start_instant(&self) -> Instant {
        self.start
    }

    /// How late an arrival may be sent before it is dropped.
    pub fn late_limit(&self) -> Duration {
        self.late_limit
    }

    /// Waits for the next arrival and returns it once due: at once if one is already due and
    /// waiting (every user was busy), else when the clock hands it over (a little early, the
    /// rest waited out here). `None` once the schedule is over or the pacer stopped.
    pub async fn next(&self) -> Option<Slot> {
        loop {
            let handed = {
                let mut state = self.lock();
                if state.stopped {
                    return None;
                }
                let now = Instant::now();
                // An idle user fell idle before anything now due: none of it is the target's.
                let user_free = !state.idle.is_empty();
                let elapsed = now.saturating_duration_since(self.start);
                state
                    .ledger
                    .drop_stale(&self.schedule, elapsed, self.late_limit, user_free);
                let arrival = state.ledger.peek(&self.schedule)?;
                let intended = self.start + arrival.offset;
                if intended <= now {
                    let handoff = if user_free {
                        Handoff::OnTime
                    } else {
                        Handoff::Queued
                    };
                    state.ledger.take(arrival, handoff);
                    return Some(Slot {
                        arrival,
                        intended,
                        handoff,
                    });
                }
                let (sender, receiver) = oneshot::channel();
                state.idle.push(sender);
                if state.clock_waits_for_user {
                    self.clock.notify_one();
                }
                receiver
            };
            if let Ok((slot, handed_at)) = handed.await {
                self.wake
                    .observe(Instant::now().saturating_duration_since(handed_at));
                // At most the lead, awake: tokio's timer cannot wake this finely.
                while Instant::now() < slot.intended {
                    tokio::task::yield_now().await;
                }
                return Some(slot);
            }
            // The clock let go of every idle user: the schedule is over or the pacer stopped,
            // which the next turn returns.
        }
    }

    /// Makes every waiting and future [`Pacer::next`] return `None` and ends the clock: the run
    /// ends (Ctrl-C, SIGTERM, or the load generator shutting down).
    pub fn stop(&self) {
        let mut state = self.lock();
        state.stopped = true;
        state.idle.clear();
        self.clock.notify_all();
    }

    /// Whether [`Pacer::stop`] was called.
    #[cfg(test)]
    pub fn is_stopped(&self) -> bool {
        self.lock().stopped
    }

    /// What became of `phase`'s arrivals so far (nothing, past the last phase).
    pub fn counts(&self, phase: usize) -> PhaseCounts {
        let mut state = self.lock();
        // Bring the drops up to date, as the clock sleeps through a long stall.
        let user_free = !state.idle.is_empty();
        let elapsed = Instant::now().saturating_duration_since(self.start);
        if !state.stopped {
            state
                .ledger
                .drop_stale(&self.schedule, elapsed, self.late_limit, user_free);
        }
        state.ledger.counts.get(phase).copied().unwrap_or_default()
    }

    /// Arrivals due in timeline point `point` that were dropped with every user busy.
    pub fn not_taken_in_point(&self, point: usize) -> u64 {
        self.lock()
            .ledger
            .not_taken
            .get(point)
            .copied()
            .unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The clock: sleeps until the next arrival is due, hands it to an idle user, and while
    /// every user is busy leaves the waiting arrivals to the first that finishes.
    fn run_clock(&self) {
        precise_clock();
        let mut last_hand_over = Instant::now()
            .checked_sub(MIN_TICK)
            .unwrap_or_else(Instant::now);
        let mut state = self.lock();
        while !state.stopped {
            let now = Instant::now();
            let user_free = !state.idle.is_empty();
            let elapsed = now.saturating_duration_since(self.start);
            state
                .ledger
                .drop_stale(&self.schedule, elapsed, self.late_limit, user_free);
            let Some(arrival) = state.ledger.peek(&self.schedule) else {
                // The schedule is over: release every idle user.
                state.idle.clear();
                return;
            };
            let intended = self.start + arrival.offset;
            let most = self.gap_before(arrival) / LEAD_SHARE;
            let hand_over = intended
                .checked_sub(self.wake.lead().min(most))
                .unwrap_or(intended);
            if hand_over > now {
                // Arrivals closer together than a tick go together: one wake-up for them all.
                let target = hand_over.max(last_hand_over + MIN_TICK);
                let wake_at = target
                    .checked_sub(self.clock_late.lead().min(most))
                    .unwrap_or(target);
                if wake_at > now {
                    let (woken, timed_out) = self.wait(state, wake_at - now);
                    state = woken;
                    if timed_out {
                        self.clock_late
                            .observe(Instant::now().saturating_duration_since(wake_at));
                    }
                } else {
                    // Within the clock's own wake-up time: spin, letting the users at the lock.
                    drop(state);
                    while Instant::now() < target {
                        std::hint::spin_loop();
                    }
                    state = self.lock();
                }
                continue;
            }
            match state.idle.pop() {
                Some(user) => {
                    let handoff = Handoff::OnTime;
                    let slot = Slot {
                        arrival,
                        intended,
                        handoff,
                    };
                    // A user that went away (its task ended) leaves the arrival to the next one.
                    if user.send((slot, Instant::now())).is_ok() {
                        state.ledger.take(arrival, handoff);
                        last_hand_over = now;
                    }
                }
                None => {
                    // No user free: the first to go idle is handed it (on time, if it is not due
                    // yet), or takes it itself once due (every user was busy).
                    let recheck = if intended > now {
                        intended - now
                    } else {
                        BUSY_RECHECK.min(self.late_limit.max(MIN_WAIT))
                    };
                    state.clock_waits_for_user = true;
                    state = self.wait(state, recheck).0;
                    state.clock_waits_for_user = false;
                }
            }
        }
    }

    /// Time between `arrival` and the one before it (none for the first).
    fn gap_before(&self, arrival: Arrival) -> Duration {
        let previous = arrival
            .index
            .checked_sub(1)
            .and_then(|k| self.schedule.arrival(k));
        previous.map_or(Duration::ZERO, |p| arrival.offset.saturating_sub(p.offset))
    }

    /// Waits on the clock's condition for at most `timeout`; whether the time ran out.
    fn wait<'a>(
        &self,
        state: MutexGuard<'a, State>,
        timeout: Duration,
    ) -> (MutexGuard<'a, State>, bool) {
        let (state, result) = self
            .clock
            .wait_timeout(state, timeout)
            .unwrap_or_else(PoisonError::into_inner);
        (state, result.timed_out())
    }
}

/// Shortest wait of the clock for a busy user, so a zero late limit does not spin.
const MIN_WAIT: Duration = Duration::from_millis(1);

/// Asks the kernel to wake this thread's timed sleeps on time: within a microsecond of their
/// deadline rather than its default 50 µs of slack, and — where the process may (root, or
/// `CAP_SYS_NICE`) — ahead of ordinary threads, at the lowest real-time priority, so a busy CPU
/// does not delay the clock by a whole time slice. The clock sleeps between arrivals and holds
/// the CPU only for a hand-off. Without the privilege the clock runs as an ordinary thread and
/// its lateness, when the CPU is busy, shows in the scheduling lag.
#[cfg(target_os = "linux")]
fn precise_clock() {
    use thread_priority::unix::{
        set_thread_priority_and_policy, thread_native_id, RealtimeThreadSchedulePolicy,
        ThreadSchedulePolicy,
    };
    use thread_priority::ThreadPriority;

    static UNPRIVILEGED: std::sync::Once = std::sync::Once::new();
    if let Err(e) = nix::sys::prctl::set_timerslack(1) {
        log::debug!("cannot lower the pacer clock's timer slack: {e}");
    }
    let fifo = ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo);
    if let Err(e) = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, fifo) {
        let why = match e {
            thread_priority::Error::OS(code) => std::io::Error::from_raw_os_error(code).to_string(),
            other => other.to_string(),
        };
        UNPRIVILEGED.call_once(|| {
            log::warn!(
                "the pacer clock runs at normal priority, real-time priority refused ({why}; it \
                 needs CAP_SYS_NICE, which root has): on a busy CPU its lateness shows in the \
                 scheduling lag"
            );
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn precise_clock() {}

#[cfg(test)]
mod tests;
