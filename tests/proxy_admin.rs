//! The admin API's door end to end: the bearer token, changes a browser cannot forge, and the
//! refusal to start an open admin listener.

mod common;

use common::*;

const TOKEN: &str = "0123456789abcdef-admin-token";

/// A proxy whose admin API needs `TOKEN`, read from a file.
async fn guarded() -> (Backend, Proxy, tempfile::TempDir) {
    let primary = Backend::fixed("primary").await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin-token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let proxy = Proxy::start_with_admin(
        &format!("token: {{ file: {} }}", token.display()),
        &format!(
            "primary: {{ url: {} }}\ncanary: {{ upstream: {}, weight: 5 }}\n",
            primary.url(),
            primary.url()
        ),
    )
    .await;
    (primary, proxy, dir)
}

#[tokio::test]
async fn with_a_token_every_endpoint_but_health_needs_it() {
    let (_primary, proxy, _dir) = guarded().await;
    let c = client();
    for path in [
        "/metrics",
        "/api/v1/status",
        "/api/v1/canary",
        "/api/v1/diffs",
    ] {
        let res = c.get(proxy.admin_url(path)).send().await.unwrap();
        assert_eq!(res.status(), 401, "{path}");
        assert!(res.headers().contains_key("www-authenticate"));
        let res = c
            .get(proxy.admin_url(path))
            .bearer_auth("not-the-token-at-all")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{path}");
        let res = c
            .get(proxy.admin_url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    let health = c.get(proxy.admin_url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    // A change without the token changes nothing.
    let promote = proxy.admin_url("/api/v1/canary/promote");
    let res = admin_change("POST", &promote, "{}").send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = admin_change("POST", &promote, r#"{"by": "alice"}"#)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let state: serde_json::Value = c
        .get(proxy.admin_url("/api/v1/canary"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["weight"], 100.0);
    let by = state["history"].as_array().unwrap().last().unwrap()["by"].clone();
    assert!(
        by.as_str().unwrap().starts_with("alice (token, 127.0.0.1:"),
        "{by}"
    );
}

#[tokio::test]
async fn a_change_a_browser_could_forge_is_refused() {
    let primary = Backend::fixed("primary").await;
    let proxy = Proxy::start(&format!(
        "primary: {{ url: {} }}\ncanary: {{ upstream: {}, weight: 5 }}\n",
        primary.url(),
        primary.url()
    ))
    .await;
    let c = client();
    let promote = proxy.admin_url("/api/v1/canary/promote");
    // What a page can send without asking first: a form, plain text, or no body at all.
    for content_type in [
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut req = c.post(&promote).body("x=1");
        if let Some(content_type) = content_type {
            req = req.header("content-type", content_type);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 415, "{content_type:?}");
    }
    // JSON, but to a name the page resolved itself (DNS rebinding).
    let res = admin_change("POST", &promote, "{}")
        .header("host", format!("evil.example:{}", proxy.admin.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let state = proxy.admin_json("/api/v1/canary").await;
    assert_eq!(state["weight"], 5.0);
    assert_eq!(state["history"].as_array().unwrap().len(), 1);
    // An operator's JSON change to the loopback address goes through.
    let res = admin_change("POST", &promote, "{}").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(proxy.admin_json("/api/v1/canary").await["weight"], 100.0);
    // Settings the endpoint does not take are refused, not ignored.
    let res = admin_change("POST", &promote, r#"{"weight": 3}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[test]
fn an_open_admin_listener_without_a_token_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.yaml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &path,
        format!(
            "listen: 127.0.0.1:{port}\nadmin: {{ listen: 0.0.0.0:0 }}\nprimary: {{ url: http://127.0.0.1:9 }}\n"
        ),
    )
    .unwrap();
    for command in ["check-config", "proxy"] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_twinpeak"));
        if command == "proxy" {
            cmd.args(["proxy", "--config"]);
        } else {
            cmd.arg(command);
        }
        let out = cmd.arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{command}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("proxy.yaml:2:")
                && stderr.contains("admin.listen: 0.0.0.0:0 is not a loopback address"),
            "{stderr}"
        );
    }
}
