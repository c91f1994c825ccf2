//! Every endpoint on both builds, and bad input answered with JSON errors.

mod common;

use common::*;
use http::Method;
use serde_json::json;
use twinpeak_testbed::catalog::{CITIES, SERVICES};
use twinpeak_testbed::{Build, BODY_LIMIT, SEARCH_LIMIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_names_the_build() {
    for build in Build::ALL {
        let testbed = start(build).await;
        let reply = get(testbed.addr, "/health").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.headers["content-type"], "application/json");
        assert_eq!(
            reply.text(),
            format!(r#"{{"status":"ok","build":"{build}"}}"#)
        );
        testbed.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_lists_the_best_rated_partners_offering_the_service() {
    for build in Build::ALL {
        let testbed = start(build).await;
        let mut seen = 0;
        for city in CITIES {
            for service in SERVICES {
                let reply = get(
                    testbed.addr,
                    &format!("/partners?city={}&service={}", city.name, service.name),
                )
                .await;
                assert_eq!(reply.status, 200);
                let found = reply.json();
                assert_eq!(found["city"], city.name);
                assert_eq!(found["service"], service.name);
                let partners = found["partners"].as_array().unwrap();
                assert!(!partners.is_empty() && partners.len() <= SEARCH_LIMIT);
                let ratings: Vec<f64> = partners
                    .iter()
                    .map(|p| p["rating"].as_f64().unwrap_or(-1.0))
                    .collect();
                assert!(ratings.windows(2).all(|w| w[0] >= w[1]), "{ratings:?}");
                for p in partners {
                    let keys: Vec<&str> =
                        p.as_object().unwrap().keys().map(|k| k.as_str()).collect();
                    assert_eq!(keys.len(), 5, "{p}");
                    let price = p["price"].as_f64().unwrap();
                    let base_min = f64::from(service.min_rupees) * 0.95;
                    let base_max = f64::from(service.max_rupees) * 1.15 + 1.0;
                    assert!((base_min..=base_max).contains(&price), "{p}");
                }
                seen += partners.len();
            }
        }
        assert!(seen > 500, "{seen}");

        // Case does not matter; unknown names find nobody.
        let upper = get(testbed.addr, "/partners?city=Mumbai&service=HAIRCUT").await;
        let lower = get(testbed.addr, "/partners?city=mumbai&service=haircut").await;
        assert_eq!(upper.body, lower.body);
        for query in ["city=atlantis&service=haircut", "city=pune&service=hair%25"] {
            let reply = get(testbed.addr, &format!("/partners?{query}")).await;
            assert_eq!(reply.status, 200);
            assert_eq!(reply.json()["partners"], json!([]));
        }
        for query in [
            "",
            "?city=pune",
            "?service=haircut",
            "?city=&service=haircut",
        ] {
            let reply = get(testbed.addr, &format!("/partners{query}")).await;
            assert_eq!(reply.status, 400, "{query}");
            assert!(reply.error().contains("city and service"), "{query}");
        }
        testbed.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn availability_lists_free_slots_of_the_day() {
    for build in Build::ALL {
        let testbed = start(build).await;
        let addr = testbed.addr;
        let tomorrow = day(1);
        let path = format!("/partners/7/availability?date={tomorrow}");
        let free = get(addr, &path).await.json();
        assert_eq!(free["partner_id"], 7);
        assert_eq!(free["date"], tomorrow);
        let slots = free["slots"].as_array().unwrap();
        assert_eq!(slots.len(), 48);
        assert_eq!(slots[0], format!("{tomorrow}T09:00"));
        assert_eq!(slots[47], format!("{tomorrow}T16:50"));

        let partner = partner_offering(addr, "delhi", "massage").await;
        let path = format!("/partners/{partner}/availability?date={tomorrow}");
        let slot = format!("{tomorrow}T10:30");
        let booked = post(
            addr,
            "/bookings",
            &booking(partner, "massage", &slot, "asha"),
        )
        .await;
        assert_eq!(booked.status, 201, "{}", booked.text());
        let free = get(addr, &path).await.json();
        let slots = free["slots"].as_array().unwrap();
        assert_eq!(slots.len(), 47);
        assert!(!slots.contains(&json!(slot)));

        // No date: today, and only slots still to come.
        let before = day(0);
        let today = get(addr, "/partners/7/availability").await.json();
        assert!(
            today["date"] == before || today["date"] == day(0),
            "{today}"
        );
        assert!(today["slots"].as_array().unwrap().len() <= 48);
        let past = get(addr, &format!("/partners/7/availability?date={}", day(-1))).await;
        assert_eq!(past.json()["slots"], json!([]));

        for path in [
            "/partners/501/availability",
            "/partners/0/availability",
            "/partners/abc/availability",
            "/partners/-1/availability",
            "/partners/99999999999999999999999/availability",
        ] {
            let reply = get(addr, path).await;
            assert_eq!(reply.status, 404, "{path}");
            assert!(reply.error().starts_with("no partner"), "{path}");
        }
        for date in ["tomorrow", "2030-02-30", "2030-1-1", "%FF"] {
            let reply = get(addr, &format!("/partners/7/availability?date={date}")).await;
            assert_eq!(reply.status, 400, "{date}");
            reply.error();
        }
        testbed.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_is_made_shown_and_cancelled() {
    for build in Build::ALL {
        let testbed = start(build).await;
        let addr = testbed.addr;
        let partner = partner_offering(addr, "pune", "facial").await;
        let day_two = day(2);

        let made = post(
            addr,
            "/bookings",
            &booking(partner, "facial", &day_two, "ravi"),
        )
        .await;
        assert_eq!(made.status, 201, "{}", made.text());
        let booking_json = made.json();
        assert_eq!(booking_json["id"], "bk-000001");
        assert_eq!(made.headers["location"], "/bookings/bk-000001");
        assert_eq!(booking_json["partner_id"], partner);
        assert_eq!(booking_json["city"], "pune");
        assert_eq!(booking_json["service"], "facial");
        assert_eq!(booking_json["slot"], format!("{day_two}T09:00"));
        assert_eq!(booking_json["customer"], "ravi");
        assert_eq!(booking_json["status"], "confirmed");
        assert!(booking_json["price"].as_f64().unwrap() > 0.0);

        // The first free slot of the day is the next one; an exact slot is that slot.
        let second = post(
            addr,
            "/bookings",
            &booking(partner, "facial", &day_two, "mira"),
        )
        .await;
        assert_eq!(second.json()["slot"], format!("{day_two}T09:10"));
        let exact = format!("{day_two}T15:40");
        let third = post(
            addr,
            "/bookings",
            &booking(partner, "facial", &exact, "dev"),
        )
        .await;
        assert_eq!(third.status, 201);
        assert_eq!(third.json()["slot"], exact);
        assert_eq!(third.json()["id"], "bk-000003");
        let taken = post(
            addr,
            "/bookings",
            &booking(partner, "facial", &exact, "kay"),
        )
        .await;
        assert_eq!(taken.status, 409);
        assert_eq!(taken.error(), format!("slot {exact} is taken"));

        let shown = get(addr, "/bookings/bk-000001").await;
        assert_eq!(shown.status, 200);
        assert_eq!(shown.body, made.body);

        let cancelled = post(addr, "/bookings/bk-000003/cancel", &json!({})).await;
        assert_eq!(cancelled.status, 200);
        assert_eq!(cancelled.json()["status"], "cancelled");
        assert_eq!(get(addr, "/bookings/bk-000003").await.body, cancelled.body);
        let again = send(addr, Method::POST, "/bookings/bk-000003/cancel", None).await;
        assert_eq!(again.status, 409);
        assert_eq!(again.error(), "booking bk-000003 is already cancelled");

        // The cancelled slot is free again.
        let rebooked = post(
            addr,
            "/bookings",
            &booking(partner, "facial", &exact, "kay"),
        )
        .await;
        assert_eq!(rebooked.status, 201);
        assert_eq!(rebooked.json()["id"], "bk-000004");

        for id in ["bk-000099", "bk-99", "bk-0000001", "nope", "bk-000000"] {
            let reply = get(addr, &format!("/bookings/{id}")).await;
            assert_eq!(reply.status, 404, "{id}");
            assert_eq!(reply.error(), format!("no booking {id}"));
            let reply = send(addr, Method::POST, &format!("/bookings/{id}/cancel"), None).await;
            assert_eq!(reply.status, 404, "{id}");
        }

        // Four bookings and one cancellation. Legacy tells the customer inside the request;
        // rebuilt hands the message to its queue, which may have sent some of them by now.
        let stats = testbed.notifications();
        assert_eq!(stats.dropped, 0);
        let handed_over = match build {
            Build::Legacy => stats.sent,
            Build::Rebuilt => stats.queued,
        };
        assert_eq!(handed_over, 5, "{stats:?}");
        assert!(stats.sent <= 5, "{stats:?}");
        testbed.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_day_answers_409() {
    for build in Build::ALL {
        let testbed = start(build).await;
        let addr = testbed.addr;
        let partner = partner_offering(addr, "kolkata", "manicure").await;
        let date = day(3);
        for _ in 0..48 {
            let reply = post(addr, "/bookings", &booking(partner, "manicure", &date, "c")).await;
            assert_eq!(reply.status, 201);
        }
        let full = post(addr, "/bookings", &booking(partner, "manicure", &date, "c")).await;
        assert_eq!(full.status, 409);
        assert_eq!(full.error(), format!("no free slot on {date}"));
        let free = get(
            addr,
            &format!("/partners/{partner}/availability?date={date}"),
        )
        .await;
        assert_eq!(free.json()["slots"], json!([]));
        testbed.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bookings_are_refused_with_json_errors() {
    for build in Build::ALL {
        let testbed = start(build).await;
        let addr = testbed.addr;
        let partner = partner_offering(addr, "chennai", "pedicure").await;
        let slot = day(1);
        let bad: Vec<(&[u8], u16, &str)> = vec![
            (b"{", 400, "malformed JSON"),
            (b"", 400, "malformed JSON"),
            (b"not json", 400, "malformed JSON"),
            (b"[1,2]", 400, "invalid booking"),
            (b"{}", 400, "invalid booking: missing field"),
            (b"{\"partner_id\":1,\"service\":\"haircut\",\"slot\":7,\"customer\":\"a\"}", 400, "invalid booking"),
            (b"{\"partner_id\":1.5,\"service\":\"haircut\",\"slot\":\"2030-01-01\",\"customer\":\"a\"}", 400, "partner_id must be an integer"),
            (b"{\"partner_id\":null,\"service\":\"haircut\",\"slot\":\"2030-01-01\",\"customer\":\"a\"}", 400, "partner_id must be an integer"),
            (b"{\"partner_id\":\"x1\",\"service\":\"haircut\",\"slot\":\"2030-01-01\",\"customer\":\"a\"}", 400, "partner_id must be an integer"),
            (b"\xff\xfe", 400, "malformed JSON"),
        ];
        for (body, status, message) in bad {
            let reply = send(addr, Method::POST, "/bookings", Some(body)).await;
            assert_eq!(reply.status, status, "{}", String::from_utf8_lossy(body));
            let error = reply.error();
            assert!(error.contains(message), "{error}");
        }
        let cases = [
            (
                booking(partner, "haircut-deluxe", &slot, "a"),
                400,
                "invalid booking: unknown service",
            ),
            (
                booking(partner, "pedicure", &slot, "  "),
                400,
                "invalid booking: customer",
            ),
            (
                booking(partner, "pedicure", &slot, &"x".repeat(101)),
                400,
                "invalid booking: customer",
            ),
            (
                booking(9999, "pedicure", &slot, "a"),
                404,
                "no partner 9999",
            ),
            (booking(0, "pedicure", &slot, "a"), 404, "no partner 0"),
            (
                json!({"partner_id": -3, "service": "pedicure", "slot": slot, "customer": "a"}),
                404,
                "no partner -3",
            ),
        ];
        for (body, status, message) in cases {
            let reply = post(addr, "/bookings", &body).await;
            assert_eq!(reply.status, status, "{body}");
            let error = reply.error();
            assert!(error.starts_with(message), "{error}");
        }
        // Each partner offers 3 to 5 services; booking one of the others is refused.
        let mut offered = 0;
        for service in SERVICES {
            let reply = post(
                addr,
                "/bookings",
                &booking(partner, service.name, &day(4), "a"),
            )
            .await;
            match reply.status {
                201 => offered += 1,
                400 => assert_eq!(
                    reply.error(),
                    format!("partner {partner} does not offer {}", service.name)
                ),
                other => panic!("{other}: {}", reply.text()),
            }
        }
        assert!((3..=5).contains(&offered), "{offered}");
        // A partner id given as a string of digits is the same partner.
        let text_id = json!({"partner_id": partner.to_string(), "service": "pedicure", "slot": slot, "customer": "a"});
        assert_eq!(post(addr, "/bookings", &text_id).await.status, 201);
        testbed.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_bodies_are_refused_with_413() {
    for build in Build::ALL {
        let testbed = start(build).await;
        let addr = testbed.addr;
        let huge = format!(
            r#"{{"partner_id":1,"service":"haircut","slot":"{}","customer":"{}"}}"#,
            day(1),
            "x".repeat(BODY_LIMIT)
        );
        let reply = send(addr, Method::POST, "/bookings", Some(huge.as_bytes())).await;
        assert_eq!(reply.status, 413);
        assert!(reply.error().contains("larger than 65536 bytes"));

        // Without a length up front: chunked, cut off once past the limit.
        let chunk = "y".repeat(16 * 1024);
        let mut request =
            b"POST /bookings HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..6 {
            request.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
        }
        request.extend_from_slice(b"0\r\n\r\n");
        let answer = raw(addr, &request).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains(r#"{"error":"request body is larger than 65536 bytes"}"#));
        testbed.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_wrong_methods_are_refused() {
    for build in Build::ALL {
        let testbed = start(build).await;
        let addr = testbed.addr;
        for path in [
            "/",
            "/healthz",
            "/health/",
            "/partners/1",
            "/bookings/bk-000001/x",
            "/bookings/",
        ] {
            let reply = get(addr, path).await;
            assert_eq!(reply.status, 404, "{path}");
            assert_eq!(reply.error(), format!("no route {path}"));
        }
        let wrong = [
            (Method::POST, "/health", "GET, HEAD"),
            (Method::DELETE, "/partners", "GET, HEAD"),
            (Method::PUT, "/partners/1/availability", "GET, HEAD"),
            (Method::GET, "/bookings", "POST"),
            (Method::DELETE, "/bookings/bk-000001", "GET, HEAD"),
            (Method::GET, "/bookings/bk-000001/cancel", "POST"),
            (Method::PATCH, "/bookings", "POST"),
        ];
        for (method, path, allow) in wrong {
            let reply = send(addr, method.clone(), path, None).await;
            assert_eq!(reply.status, 405, "{method} {path}");
            assert_eq!(reply.headers["allow"], allow);
            assert!(reply.error().contains("not allowed"));
        }
        let head = send(addr, Method::HEAD, "/health", None).await;
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());

        // Garbage on the wire is answered (or dropped) without taking the server down.
        let answer = raw(addr, b"\x16\x03\x01\x00\xa5garbage\r\n\r\n").await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
            "{answer}"
        );
        assert_eq!(get(addr, "/health").await.status, 200);
        testbed.shutdown().await;
    }
}
