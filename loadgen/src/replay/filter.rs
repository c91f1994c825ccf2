//! Which recorded requests a replay sends: by route template, method and time range.

use std::time::Duration;

use twinpeak_core::recording::RecordedExchange;
use twinpeak_core::timestamp::parse_rfc3339;
use twinpeak_core::units::InvalidValue;

/// An end of the time range: an instant, or an offset from the recording's first request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// Microseconds since the Unix epoch.
    At(u64),
    /// From the first recorded request.
    After(Duration),
}

impl Bound {
    /// `2026-12-24T18:00:00Z` or `+5m`.
    fn parse(flag: &str, text: &str) -> Result<Bound, InvalidValue> {
        if let Some(offset) = text.trim().strip_prefix('+') {
            return humantime::parse_duration(offset.trim())
                .map(Bound::After)
                .map_err(|e| InvalidValue(format!("{flag} {text:?}: {e}")));
        }
        let at = parse_rfc3339(text.trim()).ok_or_else(|| {
            InvalidValue(format!(
                "{flag} {text:?}: give an RFC 3339 time (2026-12-24T18:00:00Z) or an offset from \
                 the recording's start (+5m)"
            ))
        })?;
        let micros = at
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| InvalidValue(format!("{flag} {text:?}: before 1970")))?
            .as_micros();
        Ok(Bound::At(u64::try_from(micros).unwrap_or(u64::MAX)))
    }

    /// Microseconds since the epoch, for a recording that starts at `start_us`.
    fn resolve(self, start_us: u64) -> u64 {
        match self {
            Bound::At(at) => at,
            Bound::After(offset) => {
                start_us.saturating_add(u64::try_from(offset.as_micros()).unwrap_or(u64::MAX))
            }
        }
    }
}

/// The requests a replay keeps: every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Route templates kept (any, when empty).
    routes: Vec<String>,
    /// Methods kept, upper case (any, when empty).
    methods: Vec<String>,
    /// Requests arrived at or after this.
    from: Option<Bound>,
    /// Requests arrived before this.
    until: Option<Bound>,
}

impl Filter {
    /// The filter of `--route`, `--method`, `--from` and `--until`.
    pub fn new(
        routes: &[String],
        methods: &[String],
        from: Option<&str>,
        until: Option<&str>,
    ) -> Result<Filter, InvalidValue> {
        for method in methods {
            http::Method::from_bytes(method.trim().as_bytes())
                .map_err(|_| InvalidValue(format!("--method {method:?} is not a method")))?;
        }
        Ok(Filter {
            routes: routes.iter().map(|r| r.trim().to_owned()).collect(),
            methods: methods
                .iter()
                .map(|m| m.trim().to_ascii_uppercase())
                .collect(),
            from: from.map(|t| Bound::parse("--from", t)).transpose()?,
            until: until.map(|t| Bound::parse("--until", t)).transpose()?,
        })
    }

    /// Whether a time range is asked for (which a corpus, without timing, cannot honour).
    pub fn has_time_range(&self) -> bool {
        self.from.is_some() || self.until.is_some()
    }

    /// Whether the filter keeps a request of `route` and `method`, whatever its time.
    pub fn keeps(&self, route: &str, method: &str) -> bool {
        (self.routes.is_empty() || self.routes.iter().any(|r| r == route))
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
    }

    /// The records kept, in order; time offsets count from the first record of all.
    pub fn apply(&self, records: Vec<RecordedExchange>) -> Vec<RecordedExchange> {
        let start = records.iter().map(|r| r.at_us).min().unwrap_or_default();
        let from = self.from.map_or(0, |b| b.resolve(start));
        let until = self.until.map_or(u64::MAX, |b| b.resolve(start));
        records
            .into_iter()
            .filter(|r| {
                (from..until).contains(&r.at_us)
                    && self.keeps(&r.route, &r.method.to_ascii_uppercase())
            })
            .collect()
    }

    /// The conditions, in words (`all` when none).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.routes.is_empty() {
            parts.push(format!("route {}", self.routes.join(" or ")));
        }
        if !self.methods.is_empty() {
            parts.push(format!("method {}", self.methods.join(" or ")));
        }
        let bound = |b: &Bound| match b {
            Bound::At(us) => twinpeak_core::timestamp::rfc3339(
                std::time::UNIX_EPOCH + Duration::from_micros(*us),
            ),
            Bound::After(d) => format!("+{}", humantime::format_duration(*d)),
        };
        if let Some(from) = &self.from {
            parts.push(format!("from {}", bound(from)));
        }
        if let Some(until) = &self.until {
            parts.push(format!("until {}", bound(until)));
        }
        if parts.is_empty() {
            "all".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::recording::tests::exchange;

    const START: u64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z

    #[test]
    fn routes_methods_and_times_all_hold() {
        let records = vec![
            exchange(START, "GET", "/a"),
            exchange(START + 60_000_000, "POST", "/a"),
            exchange(START + 120_000_000, "get", "/b"),
            exchange(START + 400_000_000, "GET", "/a"),
        ];
        let paths = |f: &Filter| -> Vec<String> {
            f.apply(records.clone())
                .iter()
                .map(|r| format!("{} {}", r.method, r.path))
                .collect()
        };
        assert_eq!(paths(&Filter::default()).len(), 4);
        let get_a = Filter::new(&["/a".into()], &["get".into()], None, None).unwrap();
        assert_eq!(paths(&get_a), ["GET /a", "GET /a"]);
        let window = Filter::new(&[], &[], Some("+1m"), Some("2026-01-01T00:05:00Z")).unwrap();
        assert_eq!(paths(&window), ["POST /a", "get /b"]);
        assert_eq!(
            window.describe(),
            "from +1m, until 2026-01-01T00:05:00.000Z".to_string()
        );
        assert!(Filter::new(&[], &[], Some("yesterday"), None)
            .unwrap_err()
            .to_string()
            .contains("--from \"yesterday\""));
        assert!(Filter::new(&[], &["G ET".into()], None, None).is_err());
    }
}
