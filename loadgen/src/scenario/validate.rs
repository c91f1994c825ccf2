//! What a scenario must hold across its keys, checked once it is read: unique names, `after`
//! chains that end, variables that are set before they are read, SLO thresholds in order.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use twinpeak_core::units::HumanDuration;

use super::{RequestSpec, Scenario, Slo};
use crate::template::is_variable_name;

/// The dotted key at fault (`requests[2].after`) and why.
#[derive(Debug)]
pub(super) struct Fault {
    /// The key, as the YAML error names it.
    pub(super) key: String,
    /// What is wrong.
    pub(super) why: String,
}

fn fault(key: String, why: String) -> Fault {
    Fault { key, why }
}

impl Scenario {
    /// Checks that hold across keys; returns the key at fault and why.
    pub(super) fn validate(&self) -> Result<(), Fault> {
        if self.name.trim().is_empty() {
            return Err(fault("name".into(), "must not be empty".into()));
        }
        if self.phases.is_empty() {
            return Err(fault("phases".into(), "needs at least one phase".into()));
        }
        let mut phase_names = BTreeSet::new();
        for (i, phase) in self.phases.iter().enumerate() {
            if phase.name.trim().is_empty() || !phase_names.insert(phase.name.as_str()) {
                let why = format!("{:?} is empty or names an earlier phase", phase.name);
                return Err(fault(format!("phases[{i}].name"), why));
            }
            if phase.slo.is_some() {
                self.slo_for(phase)
                    .check_order(&format!("phases[{i}].slo"))?;
            }
        }
        self.slo.check_order("slo")?;
        self.validate_requests()?;
        self.validate_variables()
    }

    fn validate_requests(&self) -> Result<(), Fault> {
        if self.requests.is_empty() {
            return Err(fault(
                "requests".into(),
                "needs at least one request".into(),
            ));
        }
        if self.requests.iter().all(|r| r.weight == 0) {
            return Err(fault(
                "requests".into(),
                "every weight is 0: at least one request needs a weight above 0".into(),
            ));
        }
        for (i, r) in self.requests.iter().enumerate() {
            let key = |field: &str| format!("requests[{i}].{field}");
            if self.requests[..i].iter().any(|other| other.name == r.name) {
                return Err(fault(
                    key("name"),
                    format!("{:?} names an earlier request", r.name),
                ));
            }
            if r.json.is_some() && r.body.is_some() {
                return Err(fault(
                    key("body"),
                    "set either json or body, not both".into(),
                ));
            }
            if let Some(name) = r
                .headers
                .keys()
                .find(|h| http::HeaderName::try_from(*h).is_err())
            {
                return Err(fault(
                    key(&format!("headers.{name}")),
                    "is not a valid header name".into(),
                ));
            }
            if let Some(statuses) = &r.expect_status {
                if statuses.is_empty() || statuses.iter().any(|s| !(100..=599).contains(s)) {
                    let why = "expected HTTP statuses from 100 to 599, such as 201 or [200, 404]";
                    return Err(fault(key("expect_status"), why.into()));
                }
            }
            if let Some(after) = &r.after {
                if after == &r.name {
                    return Err(fault(
                        key("after"),
                        "a request cannot run after itself".into(),
                    ));
                }
                if !self.requests.iter().any(|other| &other.name == after) {
                    return Err(fault(key("after"), format!("{after:?} names no request")));
                }
                if self.ancestors(r).contains(&r.name.as_str()) {
                    let why = format!(
                        "following `after` from {after:?} leads back to {:?}, so none of \
                         them can ever run",
                        r.name
                    );
                    return Err(fault(key("after"), why));
                }
            }
        }
        Ok(())
    }

    /// Every variable a template reads is a data variable or extracted by a request that runs
    /// before it in the same session.
    fn validate_variables(&self) -> Result<(), Fault> {
        for name in self.data.keys() {
            if !is_variable_name(name) {
                return Err(fault(format!("data.{name}"), not_a_name(name)));
            }
        }
        let mut extracted_by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (i, r) in self.requests.iter().enumerate() {
            for name in r.extract.keys() {
                let key = format!("requests[{i}].extract.{name}");
                if !is_variable_name(name) {
                    return Err(fault(key, not_a_name(name)));
                }
                if self.data.contains_key(name) {
                    return Err(fault(key, format!("{name:?} is also a data variable")));
                }
                extracted_by.entry(name).or_default().push(&r.name);
            }
        }
        for (i, r) in self.requests.iter().enumerate() {
            let before = self.ancestors(r);
            for (field, variables) in r.templates() {
                for variable in variables {
                    if self.data.contains_key(variable) {
                        continue;
                    }
                    let why = match extracted_by.get(variable) {
                        None => format!(
                            "{{{{{variable}}}}} is neither a data variable nor extracted by any \
                             request"
                        ),
                        Some(by) if by.iter().any(|b| before.contains(b)) => continue,
                        Some(by) => format!(
                            "{{{{{variable}}}}} is extracted by {:?}, which this request does not \
                             run after, so it could never be set (add `after: {}`)",
                            by[0], by[0]
                        ),
                    };
                    return Err(fault(format!("requests[{i}].{field}"), why));
                }
            }
        }
        Ok(())
    }
}

impl RequestSpec {
    /// Each template field's key (`path`, `headers.NAME`, `json`, `body`) and the variables it
    /// reads.
    fn templates(&self) -> Vec<(String, Vec<&str>)> {
        let mut out = vec![("path".to_string(), self.path.variables().collect())];
        for (name, value) in &self.headers {
            out.push((format!("headers.{name}"), value.variables().collect()));
        }
        if let Some(json) = &self.json {
            out.push(("json".into(), json.variables()));
        }
        if let Some(body) = &self.body {
            out.push(("body".into(), body.variables().collect()));
        }
        out
    }
}

impl Slo {
    /// Latency thresholds must not fall as the percentile rises (p50 ≤ p95 ≤ p99 ≤ p999 ≤ max);
    /// a phase is checked with the scenario's thresholds it inherits filled in.
    fn check_order(&self, at: &str) -> Result<(), Fault> {
        let set = [
            ("p50", self.p50),
            ("p95", self.p95),
            ("p99", self.p99),
            ("p999", self.p999),
            ("max", self.max),
        ];
        let mut highest: Option<(&str, Duration)> = None;
        for (name, value) in set {
            let Some(value) = value else { continue };
            if let Some((lower, bound)) = highest.filter(|(_, bound)| value < *bound) {
                let why = format!(
                    "is below {lower} ({}); a higher percentile cannot have a lower threshold",
                    HumanDuration(bound)
                );
                return Err(fault(format!("{at}.{name}"), why));
            }
            highest = Some((name, value));
        }
        Ok(())
    }
}

fn not_a_name(name: &str) -> String {
    format!(
        "{name:?} cannot be used as a variable: use letters, digits and _, and none of int, \
         uuid, date, choice"
    )
}
