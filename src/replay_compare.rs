//! `twinpeak load --replay --compare`: the load harness's [`ReplayCompare`] seam over the
//! proxy's [`ReplayComparison`], so replayed answers are compared by the proxy's diff engine
//! while the harness stays free of the proxy (and the proxy of the harness).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use twinpeak_core::recording::RecordedExchange;
use twinpeak_core::DiffSummary;
use twinpeak_loadgen::{LoadCommand, ReplayCompare, ReplayedAnswer};
use twinpeak_proxy::{Config, ConfigError, ReplayComparison};

/// Runs `twinpeak load`, with the proxy's comparison of replayed answers under `--compare`
/// (and `--config`'s rules); a configuration that does not load is exit 2, before any traffic.
pub fn execute_load(command: &LoadCommand) -> ExitCode {
    if !command.compare {
        return command.execute();
    }
    match ProxyReplayCompare::load(command.config.as_deref()) {
        Ok(compare) => command.execute_with(Some(Arc::new(compare))),
        Err(e) => {
            eprintln!("error: --config: {e}");
            ExitCode::from(2)
        }
    }
}

/// Replayed answers compared with the recorded ones under a proxy configuration's rules.
#[derive(Debug)]
pub struct ProxyReplayCompare(ReplayComparison);

impl ProxyReplayCompare {
    /// Comparison under `config`'s `diff:` rules and `routes:`, or the defaults without one.
    pub fn load(config: Option<&Path>) -> Result<Self, ConfigError> {
        Ok(ProxyReplayCompare(match config {
            Some(path) => ReplayComparison::new(&Config::load(path)?.config),
            None => ReplayComparison::default(),
        }))
    }
}

impl ReplayCompare for ProxyReplayCompare {
    fn compare(&self, target: &str, recorded: &RecordedExchange, answer: &ReplayedAnswer<'_>) {
        self.0
            .compare(target, recorded, answer.status, answer.headers, answer.body);
    }

    fn summary(&self, target: &str) -> BTreeMap<String, DiffSummary> {
        self.0.summary(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twinpeak_core::recording::{RecordedBody, RecordedResponse};

    #[test]
    fn answers_reach_the_proxy_s_comparison_through_the_seam() {
        let compare: Box<dyn ReplayCompare> = Box::new(ProxyReplayCompare::load(None).unwrap());
        let recorded = RecordedExchange {
            at_us: 1,
            request_id: String::new(),
            route: "/partners".into(),
            method: "GET".into(),
            path: "/partners?city=pune".into(),
            headers: Vec::new(),
            body: RecordedBody::default(),
            response: Some(RecordedResponse {
                status: 200,
                headers: Vec::new(),
                body: RecordedBody {
                    data: "same".into(),
                    ..RecordedBody::default()
                },
                latency_us: 10,
            }),
        };
        let headers = hyper::HeaderMap::new();
        for (status, body) in [(200, &b"same"[..]), (404, b"other")] {
            let answer = ReplayedAnswer {
                status,
                headers: &headers,
                body,
            };
            compare.compare("rebuilt", &recorded, &answer);
        }
        let route = &compare.summary("rebuilt")["/partners"];
        assert_eq!(
            (route.compared, route.identical, route.different),
            (2, 1, 1)
        );
    }
}
