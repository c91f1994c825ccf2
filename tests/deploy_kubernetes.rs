//! The Kubernetes manifests under deploy/kubernetes/ hold together: the ConfigMap's
//! configuration passes `twinpeak check-config` with the files the Secret provides where the
//! Deployment mounts them; the ports the configuration listens on are the ones the
//! Deployment, its probes, its scrape annotations and the Service name; and the probes' paths
//! answer on a running proxy's metrics listener, which serves nothing of the admin API.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_yaml::Value;

fn manifest(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/kubernetes")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// The proxy configuration the ConfigMap holds, as text.
fn configmap_config() -> String {
    let configmap = manifest("configmap.yaml");
    assert_eq!(configmap["kind"], "ConfigMap");
    configmap["data"]["proxy.yaml"]
        .as_str()
        .expect("the ConfigMap holds proxy.yaml")
        .to_string()
}

/// The proxy container of the Deployment.
fn container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap();
    containers.iter().find(|c| c["name"] == "proxy").unwrap()
}

/// The container port named `name`.
fn container_port(deployment: &Value, name: &str) -> u64 {
    container(deployment)["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no container port {name}"))["containerPort"]
        .as_u64()
        .unwrap()
}

/// Where the Deployment mounts the volume made from `kind` (`configMap` or `secret`).
fn mount_of(deployment: &Value, kind: &str) -> String {
    let spec = &deployment["spec"]["template"]["spec"];
    let volume = spec["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| !v[kind].is_null())
        .unwrap_or_else(|| panic!("no {kind} volume"));
    container(deployment)["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .unwrap()["mountPath"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The port of an address in the configuration (`0.0.0.0:9902` under `section.listen`).
fn listen_port(config: &Value, section: Option<&str>) -> u64 {
    let listen = match section {
        Some(section) => &config[section]["listen"],
        None => &config["listen"],
    };
    let address = listen.as_str().unwrap();
    assert!(
        address.starts_with("0.0.0.0:"),
        "{address}: not reachable in a pod"
    );
    address.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn the_configmap_configuration_passes_check_config_with_the_secrets_mounted() {
    let deployment = manifest("deployment.yaml");
    let secret = manifest("secret.yaml");
    let config_text = configmap_config();
    let secret_dir = mount_of(&deployment, "secret");
    let config_path = mount_of(&deployment, "configMap");
    let args: Vec<&str> = container(&deployment)["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args, ["proxy", "--config", config_path.as_str()]);

    // The Secret's files, where the Deployment mounts them (here: a temporary directory).
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    let values = secret["stringData"].as_mapping().unwrap();
    for (key, value) in values {
        let file = secrets.join(key.as_str().unwrap());
        std::fs::write(file, format!("{}\n", value.as_str().unwrap())).unwrap();
    }
    let mut named = 0;
    for line in config_text.lines() {
        if let Some(at) = line.find(&format!("{secret_dir}/")) {
            let rest = &line[at + secret_dir.len() + 1..];
            let key: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            assert!(
                values.contains_key(key.as_str()),
                "{line}: the Secret has no {key}"
            );
            named += 1;
        }
    }
    assert!(named >= 3, "the configuration names {named} secret files");
    let local = config_text.replace(&secret_dir, &secrets.display().to_string());
    let path = dir.path().join("proxy.yaml");
    std::fs::write(&path, &local).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_twinpeak"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{stdout}");
    let checked: Value = serde_yaml::from_str(&stdout).unwrap();
    let pg = &checked["state"]["postgres"];
    assert!(
        pg["url"].as_str().unwrap().starts_with("postgresql://"),
        "{stdout}"
    );
    assert!(!pg["password_file"].is_null(), "{stdout}");
    assert!(!checked["admin"]["token"]["file"].is_null(), "{stdout}");
    assert_eq!(checked["notify"]["webhooks"][0]["format"], "slack");
    // Secrets are named by their source, never printed.
    for value in values.values() {
        assert!(!stdout.contains(value.as_str().unwrap()), "{stdout}");
    }

    // A Secret without the password is refused, naming the key.
    std::fs::remove_file(secrets.join("postgres-password")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_twinpeak"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("state.postgres.password_file"), "{stderr}");
}

#[test]
fn ports_probes_annotations_and_selectors_agree() {
    let deployment = manifest("deployment.yaml");
    let service = manifest("service.yaml");
    let pdb = manifest("pdb.yaml");
    let monitor = manifest("servicemonitor.yaml");
    let config: Value = serde_yaml::from_str(&configmap_config()).unwrap();

    assert_eq!(deployment["kind"], "Deployment");
    assert!(deployment["spec"]["replicas"].as_u64().unwrap() >= 3);
    assert_eq!(
        listen_port(&config, None),
        container_port(&deployment, "http")
    );
    assert_eq!(
        listen_port(&config, Some("admin")),
        container_port(&deployment, "admin")
    );
    let metrics = listen_port(&config, Some("metrics"));
    assert_eq!(metrics, container_port(&deployment, "metrics"));
    let template = &deployment["spec"]["template"];
    let annotations = &template["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(
        annotations["prometheus.io/port"],
        metrics.to_string().as_str()
    );
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(
            container(&deployment)[probe]["httpGet"]["port"],
            "metrics",
            "{probe}"
        );
    }
    // The pod runs as nobody in particular, on a read-only root file system.
    let pod_security = &template["spec"]["securityContext"];
    assert_eq!(pod_security["runAsNonRoot"], true);
    let security = &container(&deployment)["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    let resources = &container(&deployment)["resources"];
    assert!(!resources["requests"]["memory"].is_null() && !resources["limits"]["memory"].is_null());

    // Every selector picks the pods.
    let labels = &template["metadata"]["labels"];
    for selector in [
        &deployment["spec"]["selector"]["matchLabels"],
        &service["spec"]["selector"],
        &pdb["spec"]["selector"]["matchLabels"],
    ] {
        for (key, value) in selector.as_mapping().unwrap() {
            assert_eq!(&labels[key.as_str().unwrap()], value, "{selector:?}");
        }
    }
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .unwrap()
    {
        assert_eq!(&service["metadata"]["labels"][key.as_str().unwrap()], value);
    }
    // The Service's ports lead to the container's, and the ServiceMonitor scrapes one.
    let service_ports = service["spec"]["ports"].as_sequence().unwrap();
    for port in service_ports {
        container_port(&deployment, port["targetPort"].as_str().unwrap());
    }
    let scraped = monitor["spec"]["endpoints"][0]["port"].as_str().unwrap();
    assert!(service_ports.iter().any(|p| p["name"] == scraped));
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
}

/// A free loopback address.
fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test]
async fn the_probes_answer_on_the_metrics_listener_and_the_admin_api_stays_closed() {
    let deployment = manifest("deployment.yaml");
    let probe_paths: Vec<String> = ["readinessProbe", "livenessProbe"]
        .iter()
        .map(|p| {
            container(&deployment)[*p]["httpGet"]["path"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(probe_paths, ["/ready", "/health"]);
    let scrape_path = deployment["spec"]["template"]["metadata"]["annotations"]
        ["prometheus.io/path"]
        .as_str()
        .unwrap()
        .to_string();

    let primary = Backend::fixed("primary").await;
    let dir = tempfile::tempdir().unwrap();
    let token: PathBuf = dir.path().join("admin-token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
    let metrics_addr = free_addr();
    let proxy = Proxy::start_with_admin(
        &format!("token: {{ file: {} }}", token.display()),
        &format!(
            "primary: {{ url: {} }}\nmetrics: {{ listen: {metrics_addr} }}\n",
            primary.url()
        ),
    )
    .await;
    let c = client();
    let metrics_url = |path: &str| format!("http://{metrics_addr}{path}");
    let c2 = c.clone();
    let ready = eventually(Duration::from_secs(10), || {
        let c = c2.clone();
        let url = metrics_url("/ready");
        async move { matches!(c.get(&url).send().await, Ok(res) if res.status() == 200) }
    })
    .await;
    assert!(ready, "{}", proxy.log_text());
    for path in probe_paths.iter().chain(std::iter::once(&scrape_path)) {
        let res = c.get(metrics_url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    let res = c.get(proxy.url("/through")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let scraped = get_text(&metrics_url(&scrape_path)).await;
    assert!(
        scraped.contains(
            r#"twinpeak_requests_total{route="other",side="primary",status_class="2xx"} 1"#
        ),
        "{scraped}"
    );

    // Nothing of the admin API is on the metrics listener, token or not.
    for path in ["/api/v1/status", "/api/v1/canary", "/api/v1/snapshot"] {
        let res = c.get(metrics_url(path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
    let with_token = c
        .get(metrics_url("/api/v1/status"))
        .bearer_auth("0123456789abcdef0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status(), 404);
    let change = admin_change("PUT", &metrics_url("/api/v1/mirror"), r#"{"percent": 5}"#);
    assert_eq!(change.send().await.unwrap().status(), 404);
    let post = admin_change("POST", &metrics_url("/metrics"), "{}");
    assert_eq!(post.send().await.unwrap().status(), 405);
    // The admin listener keeps its token; its probes need none.
    let res = c
        .get(proxy.admin_url("/api/v1/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    for path in &probe_paths {
        let res = c.get(proxy.admin_url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    let res = c
        .get(proxy.admin_url("/api/v1/status"))
        .bearer_auth("0123456789abcdef0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
