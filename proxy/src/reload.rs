//! SIGHUP: the configuration file is read again and checked; the sections that changed in it
//! and can change live are applied (the mirror's share, key and methods, each route's mirror
//! settings, the recording's share), the others are named in the log as needing a restart, and
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

use crate::config::{Config, LoadedConfig};
use crate::mirror::{Mirror, MirrorSettings};
use crate::record::Recorder;
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
    recorder: Option<Arc<Recorder>>,
}

impl Reloader {
    /// A reloader of `loaded`'s file, applying to `mirror`, the `routes`' mirror settings and
    /// `recorder`.
    pub fn new(
        loaded: &LoadedConfig,
        mirror: Arc<Mirror>,
        routes: Arc<RouteTable>,
        recorder: Option<Arc<Recorder>>,
    ) -> Self {
        Reloader {
            path: loaded.path.clone(),
            running: Mutex::new(loaded.config.clone()),
            mirror,
            routes,
            recorder,
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
        if changed(&running.record, &new.record) {
            match (&self.recorder, &mut running.record, &new.record) {
                (Some(recorder), Some(running_record), Some(new_record)) => {
                    let percent_only = {
                        let mut with_old_percent = new_record.clone();
                        with_old_percent.percent = running_record.percent;
                        !changed(&with_old_percent, running_record)
                    };
                    recorder.set(recorder.settings().enabled, new_record.percent);
                    running_record.percent = new_record.percent;
                    outcome.applied.push("record.percent");
                    if !percent_only {
                        outcome.need_restart.push("record".into());
                    }
                }
                _ => outcome.need_restart.push("record".into()),
            }
        }
        // Every other top-level section takes effect only after a restart: the sections are
        // read from the configuration's own serialized form, so a section added later is
        // named too.
        let (before, after) = (section_map(&running), section_map(&new));
        for name in before.keys().chain(after.keys()) {
            if LIVE_SECTIONS.contains(&name.as_str()) || before.get(name) == after.get(name) {
                continue;
            }
            if !outcome.need_restart.iter().any(|n| n == name) {
                outcome.need_restart.push(name.clone());
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
const LIVE_SECTIONS: [&str; 3] = ["mirror", "record", "routes"];

/// A configuration's top-level sections, as it serializes them.
fn section_map(config: &Config) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(config) {
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
