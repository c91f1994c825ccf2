//! The force header (`x-twinpeak-canary: always|never`) lets a tester pick a side, but only
//! where the operator allows it: from configured source networks, or with the configured
//! secret, for configured methods, and never to send traffic to a candidate that is at weight
//! 0 or rolled back unless the operator said so. Anything else a client sends is ignored.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName};

use super::config::ForceConfig;
use crate::error::{SetupError, SetupProblem};
use crate::labels::Side;
use crate::secret::Secret;
use crate::units::Method;

/// The force header's rules, ready for the request path.
#[derive(Debug)]
pub struct ForcePolicy {
    header: HeaderName,
    secret_header: HeaderName,
    secret: Option<Secret>,
    from: Vec<ipnet::IpNet>,
    methods: Vec<Method>,
    while_off: bool,
}

impl ForcePolicy {
    /// The policy of a (resolved) configuration.
    pub fn new(config: &ForceConfig) -> Result<Self, SetupError> {
        let name = |key: &'static str, text: &str| {
            HeaderName::from_bytes(text.as_bytes()).map_err(|_| {
                SetupError::new(
                    key,
                    SetupProblem::HeaderName {
                        name: text.to_string(),
                    },
                )
            })
        };
        Ok(ForcePolicy {
            header: name("canary.force.header", &config.header)?,
            secret_header: name("canary.force.secret_header", &config.secret_header)?,
            secret: config.secret.secret().cloned(),
            from: config.from.iter().map(|n| n.0).collect(),
            methods: config.methods.clone(),
            while_off: config.while_off,
        })
    }

    /// Whether anyone may force at all: some source network or a secret is configured.
    #[cfg(test)]
    pub fn enabled(&self) -> bool {
        self.secret.is_some() || !self.from.is_empty()
    }

    /// The headers a client may send for this policy; they are never passed upstream.
    pub fn headers(&self) -> [&HeaderName; 2] {
        [&self.header, &self.secret_header]
    }

    /// The side a request forces, when it asks for one and is allowed to: `candidate_off`
    /// says whether the candidate is at weight 0 or rolled back.
    pub fn forced_side(
        &self,
        method: &http::Method,
        headers: &HeaderMap,
        client: Option<IpAddr>,
        candidate_off: bool,
    ) -> Option<Side> {
        let value = headers.get(&self.header)?.as_bytes().trim_ascii();
        let side = if value.eq_ignore_ascii_case(b"always") {
            Side::Candidate
        } else if value.eq_ignore_ascii_case(b"never") {
            Side::Primary
        } else {
            return None;
        };
        if !self.allowed(method, headers, client) {
            return None;
        }
        if side == Side::Candidate && candidate_off && !self.while_off {
            return None;
        }
        Some(side)
    }

    fn allowed(&self, method: &http::Method, headers: &HeaderMap, client: Option<IpAddr>) -> bool {
        if !self.methods.iter().any(|m| m.0 == *method) {
            return false;
        }
        let from_source = client.is_some_and(|ip| {
            let ip = canonical(ip);
            self.from.iter().any(|net| net.contains(&ip))
        });
        let with_secret = self.secret.as_ref().is_some_and(|secret| {
            headers
                .get(&self.secret_header)
                .is_some_and(|v| secret.matches(v.as_bytes().trim_ascii()))
        });
        from_source || with_secret
    }
}

/// An IPv4 client seen through an IPv6 socket (`::ffff:10.0.0.1`) as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretSource;

    fn policy(yaml: &str) -> ForcePolicy {
        let config: ForceConfig = serde_yaml::from_str(yaml).unwrap();
        ForcePolicy::new(&config).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                )
            })
            .collect()
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    const GET: http::Method = http::Method::GET;

    #[test]
    fn nobody_may_force_by_default() {
        let p = policy("{}");
        assert!(!p.enabled());
        let always = headers(&[("x-twinpeak-canary", "always")]);
        assert_eq!(p.forced_side(&GET, &always, ip("127.0.0.1"), false), None);
    }

    #[test]
    fn configured_sources_may_force_safe_methods() {
        let p = policy("{from: [10.0.0.0/8, 127.0.0.1]}");
        let always = headers(&[("x-twinpeak-canary", "Always")]);
        let never = headers(&[("x-twinpeak-canary", "never")]);
        assert_eq!(
            p.forced_side(&GET, &always, ip("10.1.2.3"), false),
            Some(Side::Candidate)
        );
        assert_eq!(
            p.forced_side(&GET, &always, ip("::ffff:127.0.0.1"), false),
            Some(Side::Candidate)
        );
        assert_eq!(
            p.forced_side(&GET, &never, ip("127.0.0.1"), false),
            Some(Side::Primary)
        );
        assert_eq!(p.forced_side(&GET, &always, ip("192.0.2.1"), false), None);
        assert_eq!(p.forced_side(&GET, &always, None, false), None);
        let post = http::Method::POST;
        assert_eq!(p.forced_side(&post, &always, ip("10.1.2.3"), false), None);
        let garbage = headers(&[("x-twinpeak-canary", "sometimes")]);
        assert_eq!(p.forced_side(&GET, &garbage, ip("10.1.2.3"), false), None);
    }

    #[test]
    fn a_candidate_that_is_off_is_not_forced_unless_configured() {
        let p = policy("{from: [127.0.0.1]}");
        let always = headers(&[("x-twinpeak-canary", "always")]);
        let never = headers(&[("x-twinpeak-canary", "never")]);
        assert_eq!(p.forced_side(&GET, &always, ip("127.0.0.1"), true), None);
        assert_eq!(
            p.forced_side(&GET, &never, ip("127.0.0.1"), true),
            Some(Side::Primary)
        );
        let p = policy("{from: [127.0.0.1], while_off: true, methods: [GET, POST]}");
        assert_eq!(
            p.forced_side(&GET, &always, ip("127.0.0.1"), true),
            Some(Side::Candidate)
        );
        assert_eq!(
            p.forced_side(&http::Method::POST, &always, ip("127.0.0.1"), false),
            Some(Side::Candidate)
        );
    }

    #[test]
    fn the_secret_lets_any_source_force() {
        std::env::set_var("TWINPEAK_TEST_FORCE_SECRET", "s3cret-s3cret-s3cret");
        let mut config = ForceConfig {
            secret: SecretSource::env("TWINPEAK_TEST_FORCE_SECRET"),
            ..ForceConfig::default()
        };
        config.secret.resolve("canary.force.secret").unwrap();
        let p = ForcePolicy::new(&config).unwrap();
        assert!(p.enabled());
        let right = headers(&[
            ("x-twinpeak-canary", "always"),
            ("x-twinpeak-canary-secret", "s3cret-s3cret-s3cret"),
        ]);
        let wrong = headers(&[
            ("x-twinpeak-canary", "always"),
            ("x-twinpeak-canary-secret", "guess"),
        ]);
        assert_eq!(
            p.forced_side(&GET, &right, ip("192.0.2.1"), false),
            Some(Side::Candidate)
        );
        assert_eq!(p.forced_side(&GET, &wrong, ip("192.0.2.1"), false), None);
        let names: Vec<&str> = p.headers().iter().map(|h| h.as_str()).collect();
        assert_eq!(names, ["x-twinpeak-canary", "x-twinpeak-canary-secret"]);
    }
}
