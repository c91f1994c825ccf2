//! The admin API's answers: JSON, plain text, and errors as `{"error": ...}`.

use http::{Response, StatusCode};
use serde::Serialize;
use serde_json::json;

/// An answer with this status, content type and body.
pub fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(body)
        .expect("static parts form a valid response")
}

/// A JSON answer, pretty-printed.
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Vec<u8>> {
    match serde_json::to_vec_pretty(value) {
        Ok(mut body) => {
            body.push(b'\n');
            respond(status, "application/json", body)
        }
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// An error answer: `{"error": message}`.
pub fn error_response(status: StatusCode, message: &str) -> Response<Vec<u8>> {
    let body = serde_json::to_vec(&json!({ "error": message })).unwrap_or_default();
    respond(status, "application/json", body)
}
