//! What one arrival sends. An arrival is a session of its own: its request is picked by weight
//! with a generator seeded by the run's seed and the arrival's place in the scenario, so the same
//! seed sends the same requests to every system whichever load user takes the arrival. When the
//! pick is a request with `after:`, the arrival sends the whole chain in order (`search`, `book`,
//! then the `status` picked), each request able to use what the ones before it extracted; the
//! first is timed from the arrival's intended instant, each later one from when the one before it
//! finished. A request of the chain that fails ends it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use goose::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::compare::ReplayedAnswer;
use crate::data::Data;
use crate::pacer::{Handoff, Slot};
use crate::recorder::{ErrorKind, Observation, Recorder};
use crate::replay::{Credential, ReplayEntry, ReplayPlan};
use crate::scenario::{RequestSpec, Scenario};
use crate::template::RenderContext;

/// Values extracted from answers earlier in one arrival's chain.
type Extracted = HashMap<String, serde_json::Value>;

/// What every arrival of a leg draws on to send its requests.
#[derive(Debug)]
pub(crate) struct RequestPlan {
    scenario: Arc<Scenario>,
    data: Arc<Data>,
    /// Per request, the requests an arrival that picks it sends: its `after` chain, then itself.
    chains: Vec<Vec<usize>>,
    seed: u64,
    /// Index in the whole scenario of the leg's first phase, so arrivals seed alike on every
    /// system and in every order.
    first_phase: usize,
    today: chrono::NaiveDate,
    replay: Option<Arc<ReplayPlan>>,
    /// The system the leg sends to, as replayed answers are compared under its name.
    target: String,
}

impl RequestPlan {
    /// The plan of a leg against `target` whose first phase is the scenario's `first_phase`-th.
    pub(crate) fn new(
        scenario: Arc<Scenario>,
        data: Arc<Data>,
        seed: u64,
        (first_phase, target): (usize, &str),
        replay: Option<Arc<ReplayPlan>>,
    ) -> Self {
        let chains = (0..scenario.requests.len())
            .map(|index| scenario.chain(index))
            .collect();
        Self {
            scenario,
            data,
            chains,
            seed,
            first_phase,
            today: chrono::Local::now().date_naive(),
            replay,
            target: target.to_owned(),
        }
    }

    /// Readies a load user as it starts: a replay with `--auth` gets the user its credential
    /// (a login that fails is reported, and the user sends without one).
    pub(crate) async fn prepare_user(&self, user: &mut GooseUser) {
        let Some(auth) = self.replay.as_ref().and_then(|r| r.auth.as_ref()) else {
            return;
        };
        let credential = match auth.credential(user).await {
            Ok(header) => Some(header),
            Err(why) => {
                eprintln!(
                    "warning: load user {} could not log in to {}: {why}; it sends without \
                     credentials",
                    user.weighted_users_index, self.target
                );
                None
            }
        };
        user.set_session_data(Credential(credential));
    }

    /// Sends what `slot`'s arrival sends, and records every request.
    pub(crate) async fn send(&self, user: &mut GooseUser, slot: Slot, recorder: &Recorder) {
        let mut observation = Observation {
            phase: slot.arrival.phase,
            request: 0,
            intended: slot.intended,
            sent: Instant::now(),
            done: Instant::now(),
            status: None,
            error: None,
            on_time: slot.handoff == Handoff::OnTime,
        };
        if let Some(replay) = &self.replay {
            let entries = &replay.entries;
            let entry = &entries[(slot.arrival.run_index % entries.len() as u64) as usize];
            let answer = self.send_replay(user, entry, &mut observation).await;
            observation.done = Instant::now();
            recorder.record(&observation);
            if let (Some(compare), Some(recorded), Some((status, headers, body))) =
                (&replay.compare, &entry.recorded, answer)
            {
                let answer = ReplayedAnswer {
                    status,
                    headers: &headers,
                    body: &body,
                };
                compare.compare(&self.target, recorded, &answer);
            }
            return;
        }
        let global_phase = self.first_phase + slot.arrival.phase;
        let mut rng = ChaCha8Rng::seed_from_u64(arrival_seed(
            self.seed,
            global_phase,
            slot.arrival.run_index,
        ));
        let Some(picked) = choose_request(&self.scenario.requests, &mut rng) else {
            return;
        };
        let mut extracted = Extracted::new();
        for &index in &self.chains[picked] {
            observation.request = index;
            observation.status = None;
            observation.error = None;
            let spec = &self.scenario.requests[index];
            let outcome = self
                .send_one(user, spec, &extracted, &mut rng, &mut observation)
                .await;
            observation.done = Instant::now();
            recorder.record(&observation);
            let Some(values) = outcome else { break };
            extracted.extend(values);
            // The next request of the chain is due as this one is done.
            observation.intended = observation.done;
            observation.on_time = false;
        }
    }

    /// Sends one recorded request as the replay has it, with the user's credential, and returns
    /// the answer; any answer counts as success but 5xx.
    async fn send_replay(
        &self,
        user: &mut GooseUser,
        entry: &ReplayEntry,
        observation: &mut Observation,
    ) -> Option<(u16, http::HeaderMap, bytes::Bytes)> {
        let credential = user
            .get_session_data::<Credential>()
            .and_then(|c| c.0.clone());
        let Some(mut builder) = request_builder(user, &entry.method, &entry.path) else {
            observation.error = Some(ErrorKind::Check);
            return None;
        };
        for (k, v) in &entry.headers {
            builder = builder.header(k, v);
        }
        if let Some((name, value)) = credential {
            builder = builder.header(name, value);
        }
        if !entry.body.is_empty() {
            builder = builder.body(entry.body.clone());
        }
        observation.sent = Instant::now();
        match exchange_body(builder).await {
            Ok((status, headers, body)) => {
                observation.status = Some(status);
                observation.error = (status >= 500).then_some(ErrorKind::Status);
                Some((status, headers, body))
            }
            Err((status, kind)) => {
                observation.status = status;
                observation.error = Some(kind);
                None
            }
        }
    }

    /// Sends one request; on success returns the values it extracted.
    async fn send_one(
        &self,
        user: &mut GooseUser,
        spec: &RequestSpec,
        extracted: &Extracted,
        rng: &mut ChaCha8Rng,
        observation: &mut Observation,
    ) -> Option<Extracted> {
        let mut ctx = RenderContext {
            rng,
            data: &self.data,
            session: extracted,
            today: self.today,
        };
        let rendered = (|| {
            let path = spec.path.render(&mut ctx)?;
            let headers: Vec<(String, String)> = spec
                .headers
                .iter()
                .map(|(k, v)| Ok((k.clone(), v.render(&mut ctx)?)))
                .collect::<Result<_, crate::template::RenderError>>()?;
            let json = spec.json.as_ref().map(|j| j.render(&mut ctx)).transpose()?;
            let body = spec.body.as_ref().map(|b| b.render(&mut ctx)).transpose()?;
            Ok::<_, crate::template::RenderError>((path, headers, json, body))
        })();
        let Ok((path, headers, json, body)) = rendered else {
            observation.error = Some(ErrorKind::Check);
            return None;
        };
        let Some(mut builder) = request_builder(user, &spec.method, &path) else {
            observation.error = Some(ErrorKind::Check);
            return None;
        };
        for (k, v) in headers {
            builder = builder.header(k, v);
        }
        if let Some(json) = json {
            builder = builder
                .header("content-type", "application/json")
                .body(json.to_string());
        } else if let Some(body) = body {
            builder = builder.body(body);
        }
        observation.sent = Instant::now();
        let (status, _, body) = match exchange_body(builder).await {
            Ok(answer) => answer,
            Err((status, kind)) => {
                observation.status = status;
                observation.error = Some(kind);
                return None;
            }
        };
        observation.status = Some(status);
        if !spec.is_success(status) {
            observation.error = Some(ErrorKind::Status);
            return None;
        }
        if spec.extract.is_empty() {
            return Some(Extracted::new());
        }
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
            observation.error = Some(ErrorKind::Check);
            return None;
        };
        let mut values = Extracted::new();
        for (name, path) in &spec.extract {
            let Some(v) = path.extract(&value) else {
                observation.error = Some(ErrorKind::Check);
                return None;
            };
            values.insert(name.clone(), v);
        }
        Some(values)
    }
}

/// A request to `path` on `user`'s target, by a method Goose sends, built by the user's own
/// client. A path (the usual case) is joined to the target's URL as the user holds it parsed:
/// Goose's builder parses the whole URL twice for every request (host and all), and its
/// `request` makes a metric of every answer, which twinpeak, timing requests itself, has no
/// use for. A path that would leave the target (`//host/...`, `/\host/...`: references to
/// another host, which a recorded client may have sent) is refused, so that no request, nor
/// the credential it carries, goes anywhere but the target. Anything else (a whole URL, as a
/// scenario may name) goes through Goose's builder as it is.
pub(crate) fn request_builder(
    user: &GooseUser,
    method: &http::Method,
    path: &str,
) -> Option<reqwest::RequestBuilder> {
    let goose = goose_method(method)?;
    if path.starts_with('/') {
        let url = user.base_url.join(path).ok()?;
        if url.origin() != user.base_url.origin() {
            return None;
        }
        return Some(user.client.request(method.clone(), url));
    }
    user.get_request_builder(&goose, path).ok()
}

/// The Goose method of `method`; `None` for one Goose cannot send.
pub(crate) fn goose_method(method: &http::Method) -> Option<GooseMethod> {
    Some(match *method {
        http::Method::GET => GooseMethod::Get,
        http::Method::HEAD => GooseMethod::Head,
        http::Method::POST => GooseMethod::Post,
        http::Method::PUT => GooseMethod::Put,
        http::Method::PATCH => GooseMethod::Patch,
        http::Method::DELETE => GooseMethod::Delete,
        _ => return None,
    })
}

/// Mixes the seed with the arrival's place in the scenario, so every system gets the same
/// request for the same arrival.
fn arrival_seed(seed: u64, phase: usize, index: u64) -> u64 {
    let mut h = seed ^ 0x9e37_79b9_7f4a_7c15;
    for v in [phase as u64, index] {
        h ^= v
            .wrapping_add(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(h << 6)
            .wrapping_add(h >> 2);
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    }
    h
}

/// Picks a request by weight; `None` when every weight is 0.
fn choose_request(requests: &[RequestSpec], rng: &mut ChaCha8Rng) -> Option<usize> {
    let total: u64 = requests.iter().map(|r| u64::from(r.weight)).sum();
    if total == 0 {
        return None;
    }
    let mut pick = rng.random_range(0..total);
    requests.iter().position(|r| {
        let w = u64::from(r.weight);
        if pick < w {
            return true;
        }
        pick -= w;
        false
    })
}

/// Sends a request and reads the whole answer: its status, headers and body, or the status (if
/// any) and why it failed.
pub(crate) async fn exchange_body(
    request: reqwest::RequestBuilder,
) -> Result<(u16, http::HeaderMap, bytes::Bytes), (Option<u16>, ErrorKind)> {
    let kind = |e: &reqwest::Error| {
        if e.is_timeout() {
            ErrorKind::Timeout
        } else {
            ErrorKind::Connect
        }
    };
    let response = request.send().await.map_err(|e| (None, kind(&e)))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|e| (Some(status), kind(&e)))?;
    Ok((status, headers, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrival_seeds_differ_and_repeat() {
        assert_eq!(arrival_seed(1, 0, 5), arrival_seed(1, 0, 5));
        assert_ne!(arrival_seed(1, 0, 5), arrival_seed(1, 0, 6));
        assert_ne!(arrival_seed(1, 0, 5), arrival_seed(1, 1, 5));
        assert_ne!(arrival_seed(1, 0, 5), arrival_seed(2, 0, 5));
    }

    #[test]
    fn picks_follow_the_weights_and_the_seed_alone() {
        let scenario = Scenario::parse(
            "name: mix\nbaseline_rps: 1\nmax_users: 1\nphases: [{name: a, duration: 1s, rps: 1x}]\n\
             requests:\n  - {name: search, weight: 3, path: /s, extract: {id: \"$.id\"}}\n  \
             - {name: book, weight: 1, path: \"/b/{{id}}\", after: search}\n  \
             - {name: never, weight: 0, path: /n}\n",
            std::path::Path::new("mix.yaml"),
        )
        .unwrap();
        let picks = |seed: u64| -> Vec<usize> {
            (0..4_000)
                .filter_map(|k| {
                    let mut rng = ChaCha8Rng::seed_from_u64(arrival_seed(seed, 0, k));
                    choose_request(&scenario.requests, &mut rng)
                })
                .collect()
        };
        let first = picks(7);
        assert_eq!(first, picks(7), "a function of the seed and the arrival");
        assert_ne!(first, picks(8));
        let books = first.iter().filter(|&&i| i == 1).count();
        assert!(
            (800..1_200).contains(&books),
            "{books} of 4,000 picked book"
        );
        assert!(!first.contains(&2), "weight 0 is never picked");
        assert_eq!(scenario.chain(1), [0, 1], "a book is sent after its search");
        assert_eq!(scenario.chain(0), [0]);
    }
}
