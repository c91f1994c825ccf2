//! The `routes:` section: each route a template alone, or a template with per-route options.

use serde::{Deserialize, Serialize};

use super::RouteTemplate;
use crate::error::InvalidKey;
use crate::units::Method;

/// The route every path that matches no template is counted under.
pub const OTHER_ROUTE: &str = "other";

/// One route: a template alone, or a template with per-route options.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RouteConfig {
    /// `"/bookings/{id}"`
    Template(RouteTemplate),
    /// `{path: "/bookings", mirror_methods: [POST]}`
    Detailed(DetailedRoute),
}

/// A route with options.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DetailedRoute {
    /// The template.
    pub path: RouteTemplate,
    /// Extra methods mirrored on this route only (the explicit opt-in for writes).
    #[serde(default)]
    pub mirror_methods: Vec<Method>,
    /// `false` keeps the route off the mirror altogether: its answers depend on state only the
    /// primary holds (a booking created there), so the shadow could only differ.
    #[serde(default = "crate::units::on")]
    pub mirror: bool,
}

impl RouteConfig {
    /// The route's template.
    pub fn template(&self) -> &RouteTemplate {
        match self {
            RouteConfig::Template(t) => t,
            RouteConfig::Detailed(d) => &d.path,
        }
    }

    /// Whether the route is mirrored at all.
    pub fn mirrored(&self) -> bool {
        match self {
            RouteConfig::Template(_) => true,
            RouteConfig::Detailed(d) => d.mirror,
        }
    }

    /// Methods mirrored on this route in addition to `mirror.methods`.
    pub fn extra_mirror_methods(&self) -> &[Method] {
        match self {
            RouteConfig::Template(_) => &[],
            RouteConfig::Detailed(d) => &d.mirror_methods,
        }
    }
}

/// Checks the route list as a whole: no template twice, none named like the route of paths
/// that match none.
pub fn check(routes: &[RouteConfig]) -> Result<(), InvalidKey> {
    let mut seen: Vec<&str> = Vec::new();
    for route in routes {
        let t = route.template().as_str();
        if seen.contains(&t) {
            return Err(InvalidKey::new("routes", format!("{t:?} is listed twice")));
        }
        if t == OTHER_ROUTE {
            return Err(InvalidKey::new(
                "routes",
                format!("{t:?} is reserved for paths that match no route"),
            ));
        }
        seen.push(t);
    }
    Ok(())
}
