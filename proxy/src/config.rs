//! The proxy's configuration file: its shape, defaults, and errors that name file, line and key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use twinpeak_core::digest::hex_sha256;
use twinpeak_core::yaml_error;

use crate::access_log::AccessLogConfig;
use crate::canary::config::CanaryConfig;
use crate::comparison::config::DiffConfig;
use crate::error::InvalidKey;
use crate::listen::Listener;
use crate::notify::NotifyConfig;
use crate::record::RecordConfig;
use crate::routes::RouteConfig;
use crate::secret::SecretSource;
use crate::state::StateConfig;
use crate::tls::upstream::UpstreamTls;
use crate::units::{Bytes, HumanDuration, Method, Percent, SampleKey, UpstreamUrl};

/// The whole proxy configuration, as read from YAML with every default filled in.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the proxy accepts client traffic: one address or a list, each plain or
    /// `{address, tls, http2}` (see [`crate::listen`]).
    #[serde(
        deserialize_with = "crate::listen::one_or_many",
        serialize_with = "crate::listen::serialize"
    )]
    pub listen: Vec<Listener>,
    /// Pingora worker threads; defaults to the number of cores.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// The admin listener (metrics and API).
    #[serde(default)]
    pub admin: AdminConfig,
    /// The legacy backend: every client is served from it.
    pub primary: PrimaryConfig,
    /// The rebuilt backend that receives mirrored copies.
    #[serde(default)]
    pub shadow: Option<ShadowConfig>,
    /// Which requests are mirrored.
    #[serde(default)]
    pub mirror: MirrorConfig,
    /// How much of each answer is kept for comparison.
    #[serde(default)]
    pub capture: CaptureConfig,
    /// Route templates that name metrics; other paths are counted under `other`.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// How the two answers of a mirrored request are compared.
    #[serde(default)]
    pub diff: DiffConfig,
    /// Canary routing of live traffic to the rebuilt backend; absent: every client is served
    /// by the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryConfig>,
    /// Where what the proxy learns is kept across restarts (an SQLite file beside this file
    /// by default), and shared by a fleet (PostgreSQL).
    #[serde(default)]
    pub state: StateConfig,
    /// Webhooks told of canary changes and new real differences.
    #[serde(default)]
    pub notify: NotifyConfig,
    /// Recording of a share of live requests, and the primary's answers, for replay; absent:
    /// nothing is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<RecordConfig>,
    /// A JSON Lines access log, one line per client request, to a file or standard output;
    /// absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLogConfig>,
    /// A listener for `/metrics`, `/health` and `/ready` alone, without the admin token (for
    /// Prometheus and kubelet probes); absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsConfig>,
    /// How SIGTERM stops the proxy.
    #[serde(default)]
    pub shutdown: ShutdownConfig,
}

/// The metrics-only listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where `/metrics`, `/health` and `/ready` are served (`0.0.0.0:9902` in a pod).
    pub listen: SocketAddr,
}

/// How the proxy stops on SIGTERM: it stops accepting connections at once, lets the requests
/// in flight finish for at most `drain`, writes what it persists, and exits as soon as none is
/// left. SIGINT stops it at once.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// Longest the requests in flight at SIGTERM are given to finish; default 10s, at most 10m.
    #[serde(default = "default_drain")]
    pub drain: HumanDuration,
    /// The Unix socket `twinpeak proxy --upgrade` takes the listening sockets over through;
    /// default `/tmp/twinpeak-UID/upgrade-ADMINPORT.sock`, with the admin port, in a directory
    /// of mode 0700.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_sock: Option<PathBuf>,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            drain: default_drain(),
            upgrade_sock: None,
        }
    }
}

fn default_drain() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(10))
}

/// Longest `shutdown.drain` allowed.
const MAX_DRAIN: std::time::Duration = std::time::Duration::from_secs(600);

/// The admin listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Where `/metrics` and `/api/v1/...` are served.
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// A bearer token (`{file: PATH}` or `{env: NAME}`) every endpoint but `/health` then
    /// requires; required when `listen` is not a loopback address.
    #[serde(default, skip_serializing_if = "is_unset")]
    pub token: SecretSource,
    /// `Host` values (`name` or `name:port`) accepted on changes besides loopback names and
    /// the listen address itself: what a browser cannot forge is a request to a name it did not
    /// resolve itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: default_admin_listen(),
            token: SecretSource::default(),
            hosts: Vec::new(),
        }
    }
}

fn is_unset(secret: &SecretSource) -> bool {
    !secret.is_set()
}

/// The primary (legacy) upstream.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrimaryConfig {
    /// `http://host:port` or `https://host:port`.
    pub url: UpstreamUrl,
    /// Time allowed to open a connection.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Longest wait for the next piece of an answer (no limit on the whole exchange, so large
    /// downloads pass). Unset by default: the proxy adds no timeout the client would not have
    /// met talking to the primary directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_timeout: Option<HumanDuration>,
    /// Speak HTTP/2 to it: offered by ALPN over TLS, with prior knowledge (h2c) over plaintext.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub http2: bool,
    /// TLS settings for an `https://` url (verification is on without them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTls>,
}

/// The shadow (rebuilt) upstream.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowConfig {
    /// `http://host:port` or `https://host:port`.
    pub url: UpstreamUrl,
    /// Limit on a whole shadow exchange; past it the copy is abandoned and counted.
    #[serde(default = "default_shadow_timeout")]
    pub timeout: HumanDuration,
    /// Most copies outstanding at once; a new copy beyond it is dropped and counted.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Speak HTTP/2 to it: offered by ALPN over TLS, with prior knowledge (h2c) over plaintext.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub http2: bool,
    /// TLS settings for an `https://` url (verification is on without them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTls>,
}

/// Which requests are mirrored.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorConfig {
    /// Share of eligible requests copied to the shadow.
    #[serde(default)]
    pub percent: Percent,
    /// Consistent sampling key (`header:NAME`, `cookie:NAME`); absent means random per request.
    #[serde(default)]
    pub key: SampleKey,
    /// Methods that are mirrored on every route (default: the safe ones).
    #[serde(default = "crate::units::read_methods")]
    pub methods: Vec<Method>,
    /// Request bodies larger than this are not mirrored.
    #[serde(default = "default_max_request_body")]
    pub max_body_bytes: Bytes,
    /// Most bytes the mirror holds at once: captured answers and request bodies waiting for
    /// their pair, pairs waiting to be compared, and kept examples. Past it, pairs are dropped
    /// (`twinpeak_compared_total{result="dropped"}`) and examples are not kept.
    #[serde(default = "default_max_buffered")]
    pub max_buffered_bytes: Bytes,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        MirrorConfig {
            percent: Percent::default(),
            key: SampleKey::default(),
            methods: crate::units::read_methods(),
            max_body_bytes: default_max_request_body(),
            max_buffered_bytes: default_max_buffered(),
        }
    }
}

/// How much of each answer is captured for comparison.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureConfig {
    /// Bytes of each response body kept; past it the capture is marked truncated.
    #[serde(default = "default_capture_body")]
    pub max_body_bytes: Bytes,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            max_body_bytes: default_capture_body(),
        }
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9901))
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(5))
}
fn default_shadow_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(2))
}
fn default_max_in_flight() -> usize {
    256
}
fn default_max_request_body() -> Bytes {
    Bytes(1 << 20)
}
fn default_max_buffered() -> Bytes {
    Bytes(64 << 20)
}
fn default_capture_body() -> Bytes {
    Bytes(256 << 10)
}

/// A configuration that could not be used, with where and why; shown as
/// `file:line:col: key: message`.
pub type ConfigError = twinpeak_core::YamlFileError;

/// The key a `state:` error is about: the one it names, else the section.
fn state_key(error: &crate::state::StateError) -> String {
    let text = error.to_string();
    text.split(|c: char| c == ':' || c.is_whitespace())
        .find(|word| word.starts_with("state."))
        .unwrap_or("state")
        .trim_end_matches(',')
        .to_string()
}

/// A configuration together with where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The parsed configuration.
    pub config: Config,
    /// The file it was read from.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, hex; records name the configuration by it.
    pub sha256: String,
}

impl LoadedConfig {
    /// Where the state is kept, in words (`sqlite /etc/tp/proxy.state.sqlite3`,
    /// `postgres twinpeak@db:5432/twinpeak`, or `off`).
    pub fn state_location(&self) -> String {
        match self.config.state.location(&self.path) {
            Ok(Some(location)) => location.describe(),
            Ok(None) => "off (nothing is kept across restarts)".into(),
            Err(e) => format!("unusable: {e}"),
        }
    }
}

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::whole_file(path, format!("cannot read the file: {e}")))?;
        let config = Config::parse(&text, path)?;
        Ok(LoadedConfig {
            config,
            path: path.to_path_buf(),
            sha256: hex_sha256(text.as_bytes()),
        })
    }

    /// Parses and validates configuration text; `file` is used in error messages.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = yaml_error::deserialize(file, text)?;
        let located =
            |InvalidKey { key, message }| ConfigError::at_key(file, text, Some(key), None, message);
        if let Some(canary) = config.canary.as_mut() {
            canary.resolve(config.shadow.as_ref().map(|s| &s.url));
            // A candidate that is the shadow is reached the way the shadow is, unless told.
            if let Some(shadow) = &config.shadow {
                if canary.upstream.as_ref() == Some(&shadow.url) && canary.tls.is_none() {
                    canary.http2 |= shadow.http2;
                    canary.tls = shadow.tls.clone();
                }
            }
        }
        config.validate().map_err(located)?;
        config.read_secrets().map_err(located)?;
        if let Err(e) = config.state.location(file) {
            return Err(ConfigError::at_key(
                file,
                text,
                Some(state_key(&e)),
                None,
                e.to_string(),
            ));
        }
        Ok(config)
    }

    /// Reads the secrets the configuration names (from their files or the environment).
    fn read_secrets(&mut self) -> Result<(), InvalidKey> {
        self.admin.token.resolve("admin.token")?;
        self.notify.resolve()?;
        if let Some(canary) = self.canary.as_mut() {
            canary.force.secret.resolve("canary.force.secret")?;
        }
        Ok(())
    }

    /// Checks that hold across keys; returns the key at fault and why.
    fn validate(&self) -> Result<(), InvalidKey> {
        if self.threads == 0 {
            return Err(InvalidKey::new("threads", "must be at least 1"));
        }
        if !self.admin.listen.ip().is_loopback() && !self.admin.token.is_set() {
            return Err(InvalidKey::new(
                "admin.listen",
                format!(
                    "{} is not a loopback address, so the admin API needs a token: add \
                     admin.token: {{file: PATH}} or {{env: NAME}}",
                    self.admin.listen
                ),
            ));
        }
        let listen = self.listen_addresses();
        if listen.contains(&self.admin.listen) {
            return Err(InvalidKey::new(
                "admin.listen",
                format!("{} is also a proxy listen address", self.admin.listen),
            ));
        }
        crate::listen::check(&self.listen)?;
        self.check_upstream_tls()?;
        if let Some(shadow) = &self.shadow {
            if shadow.max_in_flight == 0 {
                return Err(InvalidKey::new(
                    "shadow.max_in_flight",
                    "must be at least 1 (set mirror.percent: 0 to stop mirroring)",
                ));
            }
        } else if self.mirror.percent.value() > 0.0 {
            return Err(InvalidKey::new(
                "mirror.percent",
                "is above 0 but no shadow is configured (add shadow: { url: ... })",
            ));
        }
        if self.mirror.max_buffered_bytes.0 < self.capture.max_body_bytes.0 {
            return Err(InvalidKey::new(
                "mirror.max_buffered_bytes",
                format!(
                    "must hold at least one captured answer (capture.max_body_bytes, {} bytes)",
                    self.capture.max_body_bytes.0
                ),
            ));
        }
        self.diff.validate()?;
        if let Some(canary) = &self.canary {
            canary.validate()?;
        }
        if let Some(metrics) = &self.metrics {
            if listen.contains(&metrics.listen) || metrics.listen == self.admin.listen {
                return Err(InvalidKey::new(
                    "metrics.listen",
                    format!("{} is also a proxy or admin listen address", metrics.listen),
                ));
            }
        }
        if self.shutdown.drain.0 > MAX_DRAIN {
            return Err(InvalidKey::new(
                "shutdown.drain",
                format!("{} is longer than the 10m allowed", self.shutdown.drain),
            ));
        }
        crate::upgrade::validate(self.shutdown.upgrade_sock.as_deref())?;
        self.notify.validate()?;
        if let Some(record) = &self.record {
            record.validate(&self.routes)?;
        }
        if let Some(access_log) = &self.access_log {
            access_log.validate()?;
        }
        crate::routes::check(&self.routes)
    }

    /// The addresses the proxy listens on, in order.
    pub fn listen_addresses(&self) -> Vec<SocketAddr> {
        self.listen.iter().map(|l| l.address).collect()
    }

    /// Every address the proxy listens on, with the key that sets it: `listen`, `admin.listen`
    /// and `metrics.listen`.
    pub(crate) fn bound_addresses(&self) -> Vec<(&'static str, SocketAddr)> {
        self.listen
            .iter()
            .map(|l| ("listen", l.address))
            .chain(std::iter::once(("admin.listen", self.admin.listen)))
            .chain(self.metrics.iter().map(|m| ("metrics.listen", m.listen)))
            .collect()
    }

    /// Reads the files every upstream's `tls:` names, so that a missing or unusable one is
    /// reported now, at its line.
    fn check_upstream_tls(&self) -> Result<(), InvalidKey> {
        let upstreams = [
            Some(("primary.tls", &self.primary.url, self.primary.tls.as_ref())),
            self.shadow
                .as_ref()
                .map(|s| ("shadow.tls", &s.url, s.tls.as_ref())),
            self.canary.as_ref().and_then(|c| {
                c.upstream
                    .as_ref()
                    .map(|url| ("canary.tls", url, c.tls.as_ref()))
            }),
        ];
        for (key, url, tls) in upstreams.into_iter().flatten() {
            if let Some(tls) = tls {
                tls.load(key, url.tls)?;
            }
        }
        Ok(())
    }

    /// The configuration with every default filled in, as YAML.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("a configuration always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("proxy.yaml"))
    }

    const MINIMAL: &str = "listen: 127.0.0.1:8080\nprimary: { url: http://127.0.0.1:9001 }\n";

    #[test]
    fn minimal_config_fills_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.listen.len(), 1);
        assert_eq!(c.admin.listen.port(), 9901);
        assert_eq!(c.mirror.percent.value(), 0.0);
        assert_eq!(c.mirror.key, SampleKey::Random);
        assert!(c.mirror.methods.iter().all(Method::is_safe));
        assert_eq!(c.mirror.max_body_bytes.0, 1 << 20);
        assert!(c.shadow.is_none());
        let again = parse(&c.to_yaml()).unwrap();
        assert_eq!(again.to_yaml(), c.to_yaml());
    }

    #[test]
    fn full_example_parses() {
        let c = parse(
            r#"
listen: [127.0.0.1:8080, "[::1]:8080"]
threads: 2
admin: { listen: 127.0.0.1:9901 }
primary: { url: http://127.0.0.1:9001 }
shadow:  { url: http://127.0.0.1:9002, timeout: 2s, max_in_flight: 256 }
mirror:
  percent: 30
  key: header:x-user-id
  methods: [GET, HEAD]
  max_body_bytes: 1MiB
routes: ["/bookings/{id}", {path: /bookings, mirror_methods: [POST]}]
"#,
        )
        .unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.mirror.percent.value(), 30.0);
        assert_eq!(c.routes.len(), 2);
        assert_eq!(c.routes[1].extra_mirror_methods()[0].to_string(), "POST");
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = parse(&format!("{MINIMAL}mirror:\n  percnt: 5\n")).unwrap_err();
        assert_eq!(e.line, Some(4));
        assert_eq!(e.key.as_deref(), Some("mirror.percnt"));
        assert!(e.message.contains("unknown field `percnt`"), "{e}");
        assert!(e.to_string().starts_with("proxy.yaml:4:"), "{e}");
    }

    #[test]
    fn bad_value_names_line_and_key() {
        let e = parse(&format!(
            "{MINIMAL}shadow: {{ url: http://127.0.0.1:9002 }}\nmirror:\n  percent: 130\n"
        ))
        .unwrap_err();
        assert_eq!(e.line, Some(5));
        assert_eq!(e.key.as_deref(), Some("mirror.percent"));
        assert_eq!(e.message, "must be a number from 0 to 100, got 130");
    }

    #[test]
    fn cross_key_errors_find_their_line() {
        let e = parse(&format!("{MINIMAL}mirror:\n  percent: 10\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("mirror.percent"));
        assert_eq!(e.line, Some(4));
        assert!(e.message.contains("no shadow"), "{e}");
    }

    #[test]
    fn missing_required_key_is_named() {
        let e = parse("listen: 127.0.0.1:8080\n").unwrap_err();
        assert!(e.message.contains("primary"), "{e}");
    }

    #[test]
    fn bad_listen_address_is_explained() {
        let e = parse("listen: localhost\nprimary: { url: http://127.0.0.1:9001 }\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("listen"));
        assert_eq!(e.line, Some(1));
    }

    #[test]
    fn a_non_loopback_admin_needs_a_token() {
        let open = "listen: 127.0.0.1:8080\nadmin: { listen: 0.0.0.0:9901 }\nprimary: { url: http://127.0.0.1:9001 }\n";
        let e = parse(open).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("admin.listen"));
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("needs a token"), "{e}");
        std::env::set_var("TWINPEAK_TEST_ADMIN_TOKEN", "0123456789abcdef-token");
        let with_token = open.replace(
            "0.0.0.0:9901 }",
            "0.0.0.0:9901, token: {env: TWINPEAK_TEST_ADMIN_TOKEN} }",
        );
        let c = parse(&with_token).unwrap();
        assert!(c
            .admin
            .token
            .secret()
            .unwrap()
            .matches(b"0123456789abcdef-token"));
        // The token itself is never printed, only where it comes from.
        assert!(!c.to_yaml().contains("0123456789abcdef"), "{}", c.to_yaml());
        assert!(c.to_yaml().contains("env: TWINPEAK_TEST_ADMIN_TOKEN"));
        let unset = with_token.replace("TWINPEAK_TEST_ADMIN_TOKEN", "TWINPEAK_TEST_UNSET_TOKEN");
        let e = parse(&unset).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("admin.token.env"));
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn canary_errors_name_their_key_and_line() {
        let e = parse(&format!("{MINIMAL}canary:\n  weight: 5\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("canary.upstream"));
        assert_eq!(e.line, Some(3));
        let e = parse(&format!(
            "{MINIMAL}shadow: {{ url: http://127.0.0.1:9002 }}\ncanary:\n  ramp:\n    - {{weight: 1, hold: 1m}}\n    - {{weight: 0.5, hold: 1m}}\n    - {{weight: 100}}\n"
        ))
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("canary.ramp[1].weight"));
        assert_eq!(e.line, Some(7));
        let e = parse(&format!(
            "{MINIMAL}shadow: {{ url: http://127.0.0.1:9002 }}\ncanary:\n  judge:\n    interval: soon\n"
        ))
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("canary.judge.interval"));
        assert_eq!(e.line, Some(6));
    }

    #[test]
    fn state_is_kept_beside_the_file_unless_off_and_its_errors_name_the_key() {
        let c = parse(MINIMAL).unwrap();
        let loaded = LoadedConfig {
            config: c,
            path: PathBuf::from("/etc/tp/proxy.yaml"),
            sha256: String::new(),
        };
        assert_eq!(
            loaded.state_location(),
            "sqlite /etc/tp/proxy.state.sqlite3"
        );
        let off = parse(&format!("{MINIMAL}state: {{off: true}}\n")).unwrap();
        assert!(off.state.off);
        let e = parse(&format!(
            "{MINIMAL}state:\n  postgres: postgresql://tp:pw@db/tp\n"
        ))
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("state.postgres.url"));
        assert_eq!(e.line, Some(4));
        assert!(!e.to_string().contains("pw@"), "{e}");
    }

    #[test]
    fn recording_fills_its_defaults_and_its_errors_name_file_line_and_key() {
        let c = parse(&format!("{MINIMAL}record: {{dir: /var/tp/rec}}\n")).unwrap();
        let record = c.record.as_ref().unwrap();
        assert_eq!(record.percent.value(), 100.0);
        assert_eq!(record.key, SampleKey::Random);
        assert!(record.routes.is_none() && record.methods.is_none() && record.answers);
        assert_eq!(record.max_body_bytes.0, 64 << 10);
        assert_eq!(record.max_response_bytes.0, 64 << 10);
        assert_eq!(record.max_file_bytes.0, 64 << 20);
        assert_eq!(record.max_total_bytes.0, 1 << 30);
        assert_eq!((record.queue, record.max_queued_bytes.0), (4096, 16 << 20));
        let yaml = c.to_yaml();
        assert!(yaml.contains("max_total_bytes: 1.0 GiB"), "{yaml}");
        assert_eq!(parse(&yaml).unwrap().to_yaml(), yaml);
        for (section, line, key, says) in [
            (
                "record:\n  percent: 5\n",
                3,
                "record",
                "missing field `dir`",
            ),
            (
                "record:\n  dir: /r\n  percent: 101\n",
                5,
                "record.percent",
                "0 to 100",
            ),
            (
                "record:\n  dir: /r\n  max_file_bytes: 1KiB\n",
                5,
                "record.max_file_bytes",
                "at least",
            ),
            (
                "record:\n  dir: /r\n  routes: [/nowhere]\n",
                5,
                "record.routes",
                "\"/nowhere\"",
            ),
            (
                "record:\n  dir: /r\n  key: query:x\n",
                5,
                "record.key",
                "header:NAME",
            ),
            (
                "record:\n  dir: /r\n  queue: 0\n",
                5,
                "record.queue",
                "at least 1",
            ),
            (
                "record:\n  dir: /r\n  max_total_bytes: 1MiB\n",
                5,
                "record.max_total_bytes",
                "two segments",
            ),
        ] {
            let e = parse(&format!("{MINIMAL}{section}")).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{e}");
            assert_eq!(e.line, Some(line), "{e}");
            assert!(e.message.contains(says), "{e}");
            assert!(
                e.to_string().starts_with(&format!("proxy.yaml:{line}:")),
                "{e}"
            );
        }
        let routed = parse(&format!(
            "{MINIMAL}routes: [\"/bookings/{{id}}\"]\nrecord: {{dir: /r, routes: [\"/bookings/{{id}}\", other], methods: [GET, POST]}}\n"
        ))
        .unwrap();
        assert_eq!(routed.record.unwrap().methods.unwrap().len(), 2);
    }

    #[test]
    fn listener_and_upstream_tls_errors_name_file_line_and_key() {
        let e = parse(
            "listen:\n  - 127.0.0.1:8080\n  - address: 127.0.0.1:8443\n    tls:\n      cert: /nonexistent/c.pem\n      key: /nonexistent/k.pem\nprimary: { url: http://127.0.0.1:9001 }\n",
        )
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("listen[1].tls.cert"), "{e}");
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.contains("/nonexistent/c.pem"), "{e}");
        let e = parse(
            "listen: {address: 127.0.0.1:8443, tls: {}}\nprimary: { url: http://127.0.0.1:9001 }\n",
        )
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("listen[0].tls"), "{e}");
        assert_eq!(e.line, Some(1), "{e}");
        let e = parse("listen: [{address: 127.0.0.1:8443, tls: {crt: a}}]\nprimary: { url: http://127.0.0.1:9001 }\n")
            .unwrap_err();
        assert!(e.message.contains("unknown field `crt`"), "{e}");
        let e = parse(
            "listen: 127.0.0.1:8080\nprimary:\n  url: http://127.0.0.1:9001\n  tls: {ca: /x.pem}\n",
        )
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("primary.tls"), "{e}");
        assert!(e.message.contains("https://"), "{e}");
        let e = parse(
            "listen: 127.0.0.1:8080\nprimary:\n  url: https://127.0.0.1:9001\n  http2: true\n  tls:\n    ca: /nonexistent/ca.pem\n",
        )
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("primary.tls.ca"), "{e}");
        assert_eq!(e.line, Some(6), "{e}");
        let ok = parse("listen: [127.0.0.1:8080, {address: 127.0.0.1:8081, http2: true}]\nprimary: { url: https://127.0.0.1:9001, http2: true, tls: {sni: api.test} }\n").unwrap();
        assert!(ok.primary.http2 && ok.listen[1].http2());
        assert_eq!(parse(&ok.to_yaml()).unwrap().to_yaml(), ok.to_yaml());
    }

    #[test]
    fn a_canary_takes_the_shadow_as_its_upstream() {
        let c = parse(&format!(
            "{MINIMAL}shadow: {{ url: http://127.0.0.1:9002 }}\ncanary: {{ weight: 2.5, sticky: header:x-user-id }}\n"
        ))
        .unwrap();
        let canary = c.canary.as_ref().unwrap();
        assert_eq!(
            canary.upstream.as_ref().unwrap().to_string(),
            "http://127.0.0.1:9002"
        );
        assert_eq!(canary.weight.value(), 2.5);
        // Printed with every default filled in, it reads back the same.
        let again = parse(&c.to_yaml()).unwrap();
        assert_eq!(again.to_yaml(), c.to_yaml());
        assert!(c.to_yaml().contains("upstream: http://127.0.0.1:9002"));
    }
}
