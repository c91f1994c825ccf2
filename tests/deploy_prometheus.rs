//! deploy/prometheus and deploy/grafana against the real thing: `promtool` checks the alert
//! rules and runs their unit tests; and a real Prometheus (Debian's `prometheus` package,
//! started here on a free loopback port in a temporary directory) scrapes a running proxy's
//! metrics listener every second while traffic exercises every panel — mirroring with real
//! differences and noise, a canary the judge rolls back — and every panel's expression of the
//! Grafana dashboard returns data. Every wait is bounded.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

const PACKAGE: &str =
    "Debian's `prometheus` package (apt-get install prometheus; .ci/run installs it)";

/// A program from the `prometheus` package; fails, naming the package, when it is missing.
fn prometheus_tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|path| path.is_file())
        })
        .unwrap_or_else(|| panic!("{name} is missing: install {PACKAGE}"))
}

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn promtool(args: &[&str], file: &Path) -> String {
    let out = Command::new(prometheus_tool("promtool"))
        .args(args)
        .arg(file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} {file:?}:\n{text}");
    text
}

#[test]
fn the_alert_rules_pass_promtool_and_every_alert_has_a_unit_test() {
    let rules = deploy("prometheus/twinpeak-alerts.yaml");
    let tests = deploy("prometheus/twinpeak-alerts_test.yaml");
    let checked = promtool(&["check", "rules"], &rules);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&["test", "rules"], &tests);
    assert!(tested.contains("SUCCESS"), "{tested}");

    let rules: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&rules).unwrap()).unwrap();
    let tests: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&tests).unwrap()).unwrap();
    let tested: Vec<&str> = tests["tests"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_sequence().into_iter().flatten())
        .filter(|case| !case["exp_alerts"].as_sequence().unwrap().is_empty())
        .map(|case| case["alertname"].as_str().unwrap())
        .collect();
    let alerts: Vec<&str> = rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap())
        .filter_map(|r| r["alert"].as_str())
        .collect();
    assert!(alerts.len() >= 5, "{alerts:?}");
    for alert in alerts {
        assert!(
            tested.contains(&alert),
            "{alert} is never shown firing in a unit test"
        );
    }
}

/// A Prometheus server of our own, stopped when dropped.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second, with the alert rules loaded.
    async fn start(target: std::net::SocketAddr) -> Prometheus {
        let binary = prometheus_tool("prometheus");
        let dir = tempfile::tempdir().unwrap();
        let rules = deploy("prometheus/twinpeak-alerts.yaml");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\n\
                 rule_files: ['{}']\n\
                 scrape_configs:\n  - job_name: twinpeak\n    scrape_interval: 1s\n    \
                 static_configs: [{{ targets: ['{target}'] }}]\n",
                rules.display()
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let prometheus = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let url = format!("{}/-/ready", prometheus.url);
        let ready = eventually(Duration::from_secs(20), || {
            let url = url.clone();
            async move { matches!(client().get(&url).send().await, Ok(r) if r.status() == 200) }
        })
        .await;
        assert!(ready, "Prometheus did not start: {}", prometheus.log());
        prometheus
    }

    /// `/api/v1/{path}?{params}`.
    fn api(&self, path: &str, params: &[(&str, &str)]) -> reqwest::Url {
        let mut url = reqwest::Url::parse(&format!("{}/api/v1/{path}", self.url)).unwrap();
        url.query_pairs_mut().extend_pairs(params);
        url
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/query?query=...`'s `data`.
    async fn query(&self, expr: &str) -> serde_json::Value {
        let res = client()
            .get(self.api("query", &[("query", expr)]))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["status"], "success", "{expr}: {body}");
        body["data"].clone()
    }

    /// The finite sample values `expr` returns now.
    async fn values(&self, expr: &str) -> Vec<f64> {
        let data = self.query(expr).await;
        data["result"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|sample| sample["value"][1].as_str()?.parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .collect()
    }
}

/// Every panel's expressions, with Grafana's variables given values Prometheus takes: all
/// jobs, all routes, a 15 s rate interval (15 scrapes).
fn panel_expressions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy("grafana/twinpeak-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut expressions = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap_or_default();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$job", ".*")
                .replace("$route", ".*")
                .replace("$__rate_interval", "15s");
            assert!(!expr.contains('$'), "{title}: a variable left in {expr}");
            expressions.push((title.to_string(), expr));
        }
    }
    assert!(expressions.len() >= 6, "{expressions:?}");
    expressions
}

#[tokio::test]
async fn a_real_prometheus_finds_data_for_every_panel_of_the_dashboard() {
    let expressions = panel_expressions();
    // Legacy: every answer carries a nonce (noise) and a price.
    let nonce = Arc::new(AtomicU64::new(0));
    let legacy_nonce = nonce.clone();
    let primary = Backend::start(
        Duration::from_millis(2),
        Arc::new(move |r| {
            let n = legacy_nonce.fetch_add(1, Ordering::Relaxed);
            let body = format!(r#"{{"id": "{}", "nonce": {n}, "price": 10}}"#, r.uri);
            json(200, body)
        }),
    )
    .await;
    // Rebuilt: mirrored copies get the same answer but for odd ids' price; the canary's
    // own traffic fails, so the judge rolls it back.
    let rebuilt = Backend::start(
        Duration::from_millis(1),
        Arc::new(move |r| {
            if r.header("x-twinpeak-shadow").is_none() {
                return text(503, "rebuilt is not ready");
            }
            let odd = r.uri.ends_with(['1', '3', '5', '7', '9']);
            let price = if odd { 12 } else { 10 };
            let n = nonce.fetch_add(1, Ordering::Relaxed);
            json(
                200,
                format!(r#"{{"id": "{}", "nonce": {n}, "price": {price}}}"#, r.uri),
            )
        }),
    )
    .await;
    let metrics_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\nshadow: {{ url: {} }}\n\
         mirror: {{ percent: 100 }}\nroutes: [\"/items/{{id}}\"]\n\
         diff: {{ noise: {{ resample_percent: 50, min_samples: 10 }} }}\n\
         canary:\n  weight: 20\n  judge: {{ interval: 1s, min_requests: 5, failures_to_rollback: 2, \
         max_p99_ratio: 100, latency_effect: 0.95 }}\n\
         metrics: {{ listen: {metrics_addr} }}\n",
        primary.url(),
        rebuilt.url()
    ))
    .await;
    let prometheus = Prometheus::start(metrics_addr).await;

    let deadline = Instant::now() + Duration::from_secs(40);
    for task in 0..4u64 {
        let proxy_url = proxy.url("");
        tokio::spawn(async move {
            let c = client();
            let mut i = task;
            while Instant::now() < deadline {
                let url = format!("{proxy_url}/items/{i}");
                if let Ok(res) = c.get(&url).send().await {
                    let _ = res.bytes().await;
                }
                i += 4;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }

    // Prometheus scrapes the metrics listener.
    let scraped = eventually(Duration::from_secs(15), || async {
        prometheus.values(r#"up{job="twinpeak"} == 1"#).await.len() == 1
    })
    .await;
    assert!(scraped, "{}", prometheus.log());
    let rolled_back = eventually(Duration::from_secs(15), || async {
        proxy.admin_json("/api/v1/canary").await["state"] == "rolled_back"
    })
    .await;
    assert!(rolled_back, "{}", proxy.admin_json("/api/v1/canary").await);

    // Every panel's expressions return data, within a bounded wait.
    let mut missing = Vec::new();
    for (title, expr) in &expressions {
        let found = eventually(Duration::from_secs(10), || async {
            !prometheus.values(expr).await.is_empty()
        })
        .await;
        if !found {
            missing.push(format!("{title}: {expr}"));
        }
    }
    assert!(
        missing.is_empty(),
        "no data for:\n{}\nthe proxy exposes:\n{}",
        missing.join("\n"),
        proxy.metrics().await
    );

    // The figures say what happened: noise and real differences, a rollback, weight 0.
    let noise = r#"sum(twinpeak_compared_total{result="noise"})"#;
    assert!(prometheus.values(noise).await[0] > 0.0);
    let different = r#"sum(twinpeak_compared_total{result="different"})"#;
    assert!(prometheus.values(different).await[0] > 0.0);
    let fields = prometheus
        .query(r#"twinpeak_diff_field_pairs{route="/items/{id}"}"#)
        .await;
    let fields: Vec<&str> = fields["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"]["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"$.price"), "{fields:?}");
    assert!(
        !fields.contains(&"$.nonce"),
        "noise among the top fields: {fields:?}"
    );
    let rollbacks = r#"twinpeak_canary_decisions_total{decision="rollback"}"#;
    assert_eq!(prometheus.values(rollbacks).await, [1.0]);
    assert_eq!(prometheus.values("twinpeak_canary_weight").await, [0.0]);
    let delta = r#"twinpeak_paired_delta_seconds{route="/items/{id}", quantile="0.99"}"#;
    assert_eq!(prometheus.values(delta).await.len(), 1);
    // The template variables' label queries find the job and the route.
    let label_values = prometheus.api(
        "label/route/values",
        &[("match[]", "twinpeak_requests_total")],
    );
    let routes = get_text(label_values.as_str()).await;
    assert!(routes.contains("/items/{id}"), "{routes}");

    // The alert rules evaluate against the real series without errors.
    let rules: serde_json::Value = client()
        .get(prometheus.api("rules", &[]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rules: Vec<&serde_json::Value> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert!(rules.len() >= 5);
    for rule in rules {
        assert_eq!(rule["health"], "ok", "{rule}");
    }
}

/// A JSON answer.
fn json(status: u16, body: String) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap()
}
