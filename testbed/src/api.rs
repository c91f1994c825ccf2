//! The HTTP API: routes, request parsing and validation, and JSON answers.
//!
//! Every answer is JSON; every refusal is a 4xx or 5xx with `{"error": "..."}`. Validation runs
//! in the same order on both builds, so the same request is refused for the same reason.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Body;
use serde::{Deserialize, Serialize};

use crate::booking::{BookingId, NewBooking, Offer};
use crate::builds::BookingView;
use crate::catalog::{find_city, find_service};
use crate::slots::{parse_date, parse_slot, Slot};
use crate::store::{BookingRefused, CancelRefused, Store};
use crate::Build;

/// Largest request body read; a larger one is answered with 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Longest wait for a request body once the headers are in.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest customer name accepted.
const CUSTOMER_MAX_CHARS: usize = 100;

/// An HTTP answer with its whole body.
pub(crate) type Answer = Response<Full<Bytes>>;

/// The routes, with their path parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Health,
    Search,
    Availability(&'a str),
    Bookings,
    Booking(&'a str),
    Cancel(&'a str),
}

impl<'a> Route<'a> {
    fn parse(path: &'a str) -> Option<Route<'a>> {
        let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return None;
        }
        match segments.as_slice() {
            ["health"] => Some(Route::Health),
            ["partners"] => Some(Route::Search),
            ["partners", id, "availability"] => Some(Route::Availability(id)),
            ["bookings"] => Some(Route::Bookings),
            ["bookings", id] => Some(Route::Booking(id)),
            ["bookings", id, "cancel"] => Some(Route::Cancel(id)),
            _ => None,
        }
    }

    /// The one method the route answers (GET routes answer HEAD too).
    fn method(self) -> Method {
        match self {
            Route::Bookings | Route::Cancel(_) => Method::POST,
            _ => Method::GET,
        }
    }
}

/// Answers one request.
pub(crate) async fn handle<B>(store: Arc<Store>, request: Request<B>) -> Answer
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (parts, body) = request.into_parts();
    let Some(route) = Route::parse(parts.uri.path()) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no route {}", parts.uri.path()),
        );
    };
    let allowed = route.method();
    let method_fits =
        parts.method == allowed || (allowed == Method::GET && parts.method == Method::HEAD);
    if !method_fits {
        let mut answer = error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not allowed here; use {allowed}", parts.method),
        );
        let allow = if allowed == Method::GET {
            "GET, HEAD"
        } else {
            "POST"
        };
        answer
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
        return answer;
    }
    let query = parts.uri.query().unwrap_or("");
    match route {
        Route::Health => health(store.build()),
        Route::Search => search(&store, query).await,
        Route::Availability(id) => availability(&store, id, query).await,
        Route::Bookings => match read_body(&parts.headers, body).await {
            Ok(bytes) => book(&store, &bytes).await,
            Err(answer) => answer,
        },
        Route::Booking(id) => show_booking(&store, id).await,
        Route::Cancel(id) => cancel(&store, id).await,
    }
}

fn health(build: Build) -> Answer {
    #[derive(Serialize)]
    struct Health {
        status: &'static str,
        build: &'static str,
    }
    json(
        StatusCode::OK,
        &Health {
            status: "ok",
            build: build.name(),
        },
    )
}

async fn search(store: &Store, query: &str) -> Answer {
    #[derive(Serialize)]
    struct Found<'a> {
        city: &'a str,
        service: &'a str,
        partners: Vec<Partner>,
    }
    #[derive(Serialize)]
    struct Partner {
        id: i64,
        name: String,
        price: serde_json::Number,
        rating: Option<f64>,
        reviews: i64,
    }
    let city = query_param(query, "city").map(|c| c.to_lowercase());
    let service = query_param(query, "service").map(|s| s.to_lowercase());
    let (Some(city), Some(service)) = (city, service) else {
        return error(
            StatusCode::BAD_REQUEST,
            "query parameters city and service are both required",
        );
    };
    if city.is_empty() || service.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "query parameters city and service must not be empty",
        );
    }
    // An unknown city or service has no partners; only catalogue names reach the database.
    let offers: Vec<Offer> = match (find_city(&city), find_service(&service)) {
        (Some(c), Some(s)) => match store.search(c, s).await {
            Ok(offers) => offers,
            Err(e) => return internal(e),
        },
        _ => Vec::new(),
    };
    let build = store.build();
    let partners = offers
        .into_iter()
        .map(|o| Partner {
            id: o.partner_id,
            name: o.name,
            price: build.price(o.price_paise),
            rating: o.rating,
            reviews: o.reviews,
        })
        .collect();
    json(
        StatusCode::OK,
        &Found {
            city: &city,
            service: &service,
            partners,
        },
    )
}

async fn availability(store: &Store, id: &str, query: &str) -> Answer {
    #[derive(Serialize)]
    struct Free {
        partner_id: i64,
        date: String,
        slots: Vec<String>,
    }
    let Some(partner_id) = parse_partner_id(id) else {
        return no_partner(id);
    };
    let now = now();
    let day = match query_param(query, "date") {
        None => now.date(),
        Some(text) => match parse_date(&text) {
            Some(day) => day,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("date {text:?} is not a date (YYYY-MM-DD)"),
                )
            }
        },
    };
    match store.availability(partner_id, day, now).await {
        Ok(Some(slots)) => json(
            StatusCode::OK,
            &Free {
                partner_id,
                date: day.to_string(),
                slots: slots.iter().map(Slot::to_string).collect(),
            },
        ),
        Ok(None) => no_partner(id),
        Err(e) => internal(e),
    }
}

/// The body of `POST /bookings`. `partner_id` is a number, or a string of digits as a
/// template engine may render it.
#[derive(Deserialize)]
struct BookingRequest {
    partner_id: serde_json::Value,
    service: String,
    slot: String,
    customer: String,
}

async fn book(store: &Store, body: &[u8]) -> Answer {
    let request: BookingRequest = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(e) if e.is_syntax() || e.is_eof() => {
            return error(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}"))
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid booking: {e}")),
    };
    let partner_text = match &request.partner_id {
        serde_json::Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        serde_json::Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.clone()
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid booking: partner_id must be an integer",
            )
        }
    };
    let customer = request.customer.trim();
    if customer.is_empty() || customer.chars().count() > CUSTOMER_MAX_CHARS {
        return error(
            StatusCode::BAD_REQUEST,
            format!("invalid booking: customer must have 1 to {CUSTOMER_MAX_CHARS} characters"),
        );
    }
    if find_service(&request.service).is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            format!("invalid booking: unknown service {:?}", request.service),
        );
    }
    let now = now();
    let slot = match parse_slot(&request.slot, now) {
        Ok(slot) => slot,
        Err(e) => return error(store.build().invalid_slot_status(), e.to_string()),
    };
    let Some(partner_id) = parse_partner_id(&partner_text) else {
        return no_partner(&partner_text);
    };
    let new = NewBooking {
        partner_id,
        service: request.service,
        slot,
        customer: customer.to_string(),
    };
    match store.book(new, now).await {
        Ok(Ok(booking)) => {
            let location = format!("/bookings/{}", booking.id);
            let mut answer = json(
                StatusCode::CREATED,
                &BookingView::new(store.build(), booking),
            );
            if let Ok(value) = HeaderValue::from_str(&location) {
                answer.headers_mut().insert(LOCATION, value);
            }
            answer
        }
        Ok(Err(refused)) => match refused {
            BookingRefused::UnknownPartner(id) => no_partner(&id.to_string()),
            BookingRefused::NotOffered {
                partner_id,
                service,
            } => error(
                StatusCode::BAD_REQUEST,
                format!("partner {partner_id} does not offer {service}"),
            ),
            BookingRefused::SlotTaken(slot) => {
                error(StatusCode::CONFLICT, format!("slot {slot} is taken"))
            }
            BookingRefused::DayFull(day) => {
                error(StatusCode::CONFLICT, format!("no free slot on {day}"))
            }
        },
        Err(e) => internal(e),
    }
}

async fn show_booking(store: &Store, id: &str) -> Answer {
    let Some(booking_id) = BookingId::parse(id) else {
        return no_booking(id);
    };
    match store.booking(booking_id).await {
        Ok(Some(booking)) => json(StatusCode::OK, &BookingView::new(store.build(), booking)),
        Ok(None) => no_booking(id),
        Err(e) => internal(e),
    }
}

async fn cancel(store: &Store, id: &str) -> Answer {
    let Some(booking_id) = BookingId::parse(id) else {
        return no_booking(id);
    };
    match store.cancel(booking_id).await {
        Ok(Ok(booking)) => json(StatusCode::OK, &BookingView::new(store.build(), booking)),
        Ok(Err(CancelRefused::Unknown(_))) => no_booking(id),
        Ok(Err(CancelRefused::AlreadyCancelled(id))) => error(
            StatusCode::CONFLICT,
            format!("booking {id} is already cancelled"),
        ),
        Err(e) => internal(e),
    }
}

/// Reads a body of at most [`BODY_LIMIT`] bytes, or the answer refusing it.
async fn read_body<B>(headers: &http::HeaderMap, body: B) -> Result<Bytes, Answer>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {BODY_LIMIT} bytes"),
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(too_large());
    }
    let collected = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, BODY_LIMIT).collect());
    match collected.await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("cannot read the request body: {e}"),
        )),
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time",
        )),
    }
}

/// The value of the first `name=value` in a URL query, decoded (`+` is a space).
fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| {
            let value = value.replace('+', " ");
            percent_encoding::percent_decode_str(&value)
                .decode_utf8_lossy()
                .into_owned()
        })
}

/// A partner id from a path or a body: digits only, within range.
fn parse_partner_id(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The local wall-clock time, which slots are in.
fn now() -> chrono::NaiveDateTime {
    chrono::Local::now().naive_local()
}

fn no_partner(id: &str) -> Answer {
    error(StatusCode::NOT_FOUND, format!("no partner {id}"))
}

fn no_booking(id: &str) -> Answer {
    error(StatusCode::NOT_FOUND, format!("no booking {id}"))
}

fn internal(e: crate::error::StoreError) -> Answer {
    log::error!("{e}");
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// A JSON error answer: `{"error": message}`.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Answer {
    #[derive(Serialize)]
    struct Error {
        error: String,
    }
    json(
        status,
        &Error {
            error: message.into(),
        },
    )
}

fn json(status: StatusCode, value: &impl Serialize) -> Answer {
    let body =
        serde_json::to_vec(value).unwrap_or_else(|_| b"{\"error\":\"internal error\"}".to_vec());
    let mut answer = Response::new(Full::new(Bytes::from(body)));
    *answer.status_mut() = status;
    answer
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_whole_paths() {
        assert_eq!(Route::parse("/health"), Some(Route::Health));
        assert_eq!(Route::parse("/partners"), Some(Route::Search));
        assert_eq!(
            Route::parse("/partners/7/availability"),
            Some(Route::Availability("7"))
        );
        assert_eq!(Route::parse("/bookings"), Some(Route::Bookings));
        assert_eq!(
            Route::parse("/bookings/bk-000001"),
            Some(Route::Booking("bk-000001"))
        );
        assert_eq!(
            Route::parse("/bookings/bk-000001/cancel"),
            Some(Route::Cancel("bk-000001"))
        );
        for path in [
            "/",
            "",
            "/health/",
            "/partners/7",
            "/bookings/a/b",
            "//health",
            "*",
        ] {
            assert_eq!(Route::parse(path), None, "{path}");
        }
    }

    #[test]
    fn query_parameters_are_decoded_first_wins() {
        let q = "city=New+Delhi&service=hair%2Dcolour&city=pune&flag";
        assert_eq!(query_param(q, "city").as_deref(), Some("New Delhi"));
        assert_eq!(query_param(q, "service").as_deref(), Some("hair-colour"));
        assert_eq!(query_param(q, "flag").as_deref(), Some(""));
        assert_eq!(query_param(q, "date"), None);
        assert_eq!(
            query_param("city=%FF%", "city").as_deref(),
            Some("\u{fffd}%")
        );
    }

    #[test]
    fn partner_ids_are_plain_digits() {
        assert_eq!(parse_partner_id("42"), Some(42));
        for bad in ["", "-1", "+1", "1.0", "٤٢", "99999999999999999999"] {
            assert_eq!(parse_partner_id(bad), None, "{bad}");
        }
    }
}
