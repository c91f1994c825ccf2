//! Comparing the two answers of each mirrored request, off the request path: status, chosen
//! headers and bodies (through the `diff` engine), noise learned from reference answers, the
//! per-field and per-signature store, examples and the corpus, secrets redacted. gRPC answers
//! also compare `grpc-status` and `grpc-message`; streaming gRPC calls are counted
//! (`result="streaming"`) and not compared.
//!
//! `twinpeak_compared_total{result}` and `twinpeak_diff_total{kind}` count each pair once, as
//! classified when it was compared (with the noise known then), so they never go down; every
//! figure read from the store is derived again with the noise known when it is read.

pub mod config;
pub mod corpus;
pub mod redact;
pub mod replay;
pub mod store;
mod worker;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use http::{HeaderMap, HeaderName};
use twinpeak_core::timestamp::rfc3339;

use crate::budget::ByteBudget;
use crate::capture::{CapturedResponse, Outcome};
use crate::diff::{
    diff_bodies, diff_grpc_outcome, holds_several_messages, is_grpc_content_type, BodyRules,
    DiffKind, Finding, GrpcAnswer,
};
use crate::labels::PairResult;
use crate::mirror::Pair;
use crate::ratelimit::RateLimitedLog;
use crate::routes::RouteTable;
use crate::sampling::Sampler;
use crate::stats::Stats;
use crate::units::SampleKey;
use twinpeak_core::sync::lock;

use config::DiffConfig;
use corpus::{Corpus, CorpusDrops, CorpusEntry, CorpusLimits};
use redact::Redactor;
use store::{DiffStore, Example, ExampleMessage};
pub use worker::PairWorker;

/// What a pair is compared by: the share compared, the headers, the body rules. Replaced
/// whole when SIGHUP changes them; the pairs compared before keep their results.
struct CompareRules {
    body: BodyRules,
    headers: Vec<HeaderName>,
    sample: Sampler,
}

impl CompareRules {
    fn new(config: &DiffConfig) -> Self {
        CompareRules {
            body: config.body_rules(),
            headers: config.compared_headers(),
            sample: Sampler::new(config.sample_percent, SampleKey::Random),
        }
    }
}

/// Compares pairs and keeps the results.
pub struct Comparator {
    rules: ArcSwap<CompareRules>,
    store: Arc<DiffStore>,
    stats: Arc<Stats>,
    routes: Arc<RouteTable>,
    redactor: Redactor,
    corpus: Option<Mutex<Corpus>>,
    corpus_errors: RateLimitedLog,
}

impl Comparator {
    /// A comparator for a configuration, keeping examples within the mirror's byte `budget`.
    /// Fails only when the corpus cannot be opened.
    pub fn new(
        config: &DiffConfig,
        routes: Arc<RouteTable>,
        stats: Arc<Stats>,
        budget: Arc<ByteBudget>,
    ) -> std::io::Result<Self> {
        let corpus = match &config.corpus {
            Some(dir) => Some(Mutex::new(Corpus::open(
                dir,
                CorpusLimits {
                    per_key: config.corpus_per_key,
                    max_bytes: config.corpus_max_bytes.0,
                    max_files: config.corpus_max_files,
                },
            )?)),
            None => None,
        };
        let store = Arc::new(DiffStore::new(routes.len(), config, budget));
        Ok(Comparator {
            rules: ArcSwap::from_pointee(CompareRules::new(config)),
            store,
            stats,
            routes,
            redactor: Redactor::new(config),
            corpus,
            corpus_errors: RateLimitedLog::new(std::time::Duration::from_secs(60)),
        })
    }

    /// The results kept so far.
    pub fn store(&self) -> &Arc<DiffStore> {
        &self.store
    }

    /// Compares the pairs that come afterwards by `config`'s `sample_percent`, `headers`,
    /// `ignore_headers`, `ignore`, `unordered` and `tolerance`.
    pub fn set_rules(&self, config: &DiffConfig) {
        self.rules.store(Arc::new(CompareRules::new(config)));
    }

    /// Compares one answer with the primary's: status, chosen headers, body. Returns the
    /// findings and whether a body was cut by the capture cap (bodies are then not compared:
    /// a truncated body is not a difference).
    pub fn compare_answers(
        &self,
        primary: &CapturedResponse,
        other: &CapturedResponse,
    ) -> (Vec<Finding>, bool) {
        let rules = self.rules.load();
        let mut findings = Vec::new();
        if primary.status != other.status {
            findings.push(Finding {
                path: "status".into(),
                kind: DiffKind::Status,
                detail: format!(
                    "{} → {}",
                    primary.status.map_or(0, |s| s.as_u16()),
                    other.status.map_or(0, |s| s.as_u16())
                ),
            });
        }
        for name in &rules.headers {
            let (a, b) = (
                header_text(&primary.headers, name),
                header_text(&other.headers, name),
            );
            if a != b {
                findings.push(Finding {
                    path: format!("header:{name}"),
                    kind: DiffKind::Header,
                    detail: format!(
                        "{} → {}",
                        a.as_deref().unwrap_or("(absent)"),
                        b.as_deref().unwrap_or("(absent)")
                    ),
                });
            }
        }
        if is_grpc(&primary.headers) || is_grpc(&other.headers) {
            findings.extend(diff_grpc_outcome(
                &grpc_answer(primary),
                &grpc_answer(other),
            ));
        }
        let truncated = primary.body.truncated || other.body.truncated;
        if !truncated {
            findings.extend(diff_bodies(
                &primary.body.bytes,
                content_type(&primary.headers),
                &other.body.bytes,
                content_type(&other.headers),
                &rules.body,
            ));
        }
        (findings, truncated)
    }

    /// Compares a pair and records the result. Pairs where a side gave no answer are not
    /// compared (the failure is counted where it happened).
    pub fn handle(&self, pair: &Pair) {
        if pair.primary.outcome != Outcome::Answered || pair.shadow.outcome != Outcome::Answered {
            return;
        }
        if !self.rules.load().sample.includes(&HeaderMap::new()) {
            return;
        }
        if is_streaming_grpc(pair) {
            self.stats.pair_result(pair.route, PairResult::Streaming);
            return;
        }
        if let Some(reference) = pair
            .reference
            .as_ref()
            .filter(|r| r.outcome == Outcome::Answered)
        {
            let (findings, truncated) = self.compare_answers(&pair.primary, reference);
            if !truncated {
                self.store.record_reference(pair.route, &findings);
            }
        }
        let (findings, truncated) = self.compare_answers(&pair.primary, &pair.shadow);
        let seen_at = rfc3339(SystemTime::now());
        let verdict = self.store.record(pair.route, findings, truncated, &|f| {
            self.example(pair, f, &seen_at)
        });
        self.stats.pair_result(pair.route, verdict.result);
        for (finding, real) in &verdict.findings {
            if *real {
                self.stats.diff_finding(pair.route, finding.kind);
                self.keep_in_corpus(pair, finding, &seen_at);
            }
        }
        self.sync_corpus();
    }

    /// What the corpus dropped so far (rotated files deleted, lines too long or not taken by
    /// the disk); `None` without a corpus.
    pub fn corpus_drops(&self) -> Option<CorpusDrops> {
        self.corpus.as_ref().map(|corpus| lock(corpus).drops())
    }

    /// Syncs corpus lines that have waited long enough.
    fn sync_corpus(&self) {
        let Some(corpus) = &self.corpus else {
            return;
        };
        let mut corpus = lock(corpus);
        if let Err(e) = corpus.sync_if_due() {
            let path = corpus.path().display().to_string();
            self.corpus_errors
                .warn(|| format!("cannot sync the corpus {path}: {e}"));
        }
    }

    fn example(&self, pair: &Pair, finding: &Finding, seen_at: &str) -> Example {
        let answer = |a: &CapturedResponse| {
            let (body, body_encoding) = self
                .redactor
                .example_body(&a.body.bytes, content_type(&a.headers));
            ExampleMessage {
                start_line: a
                    .status
                    .map_or_else(|| "(no answer)".into(), |s| s.to_string()),
                headers: self.redactor.headers(&a.headers),
                body,
                body_encoding,
                truncated: a.body.truncated,
            }
        };
        let (body, body_encoding) = self.redactor.example_body(
            &pair.request_body.bytes,
            content_type(&pair.request_headers),
        );
        Example {
            request_id: pair.request_id.clone(),
            seen_at: seen_at.to_string(),
            finding: self.redactor.finding(finding),
            request: ExampleMessage {
                start_line: format!("{} {}", pair.method, self.redactor.uri(&pair.uri)),
                headers: self.redactor.headers(&pair.request_headers),
                body,
                body_encoding,
                truncated: pair.request_body.truncated,
            },
            primary: answer(&pair.primary),
            shadow: answer(&pair.shadow),
        }
    }

    fn keep_in_corpus(&self, pair: &Pair, finding: &Finding, seen_at: &str) {
        let Some(corpus) = &self.corpus else {
            return;
        };
        let mut corpus = lock(corpus);
        if !corpus.wants(pair.route, &finding.path, finding.kind) || pair.request_body.truncated {
            return;
        }
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in self.redactor.headers(&pair.request_headers) {
            headers
                .entry(name)
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert(value);
        }
        let (body, body_encoding) = self.redactor.body(
            &pair.request_body.bytes,
            content_type(&pair.request_headers),
        );
        let entry = CorpusEntry {
            method: pair.method.as_str(),
            path: &self.redactor.uri(&pair.uri),
            headers: &headers,
            body: &body,
            body_encoding,
            route: self.routes.name(pair.route),
            field: &finding.path,
            kind: finding.kind.as_str(),
            request_id: &pair.request_id,
            seen_at,
        };
        if let Err(e) = corpus.append(pair.route, finding.kind, &entry) {
            let path = corpus.path().display().to_string();
            self.corpus_errors
                .warn(|| format!("cannot append to the corpus {path}: {e}"));
        }
    }
}

/// A header's values as text, joined.
fn header_text(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or("(not text)").trim())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

fn grpc_answer(answer: &CapturedResponse) -> GrpcAnswer<'_> {
    GrpcAnswer {
        headers: &answer.headers,
        trailers: &answer.trailers,
    }
}

/// Whether an answer or request says it is gRPC.
fn is_grpc(headers: &HeaderMap) -> bool {
    content_type(headers).is_some_and(is_grpc_content_type)
}

/// A gRPC call whose request or either answer holds more than one message: a streaming call,
/// whose messages no pairwise comparison can line up, so it is counted and not compared.
fn is_streaming_grpc(pair: &Pair) -> bool {
    is_grpc(&pair.request_headers)
        && [&pair.request_body, &pair.primary.body, &pair.shadow.body]
            .into_iter()
            .any(|body| holds_several_messages(&body.bytes))
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}
