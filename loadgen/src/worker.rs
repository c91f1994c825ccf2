//! A run spread over load workers: which share of the run this process sends, which run it
//! belongs to, and when every worker starts.
//!
//! Worker K of N (K counts from 0) sends the run's arrivals K, K + N, K + 2N, … of the one
//! schedule ([`Share`]), so each offers 1/N of the rate at every moment and together they send
//! exactly what one machine would: the same arrivals at the same offsets, and for one seed the
//! same requests, as each arrival's requests are drawn from the seed and its place in the run.
//! Each worker runs its share of `max_users` (the first `max_users mod N` workers one more) and
//! of every data variable written `{split: …}` (see [`crate::data`]).
//!
//! Every worker starts its schedule at `--start-at`, converted once from the wall clock to the
//! monotonic clock the pacer runs on. A worker that cannot be ready by then starts as soon as it
//! is and says how late in its record; one whose clock is more than [`CLOCK_WARNING`] from the
//! first target's (its `Date` header) says that too.

use std::time::{Duration, Instant, SystemTime};

use twinpeak_core::digest::hex_sha256;
use twinpeak_core::run::WorkerMark;
use twinpeak_core::timestamp::rfc3339;
use twinpeak_core::units::InvalidValue;

use crate::schedule::Share;

/// A worker's clock further than this from the target's is reported as off.
pub const CLOCK_WARNING: Duration = Duration::from_secs(2);

/// A schedule that starts later than this after `--start-at` is reported as late.
pub const LATE_WARNING: Duration = Duration::from_millis(5);

/// How far ahead `--start-at` may be: a common start is minutes ahead, and one further than
/// this is a mistyped date.
pub const MAX_START_AHEAD: Duration = Duration::from_secs(24 * 3_600);

/// Environment variable a Kubernetes Indexed Job sets to the pod's index.
pub const JOB_INDEX_VARIABLE: &str = "JOB_COMPLETION_INDEX";

/// This process's place in a run spread over load workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerPlan {
    /// Which of the run's arrivals this worker sends.
    pub share: Share,
    /// Names the run in every worker's record.
    pub run_id: String,
    /// When every worker starts its schedule, if a common start was given.
    pub start_at: Option<SystemTime>,
    /// The seed every worker draws requests with: `--seed`, or one derived from the run id.
    pub seed: u64,
}

impl WorkerPlan {
    /// The plan from the command's flags: `worker` (`K/N`) or, without it, K from
    /// `job_index` (the value of [`JOB_INDEX_VARIABLE`]) and N from `workers`; `start_at` in
    /// RFC 3339; `run_id` or one derived from the scenario's SHA-256, the seed, N, the start
    /// and the scale, so every worker of one launch derives the same; without a seed, one
    /// derived from the run id. `None` when none of `worker`, `workers` and `start_at` is
    /// given: a run of one machine.
    pub fn from_flags(
        worker: Option<&str>,
        workers: Option<u32>,
        job_index: Option<&str>,
        start_at: Option<&str>,
        run_id: Option<&str>,
        run: (&str, Option<u64>, f64),
    ) -> Result<Option<WorkerPlan>, InvalidValue> {
        let (scenario_sha256, seed, scale) = run;
        let share = match (worker, workers) {
            (Some(text), workers) => {
                let share = parse_share(text)?;
                if workers.is_some_and(|n| u64::from(n) != share.count) {
                    return Err(InvalidValue(format!(
                        "--worker {text} and --workers {} disagree on the number of workers",
                        workers.unwrap_or_default()
                    )));
                }
                Some(share)
            }
            (None, Some(count)) => {
                let Some(index) = job_index else {
                    return Err(InvalidValue(format!(
                        "--workers {count} needs --worker K/{count} or {JOB_INDEX_VARIABLE}"
                    )));
                };
                let index = index.trim().parse::<u64>().map_err(|_| {
                    InvalidValue(format!(
                        "{JOB_INDEX_VARIABLE}={index:?} is not a worker number"
                    ))
                })?;
                Some(check_share(
                    index,
                    u64::from(count),
                    &format!("{JOB_INDEX_VARIABLE}={index} with --workers {count}"),
                )?)
            }
            (None, None) => None,
        };
        let start_at = start_at.map(parse_start).transpose()?;
        if share.is_none() && start_at.is_none() {
            return Ok(None);
        }
        let share = share.unwrap_or(Share::WHOLE);
        let run_id = match run_id {
            Some(id) if id.trim().is_empty() => {
                return Err(InvalidValue("--run-id is empty".to_owned()))
            }
            Some(id) => id.trim().to_owned(),
            None => {
                let start = start_at.map(rfc3339).unwrap_or_default();
                let seed = seed.map_or_else(|| "drawn".to_owned(), |s| s.to_string());
                let key = format!("{scenario_sha256}/{seed}/{}/{start}/{scale}", share.count);
                hex_sha256(key.as_bytes())[..16].to_owned()
            }
        };
        let seed = seed.unwrap_or_else(|| {
            let digest = hex_sha256(format!("seed of run {run_id}").as_bytes());
            u64::from_str_radix(&digest[..16], 16).unwrap_or_default()
        });
        Ok(Some(WorkerPlan {
            share,
            run_id,
            start_at,
            seed,
        }))
    }

    /// This worker's share of `max_users`: `max_users / N`, one more for the first
    /// `max_users mod N` workers, so the shares add up to `max_users`. Fails when there are
    /// fewer users than workers.
    pub fn users(&self, max_users: usize) -> Result<usize, InvalidValue> {
        let (index, count) = (self.share.index as usize, self.share.count as usize);
        if max_users < count {
            return Err(InvalidValue(format!(
                "max_users {max_users} cannot be split over {count} workers: each needs one user at least"
            )));
        }
        Ok(max_users / count + usize::from(index < max_users % count))
    }

    /// The mark of this worker's record, before its schedule starts.
    pub fn mark(&self) -> WorkerMark {
        WorkerMark {
            run_id: self.run_id.clone(),
            index: self.share.index as u32,
            count: self.share.count as u32,
            start_at: self.start_at.map(rfc3339).unwrap_or_default(),
            ..WorkerMark::default()
        }
    }

    /// Fails when the common start is more than [`MAX_START_AHEAD`] after `now`: a run waits
    /// for its start, and one that far ahead is a mistyped date. (`--check` ahead of the day
    /// accepts it.)
    pub fn check_start_soon(&self, now: SystemTime) -> Result<(), InvalidValue> {
        let Some(at) = self.start_at else {
            return Ok(());
        };
        let ahead = at.duration_since(now).unwrap_or_default();
        if ahead <= MAX_START_AHEAD {
            return Ok(());
        }
        Err(InvalidValue(format!(
            "--start-at {}: {} h from now; a run's common start is at most {} h ahead (is the date right?)",
            rfc3339(at),
            ahead.as_secs() / 3_600,
            MAX_START_AHEAD.as_secs() / 3_600
        )))
    }

    /// The monotonic instant of the common start, as this machine's clock reads it now.
    pub fn start_instant(&self) -> Option<Instant> {
        let start_at = self.start_at?;
        let now = (Instant::now(), SystemTime::now());
        Some(match start_at.duration_since(now.1) {
            Ok(ahead) => now.0 + ahead,
            Err(behind) => now.0.checked_sub(behind.duration()).unwrap_or(now.0),
        })
    }
}

/// Notes in `mark` that the schedule started `late` after the common start, when it did.
pub fn note_late_start(mark: &mut WorkerMark, late: Duration) {
    let late_ms = late.as_secs_f64() * 1_000.0;
    mark.late_ms = mark.late_ms.max(late_ms);
    if late > LATE_WARNING {
        mark.warnings.push(format!(
            "started its schedule {late_ms:.0} ms after --start-at {}",
            mark.start_at
        ));
    }
}

/// Notes in `mark` how far this machine's clock is from `target`'s, and warns when visibly off.
pub fn note_clock_offset(mark: &mut WorkerMark, target: &str, offset_ms: f64) {
    mark.clock_offset_ms = Some(offset_ms);
    if offset_ms.abs() > CLOCK_WARNING.as_secs_f64() * 1_000.0 {
        let side = if offset_ms > 0.0 {
            "ahead of"
        } else {
            "behind"
        };
        mark.warnings.push(format!(
            "this machine's clock is {:.1} s {side} {target}'s: its start was not the others'",
            offset_ms.abs() / 1_000.0
        ));
    }
}

/// How far this machine's clock is ahead of the server at `url`, in ms, read from the `Date`
/// header of a `HEAD /`: the header counts whole seconds, so the figure is good to about half
/// a second. `None` when the server does not answer or sends no readable date.
pub async fn clock_offset_ms(url: &str) -> Option<f64> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .ok()?;
    let before = SystemTime::now();
    let response = client.head(format!("{url}/")).send().await.ok()?;
    let after = SystemTime::now();
    let date = response.headers().get(http::header::DATE)?.to_str().ok()?;
    let theirs = chrono::DateTime::parse_from_rfc2822(date).ok()?;
    let theirs_ms = theirs.timestamp_millis() as f64 + 500.0;
    let ours_ms = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1_000.0)
    };
    Some((ours_ms(before) + ours_ms(after)) / 2.0 - theirs_ms)
}

/// `K/N`, worker K (from 0) of N.
fn parse_share(text: &str) -> Result<Share, InvalidValue> {
    let bad = || {
        InvalidValue(format!(
            "--worker {text:?}: expected K/N, worker K of N counting from 0 (0/4 … 3/4)"
        ))
    };
    let (index, count) = text.split_once('/').ok_or_else(bad)?;
    let index = index.trim().parse::<u64>().map_err(|_| bad())?;
    let count = count.trim().parse::<u64>().map_err(|_| bad())?;
    check_share(index, count, &format!("--worker {text}"))
}

fn check_share(index: u64, count: u64, what: &str) -> Result<Share, InvalidValue> {
    if count == 0 || count > u64::from(u32::MAX) {
        return Err(InvalidValue(format!(
            "{what}: the number of workers must be 1 or more"
        )));
    }
    if index >= count {
        return Err(InvalidValue(format!(
            "{what}: workers count from 0, so K must be below {count} (0 … {})",
            count - 1
        )));
    }
    Ok(Share { index, count })
}

/// An RFC 3339 time: `2026-12-24T18:00:00Z`, or with an offset.
fn parse_start(text: &str) -> Result<SystemTime, InvalidValue> {
    let parsed = chrono::DateTime::parse_from_rfc3339(text.trim()).map_err(|e| {
        InvalidValue(format!(
            "--start-at {text:?}: not an RFC 3339 time such as 2026-12-24T18:00:00Z ({e})"
        ))
    })?;
    let at = SystemTime::from(parsed);
    if at < SystemTime::UNIX_EPOCH {
        return Err(InvalidValue(format!(
            "--start-at {}: before 1970-01-01T00:00:00Z, a start no run can have",
            text.trim()
        )));
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(
        worker: Option<&str>,
        workers: Option<u32>,
        job: Option<&str>,
    ) -> Result<Option<WorkerPlan>, InvalidValue> {
        WorkerPlan::from_flags(
            worker,
            workers,
            job,
            Some("2026-01-01T00:00:00Z"),
            None,
            ("ab", Some(7), 1.0),
        )
    }

    #[test]
    fn the_share_comes_from_the_flag_or_the_job_index() {
        let flag = plan(Some("2/4"), None, None).unwrap().unwrap();
        assert_eq!(flag.share, Share { index: 2, count: 4 });
        let job = plan(None, Some(4), Some("2")).unwrap().unwrap();
        assert_eq!(job, flag, "the same run id on every worker of one launch");
        assert!(plan(Some("4/4"), None, None)
            .unwrap_err()
            .0
            .contains("count from 0"));
        assert!(plan(Some("1/0"), None, None).is_err());
        assert!(plan(Some("one"), None, None).is_err());
        assert!(plan(None, Some(4), None)
            .unwrap_err()
            .0
            .contains(JOB_INDEX_VARIABLE));
        assert!(plan(Some("1/4"), Some(3), None)
            .unwrap_err()
            .0
            .contains("disagree"));
        let unseeded = |k| {
            WorkerPlan::from_flags(Some(k), None, None, None, None, ("ab", None, 1.0))
                .unwrap()
                .unwrap()
        };
        assert_eq!(
            unseeded("0/2").seed,
            unseeded("1/2").seed,
            "derived alike on every worker"
        );
        assert_eq!(flag.seed, 7);
        assert_eq!(
            WorkerPlan::from_flags(None, None, None, None, None, ("ab", None, 1.0)).unwrap(),
            None
        );
    }

    #[test]
    fn users_add_up_to_max_users() {
        let users = |index, count, max| {
            let plan = WorkerPlan {
                share: Share { index, count },
                run_id: String::new(),
                start_at: None,
                seed: 0,
            };
            plan.users(max)
        };
        let shares: Vec<usize> = (0..4).map(|k| users(k, 4, 10).unwrap()).collect();
        assert_eq!(shares, [3, 3, 2, 2]);
        assert!(users(0, 4, 3).is_err());
    }

    #[test]
    fn start_times_are_rfc3339() {
        assert!(parse_start("2026-01-01T18:00:00+01:00").is_ok());
        assert!(parse_start("tomorrow").unwrap_err().0.contains("RFC 3339"));
        assert!(parse_start("1969-12-31T23:59:59Z")
            .unwrap_err()
            .0
            .contains("before 1970"));
        let soon = |text: &str| {
            let mut plan = plan(Some("0/2"), None, None).unwrap().unwrap();
            plan.start_at = Some(parse_start(text).unwrap());
            plan.check_start_soon(SystemTime::now())
        };
        let ahead = |hours: u64| rfc3339(SystemTime::now() + Duration::from_secs(hours * 3_600));
        assert!(soon(&ahead(23)).is_ok());
        assert!(soon("2000-01-01T00:00:00Z").is_ok(), "late, not refused");
        for far in [ahead(25), "9999-12-31T23:59:59Z".to_owned()] {
            assert!(
                soon(&far).unwrap_err().0.contains("at most 24 h ahead"),
                "{far}"
            );
        }
    }

    #[test]
    fn late_starts_and_clocks_off_are_noted() {
        let mut mark = WorkerMark {
            start_at: "T".into(),
            ..WorkerMark::default()
        };
        note_late_start(&mut mark, Duration::from_millis(2));
        assert!(mark.warnings.is_empty());
        note_late_start(&mut mark, Duration::from_millis(1_250));
        note_clock_offset(&mut mark, "legacy", -3_200.0);
        assert_eq!(
            mark.warnings,
            [
                "started its schedule 1250 ms after --start-at T",
                "this machine's clock is 3.2 s behind legacy's: its start was not the others'",
            ]
        );
        assert_eq!(mark.late_ms, 1_250.0);
    }
}
