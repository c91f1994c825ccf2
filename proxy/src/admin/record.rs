//! `GET /api/v1/record` and `PUT /api/v1/record`: the recorder's state, and switching it on
//! and off or changing its share while the proxy runs. Both answer 404 without `record:`.

use std::sync::Arc;

use http::{Response, StatusCode};
use serde::Deserialize;

use super::guard::Change;
use super::response::{error_response, json_response};
use super::Admin;
use crate::record::Recorder;
use crate::units::Percent;

/// What a proxy without `record:` answers.
const NOT_RECORDING: &str = "recording is not configured (add record: {dir: ...} to the \
                             configuration to record live requests)";

/// A `PUT /api/v1/record` body: either setting, or both.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordUpdate {
    enabled: Option<bool>,
    percent: Option<Percent>,
}

impl Admin {
    /// The admin API, showing and changing `recorder` when there is one.
    pub fn with_recorder(mut self, recorder: Option<Arc<Recorder>>) -> Self {
        self.recorder = recorder;
        self
    }

    /// `GET /api/v1/record`.
    pub(super) fn record_view(&self) -> Response<Vec<u8>> {
        match &self.recorder {
            Some(recorder) => json_response(StatusCode::OK, &recorder.view()),
            None => error_response(StatusCode::NOT_FOUND, NOT_RECORDING),
        }
    }

    /// `PUT /api/v1/record`: the change is logged with who made it.
    pub(super) fn update_record(&self, change: &Change) -> Response<Vec<u8>> {
        let Some(recorder) = &self.recorder else {
            return error_response(StatusCode::NOT_FOUND, NOT_RECORDING);
        };
        let update: RecordUpdate = match change.settings() {
            Ok(update) => update,
            Err(e) => {
                let message = format!(
                    "bad record settings (expected {{\"enabled\": true, \"percent\": 10}}): {e}"
                );
                return error_response(StatusCode::BAD_REQUEST, &message);
            }
        };
        let current = recorder.settings();
        let settings = recorder.set(
            update.enabled.unwrap_or(current.enabled),
            update.percent.unwrap_or(current.percent),
        );
        log::info!(
            "{}: record settings changed: enabled {} -> {}, percent {} -> {}",
            change.who(),
            current.enabled,
            settings.enabled,
            current.percent.value(),
            settings.percent.value(),
        );
        self.record_view()
    }
}
