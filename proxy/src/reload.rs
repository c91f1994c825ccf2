//! SIGHUP: the configuration file is read again and checked; the sections that changed in it
//! and can change live are applied (the mirror's share, key and methods, each route's mirror
//! settings, the comparison's rules, what the recording keeps: its share, key, routes, methods
//! and body limits), the others are named in the log as needing a restart, and
//! a file that does not load is refused with its `file:line: key: reason` while the running
//! configuration stays. Sections the file did not change are left alone, so a share set with
//! the admin API is not undone by a reload made for something else. (Certificates are read
//! again on SIGHUP by their own watcher.)

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use serde::Serialize;
use twinpeak_core::sync::lock;

use crate::comparison::config::DiffConfig;
use crate::comparison::Comparator;
use crate::config::{Config, LoadedConfig};
use crate::mirror::{Mirror, MirrorSettings};
use crate::record::{RecordConfig, Recorder};
use crate::routes::RouteTable;

/// What a reload did, section by section.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Sections applied to the running proxy.
    pub applied: Vec<&'static str>,
    /// Sections that changed in the file but take effect only after a restart.
    pub need_restart: Vec<String>,
    /// Sections that changed but were refused, with the reason.
    pub refused: Vec<(&'static str, String)>,
}

/// Applies the live-changeable sections of a configuration file read again.
pub struct Reloader {
    path: PathBuf,
    /// The configuration as it runs: the file as last read, for the sections applied.
    running: Mutex<Config>,
    mirror: Arc<Mirror>,
    routes: Arc<RouteTable>,
    comparator: Arc<Comparator>,
    recorder: Option<Arc<Recorder>>,
}

/// What a reloader applies its sections to.
pub struct LiveParts {
    /// The mirror's settings.
    pub mirror: Arc<Mirror>,
    /// Each route's mirror settings.
    pub routes: Arc<RouteTable>,
    /// The comparison's rules.
    pub comparator: Arc<Comparator>,
    /// The recording's share, when recording.
    pub recorder: Option<Arc<Recorder>>,
}

impl Reloader {
    /// A reloader of `loaded`'s file, applying to `parts`.
    pub fn new(loaded: &LoadedConfig, parts: LiveParts) -> Self {
        Reloader {
            path: loaded.path.clone(),
            running: Mutex::new(loaded.config.clone()),
            mirror: parts.mirror,
            routes: parts.routes,
            comparator: parts.comparator,
            recorder: parts.recorder,
        }
    }

    /// Reads the file again and applies what changed; logs the outcome.
    pub fn reload(&self) {
        match Config::load(&self.path) {
            Err(error) => {
                log::error!("SIGHUP: reload refused, the running configuration stays: {error}")
            }
            Ok(loaded) => {
                let outcome = self.apply(loaded.config);
                log::info!(
                    "SIGHUP: {} read again; applied: {}; changed but need a restart: {}",
                    self.path.display(),
                    list(&outcome.applied),
                    list(&outcome.need_restart),
                );
                for (section, reason) in &outcome.refused {
                    log::error!("SIGHUP: {section} not applied: {reason}");
                }
            }
        }
    }

    /// Applies `new`'s changed sections; what stays as it ran is kept for the next reload to
    /// compare against.
    pub fn apply(&self, new: Config) -> Reloaded {
        let mut running = lock(&self.running);
        let mut outcome = Reloaded::default();
        if changed(&running.mirror, &new.mirror) {
            let settings = MirrorSettings::new(
                new.mirror.percent,
                new.mirror.key.clone(),
                new.mirror.methods.clone(),
            );
            let same_limits = new.mirror.max_body_bytes.0 == running.mirror.max_body_bytes.0
                && new.mirror.max_buffered_bytes.0 == running.mirror.max_buffered_bytes.0;
            match self.mirror.set_settings(settings) {
                Ok(()) => {
                    running.mirror.percent = new.mirror.percent;
                    running.mirror.key = new.mirror.key.clone();
                    running.mirror.methods = new.mirror.methods.clone();
                    outcome.applied.push("mirror");
                    if !same_limits {
                        outcome
                            .need_restart
                            .push("mirror.max_body_bytes/max_buffered_bytes".into());
                    }
                }
                Err(e) => outcome.refused.push(("mirror", e.to_string())),
            }
        }
        if changed(&running.routes, &new.routes) {
            // Route ids index every per-route statistic and metric series: the templates stay
            // as they started, their mirror settings change.
            match self.routes.set_mirroring(&new.routes) {
                Ok(()) => {
                    running.routes = new.routes.clone();
                    outcome.applied.push("routes (mirror settings)");
                }
                Err(e) => outcome.need_restart.push(format!("routes ({e})")),
            }
        }
        if changed(&running.diff, &new.diff) {
            if changed(&with_live_rules(&running.diff, &new.diff), &running.diff) {
                self.comparator.set_rules(&new.diff);
                set_live_rules(&mut running.diff, &new.diff);
                outcome.applied.push("diff (rules)");
            }
            let rest = with_live_rules(&new.diff, &running.diff);
            for key in changed_fields(&running.diff, &rest, &[]) {
                outcome.need_restart.push(format!("diff.{key}"));
            }
        }
        if changed(&running.record, &new.record) {
            match (&self.recorder, &mut running.record, &new.record) {
                (Some(recorder), Some(running_record), Some(new_record)) => {
                    let live = with_running_files(new_record, running_record);
                    if changed(&live, running_record) {
                        recorder.reconfigure(&live, &self.routes);
                        *running_record = live;
                        outcome.applied.push("record");
                    }
                    for key in changed_fields(running_record, new_record, &[]) {
                        outcome.need_restart.push(format!("record.{key}"));
                    }
                }
                _ => outcome.need_restart.push("record".into()),
            }
        }
        // Every other top-level section takes effect only after a restart: the sections are
        // read from the configuration's own serialized form, so a section added later is
        // named too.
        for name in changed_fields(&*running, &new, &LIVE_SECTIONS) {
            if !outcome.need_restart.contains(&name) {
                outcome.need_restart.push(name);
            }
        }
        outcome
    }
}

/// Names joined with commas, or `none`.
fn list<S: AsRef<str>>(names: &[S]) -> String {
    if names.is_empty() {
        return "none".into();
    }
    let names: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
    names.join(", ")
}

/// Sections applied live, or named by the code that applies them.
const LIVE_SECTIONS: [&str; 4] = ["diff", "mirror", "record", "routes"];

/// `record` with what stays as the proxy started taken from `running`: the directory, the
/// files' bounds and the queue, which the writer and the queue were made with.
fn with_running_files(record: &RecordConfig, running: &RecordConfig) -> RecordConfig {
    RecordConfig {
        dir: running.dir.clone(),
        max_file_bytes: running.max_file_bytes,
        max_total_bytes: running.max_total_bytes,
        queue: running.queue,
        max_queued_bytes: running.max_queued_bytes,
        ..record.clone()
    }
}

/// `config` with the rules that change live taken from `rules`.
fn with_live_rules(config: &DiffConfig, rules: &DiffConfig) -> DiffConfig {
    let mut config = config.clone();
    set_live_rules(&mut config, rules);
    config
}

/// Sets the comparison rules that change live (the share compared, the headers, the body
/// rules) in `config` to `rules`'. The rest stays as the proxy started: the noise settings
/// and limits size the findings already kept, and redaction and the corpus apply to what was
/// written with them.
fn set_live_rules(config: &mut DiffConfig, rules: &DiffConfig) {
    config.sample_percent = rules.sample_percent;
    config.headers = rules.headers.clone();
    config.ignore_headers = rules.ignore_headers.clone();
    config.ignore = rules.ignore.clone();
    config.unordered = rules.unordered.clone();
    config.tolerance = rules.tolerance.clone();
}

/// The names of the fields (as they serialize) that differ between `before` and `after`,
/// those in `except` left out.
fn changed_fields<T: Serialize>(before: &T, after: &T, except: &[&str]) -> Vec<String> {
    let (before, after) = (field_map(before), field_map(after));
    let mut names: Vec<String> = Vec::new();
    for name in before.keys().chain(after.keys()) {
        let differs = before.get(name) != after.get(name);
        if differs && !except.contains(&name.as_str()) && !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// A value's fields (a configuration's top-level sections), as it serializes them.
fn field_map<T: Serialize>(value: &T) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

/// Whether two sections differ, as their serialized forms do.
fn changed<T: Serialize>(a: &T, b: &T) -> bool {
    serde_json::to_value(a).ok() != serde_json::to_value(b).ok()
}

/// Reads the configuration again on every SIGHUP.
pub struct ReloadService(pub Arc<Reloader>);

#[async_trait]
impl BackgroundService for ReloadService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(error) => {
                log::warn!("cannot watch for SIGHUP ({error}); the configuration is not reloaded");
                return;
            }
        };
        loop {
            tokio::select! {
                Some(()) = hangups.recv() => {
                    let reloader = self.0.clone();
                    // Reading and checking the file is blocking work.
                    let _ = tokio::task::spawn_blocking(move || reloader.reload()).await;
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}
