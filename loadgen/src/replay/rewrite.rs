//! What a replay changes in the recorded requests so they can be aimed at another copy of the
//! system: the Host header, headers set or removed, paths rewritten by regular expressions.
//! Recorded credentials are never sent as recorded.

use regex::Regex;
use twinpeak_core::units::InvalidValue;

use super::ReplayEntry;

/// Headers that carry a client's credentials: dropped from every recorded request (they are
/// recorded as `[redacted]` anyway); `--auth` supplies fresh ones.
pub const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// `REGEX=>REPLACEMENT`, applied to the path and query.
#[derive(Debug, Clone)]
struct PathRewrite {
    pattern: Regex,
    replacement: String,
}

/// The rewrites of one replay, applied to every request in this order: credentials dropped,
/// headers removed, headers set, Host set, path rewritten.
#[derive(Debug, Clone, Default)]
pub struct Rewrite {
    /// `--host`: the Host header sent.
    host: Option<String>,
    /// `--set-header`: (lower-case name, value), replacing any recorded value.
    set: Vec<(String, String)>,
    /// `--remove-header`: lower-case names.
    remove: Vec<String>,
    /// `--rewrite-path`, in order.
    paths: Vec<PathRewrite>,
}

/// `Name: value` as a header (name in lower case), or why it is not one.
pub fn parse_header_line(flag: &str, line: &str) -> Result<(String, String), InvalidValue> {
    let bad = |why: &str| InvalidValue(format!("{flag} {line:?}: {why}"));
    let (name, value) = line
        .split_once(':')
        .ok_or_else(|| bad("give `Name: value`"))?;
    let name = http::HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| bad("not a header name"))?;
    let value = value.trim();
    http::HeaderValue::from_str(value).map_err(|_| bad("not a header value"))?;
    Ok((name.as_str().to_owned(), value.to_owned()))
}

impl Rewrite {
    /// The rewrites of `--host`, `--set-header`, `--remove-header` and `--rewrite-path`.
    pub fn new(
        host: Option<&str>,
        set: &[String],
        remove: &[String],
        paths: &[String],
    ) -> Result<Rewrite, InvalidValue> {
        if let Some(host) = host {
            http::uri::Authority::try_from(host.trim())
                .map_err(|_| InvalidValue(format!("--host {host:?} is not a host name")))?;
        }
        let set = set
            .iter()
            .map(|line| parse_header_line("--set-header", line))
            .collect::<Result<_, _>>()?;
        let remove = remove
            .iter()
            .map(|name| {
                http::HeaderName::from_bytes(name.trim().as_bytes())
                    .map(|n| n.as_str().to_owned())
                    .map_err(|_| {
                        InvalidValue(format!("--remove-header {name:?}: not a header name"))
                    })
            })
            .collect::<Result<_, _>>()?;
        let paths = paths
            .iter()
            .map(|rule| {
                let bad = |why: String| InvalidValue(format!("--rewrite-path {rule:?}: {why}"));
                let (pattern, replacement) = rule
                    .split_once("=>")
                    .ok_or_else(|| bad("give `REGEX=>REPLACEMENT`".into()))?;
                let pattern = Regex::new(pattern).map_err(|e| bad(e.to_string()))?;
                Ok(PathRewrite {
                    pattern,
                    replacement: replacement.to_owned(),
                })
            })
            .collect::<Result<_, InvalidValue>>()?;
        Ok(Rewrite {
            host: host.map(|h| h.trim().to_owned()),
            set,
            remove,
            paths,
        })
    }

    /// `entry` as it is to be sent, or why a path rewrite made something that is not a path.
    pub fn apply(&self, mut entry: ReplayEntry) -> Result<ReplayEntry, InvalidValue> {
        entry.headers.retain(|(name, _)| {
            let name = name.to_ascii_lowercase();
            !CREDENTIAL_HEADERS.contains(&name.as_str()) && !self.remove.contains(&name)
        });
        let overridden = |name: &str| {
            self.set.iter().any(|(set, _)| set == name) || (self.host.is_some() && name == "host")
        };
        entry
            .headers
            .retain(|(name, _)| !overridden(&name.to_ascii_lowercase()));
        entry.headers.extend(self.set.iter().cloned());
        if let Some(host) = &self.host {
            entry.headers.push(("host".to_owned(), host.clone()));
        }
        for rewrite in &self.paths {
            let path = rewrite
                .pattern
                .replace_all(&entry.path, rewrite.replacement.as_str());
            entry.path = path.into_owned();
        }
        if !entry.path.starts_with('/') || entry.path.parse::<http::Uri>().is_err() {
            return Err(InvalidValue(format!(
                "rewritten path {:?} is not a path",
                entry.path
            )));
        }
        Ok(entry)
    }

    /// The rewrites, in words (`none` when there are none).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(host) = &self.host {
            parts.push(format!("Host {host}"));
        }
        for (name, _) in &self.set {
            parts.push(format!("set {name}"));
        }
        for name in &self.remove {
            parts.push(format!("remove {name}"));
        }
        for rewrite in &self.paths {
            parts.push(format!(
                "path {}=>{}",
                rewrite.pattern.as_str(),
                rewrite.replacement
            ));
        }
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, headers: &[(&str, &str)]) -> ReplayEntry {
        ReplayEntry {
            method: http::Method::GET,
            path: path.to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: Vec::new(),
            route: String::new(),
            recorded: None,
        }
    }

    #[test]
    fn credentials_go_and_rewrites_apply_in_order() {
        let rewrite = Rewrite::new(
            Some("staging.example"),
            &["X-Env: staging".into()],
            &["X-Trace".into()],
            &[r"^/v1/(\w+)=>/api/$1".into(), "api=>v2".into()],
        )
        .unwrap();
        let sent = rewrite
            .apply(entry(
                "/v1/bookings/7?x=1",
                &[
                    ("Authorization", "[redacted]"),
                    ("Cookie", "[redacted]"),
                    ("proxy-authorization", "Basic eA=="),
                    ("x-trace", "1"),
                    ("x-env", "prod"),
                    ("accept", "*/*"),
                ],
            ))
            .unwrap();
        assert_eq!(sent.path, "/v2/bookings/7?x=1");
        let headers: Vec<(&str, &str)> = sent
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            headers,
            [
                ("accept", "*/*"),
                ("x-env", "staging"),
                ("host", "staging.example")
            ]
        );
        assert!(rewrite
            .describe()
            .starts_with("Host staging.example, set x-env"));
        let broken = Rewrite::new(None, &[], &[], &["^/=>x".into()]).unwrap();
        assert!(broken.apply(entry("/a", &[])).is_err());
    }

    #[test]
    fn bad_rewrites_are_refused_with_the_flag() {
        let err = |r: Result<Rewrite, InvalidValue>| r.unwrap_err().to_string();
        assert!(err(Rewrite::new(None, &["nocolon".into()], &[], &[])).starts_with("--set-header"));
        assert!(err(Rewrite::new(None, &[], &["a b".into()], &[])).starts_with("--remove-header"));
        assert!(err(Rewrite::new(None, &[], &[], &["(=>x".into()])).starts_with("--rewrite-path"));
        assert!(err(Rewrite::new(None, &[], &[], &["a->b".into()])).contains("REGEX=>"));
        assert!(err(Rewrite::new(Some("a b"), &[], &[], &[])).starts_with("--host"));
    }
}
