//! The same requests to both builds: the answers differ in exactly the three documented ways
//! (price rounding, the partner name's key, 400 against 422 for an invalid slot) and are byte
//! for byte the same otherwise.

mod common;

use common::*;
use http::Method;
use serde_json::json;
use twinpeak_testbed::catalog::{CITIES, SERVICES};
use twinpeak_testbed::Build;

/// One request, sent to both builds in turn.
struct Step {
    method: Method,
    path: String,
    body: Option<Vec<u8>>,
}

fn step(method: Method, path: impl Into<String>, body: Option<serde_json::Value>) -> Step {
    Step {
        method,
        path: path.into(),
        body: body.map(|b| serde_json::to_vec(&b).unwrap()),
    }
}

/// Rewrites every `"price":X` of legacy's text the way rebuilt rounds it (half up to whole
/// rupees), counting the prices it changed.
fn round_prices(text: &str, changed: &mut usize) -> String {
    let key = "\"price\":";
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(key) {
        out.push_str(&rest[..at + key.len()]);
        rest = &rest[at + key.len()..];
        let end = rest.find([',', '}']).unwrap();
        let number = &rest[..end];
        if number.contains('.') {
            let value: f64 = number.parse().unwrap();
            out.push_str(&((value + 0.5).floor() as i64).to_string());
            *changed += 1;
        } else {
            out.push_str(number);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builds_differ_in_exactly_the_three_documented_ways() {
    let legacy = start(Build::Legacy).await;
    let rebuilt = start(Build::Rebuilt).await;
    let partner = partner_offering(legacy.addr, "mumbai", "haircut").await;
    assert_eq!(
        partner,
        partner_offering(rebuilt.addr, "mumbai", "haircut").await
    );
    let (d1, d2) = (day(1), day(2));

    let mut steps = Vec::new();
    for city in CITIES {
        for service in SERVICES {
            let path = format!("/partners?city={}&service={}", city.name, service.name);
            steps.push(step(Method::GET, path, None));
        }
    }
    for id in [1, partner, 250, 500] {
        let path = format!("/partners/{id}/availability?date={d1}");
        steps.push(step(Method::GET, path, None));
    }
    let book = |slot: &str, customer: &str| {
        step(
            Method::POST,
            "/bookings",
            Some(booking(partner, "haircut", slot, customer)),
        )
    };
    steps.push(book(&d1, "asha"));
    steps.push(book(&d1, "ravi"));
    steps.push(book(&format!("{d2}T11:20"), "mira"));
    steps.push(book(&format!("{d2}T11:20"), "kay"));
    steps.push(step(
        Method::GET,
        format!("/partners/{partner}/availability?date={d1}"),
        None,
    ));
    steps.push(step(Method::GET, "/bookings/bk-000002", None));
    steps.push(step(Method::POST, "/bookings/bk-000001/cancel", None));
    steps.push(step(Method::POST, "/bookings/bk-000001/cancel", None));
    steps.push(step(Method::GET, "/bookings/bk-000001", None));
    steps.push(book(&d1, "dev"));
    steps.push(step(Method::GET, "/bookings/bk-000009", None));
    steps.push(step(
        Method::POST,
        "/bookings",
        Some(json!({"partner_id": 1})),
    ));
    steps.push(step(Method::DELETE, "/bookings", None));
    steps.push(step(Method::GET, "/nowhere", None));
    let invalid_slots = [
        "soon".to_string(),
        day(-1),
        format!("{}T10:00", day(-1)),
        format!("{d1}T08:50"),
        format!("{d1}T17:00"),
        format!("{d1}T09:05"),
    ];
    for slot in &invalid_slots {
        steps.push(book(slot, "late"));
    }

    let (mut rounded, mut renamed, mut statuses, mut identical) = (0, 0, 0, 0);
    for s in &steps {
        let one = send(legacy.addr, s.method.clone(), &s.path, s.body.as_deref()).await;
        let two = send(rebuilt.addr, s.method.clone(), &s.path, s.body.as_deref()).await;
        let what = format!(
            "{} {} {:?}",
            s.method,
            s.path,
            s.body.as_deref().map(String::from_utf8_lossy)
        );
        if one.status != two.status {
            assert_eq!((one.status, two.status), (400, 422), "{what}");
            assert!(one.error().starts_with("slot "), "{what}");
            statuses += 1;
        }
        let mut text = one.text();
        if text.contains("\"partner_name\":") {
            assert!(two.text().contains("\"partner_display_name\":"), "{what}");
            assert!(!two.text().contains("\"partner_name\""), "{what}");
            text = text.replace("\"partner_name\":", "\"partner_display_name\":");
            renamed += 1;
        }
        let mut changed = 0;
        let text = round_prices(&text, &mut changed);
        rounded += changed;
        assert_eq!(text, two.text(), "{what}");
        if one.body == two.body {
            identical += 1;
        }
        assert_eq!(
            one.headers.get("location"),
            two.headers.get("location"),
            "{what}"
        );
    }
    assert_eq!(statuses, invalid_slots.len());
    assert_eq!(renamed, 7, "four bookings made, two shown, one cancelled");
    assert!(rounded > 100, "{rounded}");
    assert!(identical > 10, "{identical}");
    legacy.shutdown().await;
    rebuilt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_prices_are_the_same_and_fractions_are_rounded_half_up() {
    let legacy = start(Build::Legacy).await;
    let rebuilt = start(Build::Rebuilt).await;
    let (mut whole, mut fractional) = (0, 0);
    for city in CITIES {
        let one = offers(legacy.addr, city.name, "massage").await;
        let two = offers(rebuilt.addr, city.name, "massage").await;
        for (a, b) in one.iter().zip(&two) {
            let (a, b) = (&a["price"], &b["price"]);
            assert!(b.is_u64(), "rebuilt prices are whole rupees: {b}");
            if a.is_u64() {
                assert_eq!(a, b);
                whole += 1;
            } else {
                let value = a.as_f64().unwrap();
                assert_eq!(value.fract(), 0.5, "{a}");
                assert_eq!(b.as_f64().unwrap(), value + 0.5);
                fractional += 1;
            }
        }
    }
    assert!(whole > 10 && fractional > 10, "{whole} {fractional}");
    legacy.shutdown().await;
    rebuilt.shutdown().await;
}
