//! Progress while a run goes: phase, target and achieved rate, p99 so far, the generator's own
//! scheduling lag, errors, and dropped arrivals told apart: those the target could not take
//! (every user busy waiting for it) and those the generator was too late for. A live bar on a
//! terminal; plain lines every few seconds otherwise (CI logs).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;

/// A run that can say where it stands.
pub trait ProgressSource: Send + Sync {
    /// Where the run stands now; `None` before it has started.
    fn snapshot(&self) -> Option<ProgressLine>;
}

/// Where a run stands.
#[derive(Debug, Clone)]
pub struct ProgressLine {
    /// The current phase.
    pub phase: String,
    /// Time since the first arrival.
    pub elapsed: Duration,
    /// The schedule's length.
    pub total: Duration,
    /// The schedule's rate now.
    pub target_rps: f64,
    /// Requests completed per second, recently.
    pub achieved_rps: f64,
    /// Corrected p99 of the phase so far, of the requests that succeeded, µs.
    pub p99_us: u64,
    /// The generator's scheduling lag in the phase so far, p99, µs.
    pub lag_p99_us: u64,
    /// Requests completed.
    pub requests: u64,
    /// Of which failed.
    pub errors: u64,
    /// Arrivals dropped because every user was busy waiting for the target.
    pub dropped_busy: u64,
    /// Arrivals dropped because the generator was too late while a user was free.
    pub dropped_late: u64,
    /// Load users.
    pub users: usize,
}

impl ProgressLine {
    fn text(&self, target: &str) -> String {
        let mut text = format!(
            "{target} | {} | target {:.0}/s achieved {:.0}/s | p99 {:.1} ms, generator lag p99 \
             {:.2} ms | {} requests, {} errors",
            self.phase,
            self.target_rps,
            self.achieved_rps,
            self.p99_us as f64 / 1000.0,
            self.lag_p99_us as f64 / 1000.0,
            self.requests,
            self.errors,
        );
        if self.dropped_busy > 0 {
            text.push_str(&format!(
                " | SATURATED: {} dropped, all {} users busy",
                self.dropped_busy, self.users
            ));
        }
        if self.dropped_late > 0 {
            text.push_str(&format!(
                " | generator behind: {} dropped",
                self.dropped_late
            ));
        }
        text
    }
}

/// Shows progress until finished.
pub struct ProgressReporter {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ProgressReporter {
    /// Starts showing `source`'s progress for system `target`.
    pub fn start(source: Arc<dyn ProgressSource>, target: String) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let terminal = std::io::stderr().is_terminal();
        let task = tokio::spawn(async move {
            let bar = terminal.then(|| {
                let bar = ProgressBar::new(0);
                bar.set_style(
                    ProgressStyle::with_template("{bar:24} {elapsed_precise} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar
            });
            let every = if terminal {
                Duration::from_millis(500)
            } else {
                Duration::from_secs(5)
            };
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => break,
                }
                let Some(line) = source.snapshot() else {
                    continue;
                };
                match &bar {
                    Some(bar) => {
                        bar.set_length(line.total.as_millis() as u64);
                        bar.set_position(line.elapsed.as_millis() as u64);
                        bar.set_message(line.text(&target));
                    }
                    None => eprintln!(
                        "[{:>6.1}s] {}",
                        line.elapsed.as_secs_f64(),
                        line.text(&target)
                    ),
                }
            }
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
        });
        ProgressReporter { stop, task }
    }

    /// Stops showing progress; the last line is cleared from the terminal.
    pub fn finish(self) {
        let _ = self.stop.send(true);
        drop(self.task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_who_fell_behind() {
        let mut line = ProgressLine {
            phase: "peak".into(),
            elapsed: Duration::from_secs(3),
            total: Duration::from_secs(10),
            target_rps: 1_000.0,
            achieved_rps: 157.0,
            p99_us: 160_000,
            lag_p99_us: 120,
            requests: 470,
            errors: 0,
            dropped_busy: 0,
            dropped_late: 0,
            users: 8,
        };
        let calm = line.text("legacy");
        assert!(calm.contains("generator lag p99 0.12 ms"), "{calm}");
        assert!(
            !calm.contains("SATURATED") && !calm.contains("behind"),
            "{calm}"
        );
        line.dropped_busy = 2_530;
        line.dropped_late = 4;
        let text = line.text("legacy");
        assert!(
            text.contains("SATURATED: 2530 dropped, all 8 users busy"),
            "{text}"
        );
        assert!(text.ends_with("generator behind: 4 dropped"), "{text}");
    }
}
