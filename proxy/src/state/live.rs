//! The store as the running proxy uses it: opened at start, what this replica left there taken
//! up (findings with their examples, latency histograms, counters), and a flush every
//! `flush_interval` and on shutdown, made off the request path from the proxy's running totals.
//! The request path never waits for any of it: the flush reads the totals the way the admin
//! API does (shard by shard, each lock held for one histogram's addition) and encodes and
//! writes on tokio's blocking pool.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use twinpeak_core::sync::lock;
use twinpeak_core::{RouteSnapshot, Snapshot};

use super::{
    counters_from_families, Batch, Health, Location, SharedStore, StateConfig, StateError, Store,
    Tracker, View,
};
use crate::comparison::store::DiffStore;
use crate::routes::RouteTable;
use crate::stats::Stats;

/// The running proxy's parts the store reads and restores.
#[derive(Clone)]
pub(crate) struct Sources {
    /// The route templates, by id.
    pub routes: Arc<RouteTable>,
    /// Histograms and counters.
    pub stats: Arc<Stats>,
    /// The comparison findings.
    pub diffs: Arc<DiffStore>,
}

impl Sources {
    /// Every route's statistics and findings as they stand.
    pub(crate) fn routes_snapshot(&self) -> BTreeMap<String, RouteSnapshot> {
        self.routes
            .names()
            .iter()
            .enumerate()
            .map(|(id, name)| {
                let mut route = self.stats.route_snapshot(id);
                let diff = self.diffs.summary(id);
                if diff.compared > 0 || diff.reference_compared > 0 {
                    route.diff = Some(diff);
                }
                (name.clone(), route)
            })
            .collect()
    }
}

/// What the flush remembers between flushes.
struct Flushing {
    tracker: Tracker,
    /// Each route's examples version as last handed over.
    examples: Vec<u64>,
}

/// The store, open, with what flushes need.
pub(crate) struct Live {
    location: Location,
    described: String,
    replica: String,
    flush_interval: Duration,
    store: SharedStore,
    health: Mutex<Health>,
    flushing: Mutex<Flushing>,
    sources: Sources,
    /// Set once the listening sockets went to a new process, which from then on writes this
    /// replica's findings as a whole: this one writes only its deltas.
    handed_over: AtomicBool,
}

/// Takes up what the store holds of this replica into `sources`.
fn restore(store: &mut Store, sources: &Sources) -> Result<String, StateError> {
    let replica = store.replica().to_string();
    let restored = store.restore()?;
    let view = store.read_view(None, None, Some(&replica))?;
    let mut findings = 0;
    for (route, kept) in &restored.findings {
        if let Some(id) = sources.routes.names().iter().position(|n| n == route) {
            sources.diffs.restore(id, &kept.summary, &kept.examples);
            findings += kept.summary.compared;
        }
    }
    let left_out = sources.stats.restore(&sources.routes, &view);
    let requests: u64 = view
        .counters
        .iter()
        .filter(|(k, _)| k.name == "twinpeak_requests_total")
        .map(|(_, n)| *n)
        .sum();
    Ok(format!(
        "{requests} requests and {findings} compared pairs taken up{}",
        if left_out > 0 {
            format!(" ({left_out} values of routes or counters no longer kept left out)")
        } else {
            String::new()
        }
    ))
}

impl Live {
    /// Opens the store `config` names, when state is kept, and lets it go again: a binary
    /// upgrade does so before it takes the listening sockets over, so that a store it cannot
    /// open stops it while the running proxy still serves (its state is taken up, as
    /// [`Live::open`] does, only once the running proxy has handed over and written it).
    pub(crate) fn probe(
        config: &StateConfig,
        config_file: &std::path::Path,
    ) -> Result<(), StateError> {
        if let Some(location) = config.location(config_file)? {
            drop(Store::open(&location, config.settings())?);
        }
        Ok(())
    }

    /// Opens the store `config` names (`None` when state is off), takes up what this replica
    /// left there, and opens a second connection for the canary when `canary` (so flushes
    /// and canary decisions never wait for each other).
    pub(crate) fn open(
        config: &StateConfig,
        config_file: &std::path::Path,
        sources: Sources,
        canary: bool,
    ) -> Result<Option<(Live, Option<Store>)>, StateError> {
        let Some(location) = config.location(config_file)? else {
            return Ok(None);
        };
        let settings = config.settings();
        let mut store = Store::open(&location, settings.clone())?;
        let restored = restore(&mut store, &sources)?;
        let described = location.describe();
        log::info!(
            "state: {described}, replica {}, flushed every {}: {restored}",
            settings.replica,
            config.flush_interval
        );
        let mut tracker = Tracker::new();
        let examples = (0..sources.routes.len())
            .map(|id| sources.diffs.examples_version(id))
            .collect();
        // What was taken up is already in the store: hand it to the tracker, not the store.
        drop(tracker.batch(
            SystemTime::now(),
            &route_snapshot(&sources),
            &counters_from_families(&sources.stats.metrics().gather()),
            all_examples(&sources),
        ));
        let control = match canary {
            true => Some(Store::open(&location, settings.clone())?),
            false => None,
        };
        let live = Live {
            location,
            described,
            replica: settings.replica,
            flush_interval: config.flush_interval.0,
            health: Mutex::new(store.health()),
            store: SharedStore::new(store),
            flushing: Mutex::new(Flushing { tracker, examples }),
            sources,
            handed_over: AtomicBool::new(false),
        };
        Ok(Some((live, control)))
    }

    /// Where the store is, in words.
    pub(crate) fn describe(&self) -> &str {
        &self.described
    }

    /// This replica's name in the store.
    pub(crate) fn replica(&self) -> &str {
        &self.replica
    }

    /// Whether every replica of a fleet shares it (PostgreSQL).
    pub(crate) fn shared(&self) -> bool {
        matches!(self.location, Location::Postgres(_))
    }

    /// How writes are going, as of the last flush.
    pub(crate) fn health(&self) -> Health {
        lock(&self.health).clone()
    }

    /// The batch of what changed since the last flush.
    fn batch(&self) -> Batch {
        let sources = &self.sources;
        let snapshot = route_snapshot(sources);
        let counters = counters_from_families(&sources.stats.metrics().gather());
        let mut flushing = lock(&self.flushing);
        let mut examples = BTreeMap::new();
        for (id, name) in sources.routes.names().iter().enumerate() {
            let version = sources.diffs.examples_version(id);
            if flushing.examples.get(id) != Some(&version) {
                examples.insert(name.clone(), sources.diffs.examples_record(id));
                if let Some(slot) = flushing.examples.get_mut(id) {
                    *slot = version;
                }
            }
        }
        let mut batch = flushing
            .tracker
            .batch(SystemTime::now(), &snapshot, &counters, examples);
        if self.handed_over.load(Ordering::Acquire) {
            batch.totals.clear();
        }
        batch
    }

    /// Writes what changed since the last flush (or buffers it while the store is away).
    /// The batch is taken and written in one call off the runtime, so a flush the runtime
    /// cancels at shutdown still writes what it took.
    pub(crate) async fn flush(self: &Arc<Self>) {
        let live = self.clone();
        self.store.call(move |store| live.write_batch(store)).await;
    }

    /// The last flush, once every service has stopped (after SIGINT as after SIGTERM): what
    /// was recorded since the flush before is written before the process exits. Waits for a
    /// flush still in progress.
    pub(crate) fn flush_at_exit(&self) {
        self.store.call_here(|store| self.write_batch(store));
        log::info!("state: flushed to {} on shutdown", self.describe());
    }

    /// Before the listening sockets go to a new process of this replica (a binary upgrade):
    /// writes what was learned, for the new process to take up, and leaves the findings as a
    /// whole to it from then on. Waits for a flush still in progress.
    pub(crate) fn hand_over(&self) {
        self.store.call_here(|store| {
            self.write_batch(store);
            self.handed_over.store(true, Ordering::Release);
        });
        log::info!("state: flushed to {} for the new process", self.describe());
    }

    fn write_batch(&self, store: &mut Store) {
        let batch = self.batch();
        store.flush(&batch);
        *lock(&self.health) = store.health();
    }

    /// Latency, counters and findings of the period (all time when both are `None`), of
    /// `replica` or of every replica merged.
    pub(crate) async fn view(
        &self,
        from: Option<SystemTime>,
        to: Option<SystemTime>,
        replica: Option<String>,
    ) -> Result<View, StateError> {
        self.store
            .call(move |store| store.read_view(from, to, replica.as_deref()))
            .await
    }
}

fn route_snapshot(sources: &Sources) -> Snapshot {
    let mut snapshot = Snapshot::new("", SystemTime::now(), BTreeMap::new());
    snapshot.routes = sources.routes_snapshot();
    snapshot
}

fn all_examples(sources: &Sources) -> BTreeMap<String, serde_json::Value> {
    sources
        .routes
        .names()
        .iter()
        .enumerate()
        .map(|(id, name)| (name.clone(), sources.diffs.examples_record(id)))
        .collect()
}

/// The flush as a Pingora background service: every `flush_interval` until shutdown (the
/// last flush is [`Live::flush_at_exit`], once the runtimes have stopped).
pub(crate) struct FlushService {
    live: Arc<Live>,
}

impl FlushService {
    /// The service flushing `live`.
    pub(crate) fn new(live: Arc<Live>) -> Self {
        FlushService { live }
    }
}

#[async_trait]
impl BackgroundService for FlushService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let period = self.live.flush_interval.max(Duration::from_millis(100));
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => self.live.flush().await,
                _ = shutdown.changed() => break,
            }
        }
    }
}
