use super::*;
use rand::SeedableRng;
use serde_json::json;

struct Fixture {
    rng: ChaCha8Rng,
    data: Data,
    session: HashMap<String, Value>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            rng: ChaCha8Rng::seed_from_u64(7),
            data: Data::from_values([
                (
                    "city".to_string(),
                    vec!["new delhi".to_string(), "pune".to_string()],
                ),
                ("one".to_string(), vec!["a/b?c=d&e".to_string()]),
            ]),
            session: HashMap::from([("booking_id".to_string(), json!("42"))]),
        }
    }

    fn ctx(&mut self) -> RenderContext<'_> {
        RenderContext {
            rng: &mut self.rng,
            data: &self.data,
            session: &self.session,
            today: NaiveDate::from_ymd_opt(2024, 2, 27).unwrap(),
        }
    }

    fn render(&mut self, text: &str) -> Result<String, RenderError> {
        Template::parse(text).unwrap().render(&mut self.ctx())
    }
}

#[test]
fn parses_placeholders_and_lists_variables() {
    let t = Template::parse("/p?c={{ city }}&s={{service}}&n={{int 1 5}}&u={{uuid}}").unwrap();
    assert_eq!(t.variables().collect::<Vec<_>>(), ["city", "service"]);
    assert_eq!(
        t.as_str(),
        "/p?c={{ city }}&s={{service}}&n={{int 1 5}}&u={{uuid}}"
    );
    assert!(Template::parse("plain } text {")
        .unwrap()
        .variables()
        .next()
        .is_none());
    for bad in [
        "{{city",
        "{{}}",
        "{{int 5 1}}",
        "{{int 1}}",
        "{{int a b}}",
        "{{uuid 4}}",
        "{{date 1x}}",
        "{{date +1d..+2h}}",
        "{{date +7d..+1d}}",
        "{{date +99999d}}",
        "{{choice}}",
        "{{two words}}",
        "{{9lives}}",
    ] {
        assert!(Template::parse(bad).is_err(), "{bad} should not parse");
    }
}

#[test]
fn renders_the_same_with_the_same_seed() {
    let text = "{{city}} {{int 1 1000}} {{uuid}} {{choice a b c}}";
    let first = Fixture::new().render(text).unwrap();
    let second = Fixture::new().render(text).unwrap();
    assert_eq!(first, second);
    let mut f = Fixture::new();
    for _ in 0..50 {
        let n: i64 = f.render("{{int -2 2}}").unwrap().parse().unwrap();
        assert!((-2..=2).contains(&n));
        assert!(["a", "b"].contains(&f.render("{{choice a b}}").unwrap().as_str()));
    }
    let id = f.render("{{uuid}}").unwrap();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);
}

#[test]
fn session_variables_fill_in_or_fail() {
    let mut f = Fixture::new();
    assert_eq!(
        f.render("/bookings/{{booking_id}}").unwrap(),
        "/bookings/42"
    );
    assert_eq!(
        f.render("{{missing}}"),
        Err(RenderError::Unset("missing".into()))
    );
}

#[test]
fn an_extracted_value_keeps_its_json_type_in_a_json_body() {
    let mut f = Fixture::new();
    f.session.insert("partner_id".into(), json!(162));
    let t = JsonTemplate::from_value(json!({
        "partner_id": "{{partner_id}}",
        "label": "partner {{partner_id}}",
        "booking": "{{booking_id}}",
        "city": "{{city}}"
    }))
    .unwrap();
    let v = t.render(&mut f.ctx()).unwrap();
    assert_eq!(v["partner_id"], json!(162));
    assert_eq!(v["label"], json!("partner 162"));
    assert_eq!(v["booking"], json!("42"), "a string stays a string");
    assert!(v["city"].is_string(), "data variables are text");
}

#[test]
fn url_templates_percent_encode_values_only() {
    let mut f = Fixture::new();
    let t = Template::parse_url("/x/{{one}}?q={{one}}&z=a b").unwrap();
    assert_eq!(
        t.render(&mut f.ctx()).unwrap(),
        "/x/a%2Fb%3Fc%3Dd%26e?q=a%2Fb%3Fc%3Dd%26e&z=a b"
    );
    let mut seen = std::collections::BTreeSet::new();
    let t = Template::parse_url("?city={{city}}").unwrap();
    for _ in 0..40 {
        seen.insert(t.render(&mut f.ctx()).unwrap());
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["?city=new%20delhi", "?city=pune"]
    );
    assert_eq!(f.render("{{one}}").unwrap(), "a/b?c=d&e");
}

#[test]
fn dates_count_from_the_injected_today() {
    let mut f = Fixture::new();
    assert_eq!(f.render("{{date +1d}}").unwrap(), "2024-02-28");
    assert_eq!(f.render("{{date +3d}}").unwrap(), "2024-03-01");
    assert_eq!(f.render("{{date -1d}}").unwrap(), "2024-02-26");
    assert_eq!(f.render("{{date +30h}}").unwrap(), "2024-02-28T06:00:00Z");
    for _ in 0..50 {
        let day = f.render("{{date +1d..+7d}}").unwrap();
        assert!(
            ("2024-02-28".."2024-03-06").contains(&day.as_str()),
            "{day}"
        );
        let at = f.render("{{date +2h..+30h}}").unwrap();
        let at = chrono::DateTime::parse_from_rfc3339(&at).unwrap();
        let hours = (at.naive_utc() - f.ctx().today.and_time(chrono::NaiveTime::MIN)).num_hours();
        assert!((2..=30).contains(&hours), "{at}");
    }
}

#[test]
fn json_templates_render_ints_as_numbers() {
    let mut f = Fixture::new();
    let t = JsonTemplate::from_value(json!({
        "partner_id": "{{int 7 7}}",
        "label": "n{{int 7 7}}",
        "items": [{"id": "{{booking_id}}", "qty": 2, "ok": true}],
        "note": null
    }))
    .unwrap();
    assert_eq!(t.variables(), ["booking_id"]);
    assert_eq!(
        t.render(&mut f.ctx()).unwrap(),
        json!({
            "partner_id": 7,
            "label": "n7",
            "items": [{"id": "42", "qty": 2, "ok": true}],
            "note": null
        })
    );
    let e = JsonTemplate::from_value(json!({"a": ["{{int}}"]})).unwrap_err();
    assert!(e.to_string().starts_with("at $.a[0]: "), "{e}");
}

#[test]
fn extraction_paths_walk_fields_and_indexes() {
    let answer = json!({
        "id": 17,
        "booking": {"id": "b-9", "paid": false, "note": null},
        "items": [{"id": "first"}, {"id": 2.5}]
    });
    let get = |p: &str| ExtractPath::parse(p).unwrap().extract(&answer);
    assert_eq!(get("$.id"), Some(json!(17)));
    assert_eq!(get("$.booking.id"), Some(json!("b-9")));
    assert_eq!(get("$.booking.paid"), Some(json!(false)));
    assert_eq!(get("$.items[0].id"), Some(json!("first")));
    assert_eq!(get("$.items[1].id"), Some(json!(2.5)));
    assert_eq!(get("$.items[2].id"), None);
    assert_eq!(get("$.booking.note"), None);
    assert_eq!(get("$.booking"), None);
    assert_eq!(get("$.nope"), None);
    for bad in ["id", "$.", "$..id", "$.items[x]", "$.items[0", "$id"] {
        assert!(ExtractPath::parse(bad).is_err(), "{bad} should not parse");
    }
}
