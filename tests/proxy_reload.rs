//! SIGHUP reads the configuration file again: the mirror share changed in the file is in force
//! without a restart, a section that cannot change live is named in the log, and a file that
//! does not load is refused with its line while the running configuration stays and the proxy
//! keeps serving. The real binary on loopback.

mod common;

use std::time::Duration;

use common::*;

async fn mirror_percent(proxy: &Proxy) -> f64 {
    get_json(&proxy.admin_url("/api/v1/mirror")).await["percent"]
        .as_f64()
        .unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_the_changed_share_names_what_needs_a_restart_and_refuses_a_bad_file() {
    let primary = Backend::fixed("legacy").await;
    let shadow = Backend::fixed("rebuilt").await;
    let proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\nshadow: {{ url: {} }}\nmirror: {{ percent: 0 }}\n",
        primary.url(),
        shadow.url()
    ))
    .await;
    assert_eq!(mirror_percent(&proxy).await, 0.0);
    let original = std::fs::read_to_string(&proxy.config).unwrap();
    let changed = original
        .replace("mirror: { percent: 0 }", "mirror: { percent: 100 }")
        .replace("threads: 2", "threads: 1");
    assert_ne!(changed, original);
    std::fs::write(&proxy.config, &changed).unwrap();
    proxy.signal("HUP");
    assert!(
        eventually(Duration::from_secs(5), || async {
            mirror_percent(&proxy).await == 100.0
        })
        .await,
        "the share in the file is in force"
    );
    assert_eq!(get_text(&proxy.url("/bookings/1")).await, "legacy");
    assert!(
        eventually(Duration::from_secs(5), || async { shadow.count() >= 1 }).await,
        "copies go to the shadow"
    );
    let log = proxy.log_text();
    assert!(
        log.contains("applied: mirror; changed but need a restart: threads"),
        "{log}"
    );

    std::fs::write(
        &proxy.config,
        changed.replace("percent: 100", "percent: 250"),
    )
    .unwrap();
    proxy.signal("HUP");
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.log_text().contains("reload refused")
        })
        .await,
        "{}",
        proxy.log_text()
    );
    let log = proxy.log_text();
    let refusal = log.lines().find(|l| l.contains("reload refused")).unwrap();
    assert!(
        refusal.contains("proxy.yaml:"),
        "names the file and line: {refusal}"
    );
    assert!(
        refusal.contains("mirror.percent"),
        "names the key: {refusal}"
    );
    assert_eq!(
        mirror_percent(&proxy).await,
        100.0,
        "the running share stays"
    );
    assert_eq!(get_text(&proxy.url("/bookings/2")).await, "legacy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_routes_mirror_settings_and_names_changed_templates_for_a_restart() {
    let primary = Backend::fixed("legacy").await;
    let shadow = Backend::fixed("rebuilt").await;
    let proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\nshadow: {{ url: {} }}\nmirror: {{ percent: 100 }}\n\
         routes:\n  - \"/bookings/{{id}}\"\n  - {{ path: \"/partners/{{id}}\", mirror: false }}\n",
        primary.url(),
        shadow.url()
    ))
    .await;
    let client = client();
    let post = |path: &str| client.post(proxy.url(path)).body("{}").send();
    assert_eq!(get_text(&proxy.url("/partners/1")).await, "legacy");
    assert_eq!(post("/bookings/1").await.unwrap().status(), 200);
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.mirror_count("not_sampled").await >= 1 && proxy.mirror_count("method").await >= 1
        })
        .await,
        "the partners route is not mirrored, nor a POST"
    );
    assert_eq!(shadow.count(), 0);

    let original = std::fs::read_to_string(&proxy.config).unwrap();
    let changed = original
        .replace(
            "  - \"/bookings/{id}\"",
            "  - { path: \"/bookings/{id}\", mirror_methods: [POST] }",
        )
        .replace("mirror: false", "mirror: true");
    assert_ne!(changed, original);
    std::fs::write(&proxy.config, &changed).unwrap();
    proxy.signal("HUP");
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy
                .log_text()
                .contains("applied: routes (mirror settings)")
        })
        .await,
        "{}",
        proxy.log_text()
    );
    assert_eq!(get_text(&proxy.url("/partners/2")).await, "legacy");
    assert_eq!(post("/bookings/2").await.unwrap().status(), 200);
    assert!(
        eventually(Duration::from_secs(5), || async { shadow.count() == 2 }).await,
        "the partners route and POSTs to bookings are mirrored: {:?}",
        shadow
            .requests()
            .iter()
            .map(|r| (&r.method, &r.uri))
            .collect::<Vec<_>>()
    );

    std::fs::write(
        &proxy.config,
        changed.replace("/partners/{id}", "/partners/{id}/availability"),
    )
    .unwrap();
    proxy.signal("HUP");
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy
                .log_text()
                .contains("need a restart: routes (route templates were added, removed")
        })
        .await,
        "{}",
        proxy.log_text()
    );
    assert_eq!(get_text(&proxy.url("/partners/3")).await, "legacy");
    assert!(
        eventually(Duration::from_secs(5), || async { shadow.count() == 3 }).await,
        "the running routes and their settings stay"
    );
}

/// A comparison counter from /api/v1/status.
async fn compared(proxy: &Proxy, result: &str) -> u64 {
    proxy.admin_json("/api/v1/status").await["counters"]["compared"][result]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_the_comparison_rules_and_names_the_other_diff_keys_for_a_restart() {
    let primary = Backend::json_version(1).await;
    let shadow = Backend::json_version(2).await;
    let proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\nshadow: {{ url: {} }}\nmirror: {{ percent: 100 }}\n\
         diff: {{ queue: 100 }}\n",
        primary.url(),
        shadow.url()
    ))
    .await;
    assert_eq!(get_text(&proxy.url("/a")).await, r#"{"v": 1, "ok": true}"#);
    assert!(
        eventually(Duration::from_secs(5), || async {
            compared(&proxy, "different").await == 1
        })
        .await,
        "$.v differs"
    );

    let original = std::fs::read_to_string(&proxy.config).unwrap();
    std::fs::write(
        &proxy.config,
        original.replace(
            "diff: { queue: 100 }",
            "diff: { queue: 200, ignore: [\"$.v\"] }",
        ),
    )
    .unwrap();
    proxy.signal("HUP");
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.log_text().contains("applied: diff (rules)")
        })
        .await,
        "{}",
        proxy.log_text()
    );
    let log = proxy.log_text();
    assert!(log.contains("need a restart: diff.queue"), "{log}");
    get_text(&proxy.url("/b")).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            compared(&proxy, "identical").await == 1
        })
        .await,
        "$.v is ignored from the reload on"
    );
    assert_eq!(compared(&proxy, "different").await, 1);
}
