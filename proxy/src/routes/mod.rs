//! Route templates (`/bookings/{id}`): they name every metric, so label cardinality stays
//! bounded by the configuration, never by the traffic. The templates are fixed while the
//! proxy runs (route ids index every per-route statistic); each route's mirror settings can
//! change live ([`RouteTable::set_mirroring`], on SIGHUP).

mod config;
mod template;

use std::borrow::Cow;
use std::sync::Arc;

use arc_swap::ArcSwap;

pub use config::{check, RouteConfig, OTHER_ROUTE};
pub use template::RouteTemplate;

use crate::units::Method;

/// Index of a route in a [`RouteTable`]; the last index is [`OTHER_ROUTE`].
pub type RouteId = usize;

/// The configured routes, ready for matching.
#[derive(Debug)]
pub struct RouteTable {
    /// Route names by id; the last one is `other`.
    names: Vec<String>,
    /// Each route's mirror settings, replaced whole when they change.
    mirroring: ArcSwap<RouteMirroring>,
    /// Templates in matching order (most specific first) with their ids.
    order: Vec<(RouteTemplate, RouteId)>,
}

impl Clone for RouteTable {
    fn clone(&self) -> Self {
        RouteTable {
            names: self.names.clone(),
            mirroring: ArcSwap::new(self.mirroring.load_full()),
            order: self.order.clone(),
        }
    }
}

/// Each route's mirror settings, by id (`other` last: mirrored, no extra method).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMirroring {
    /// Extra mirrored methods by id.
    extra_methods: Vec<Vec<Method>>,
    /// Whether each route is mirrored at all, by id.
    mirrored: Vec<bool>,
}

impl RouteMirroring {
    fn new(routes: &[RouteConfig]) -> Self {
        let mut extra_methods: Vec<Vec<Method>> = routes
            .iter()
            .map(|r| r.extra_mirror_methods().to_vec())
            .collect();
        let mut mirrored: Vec<bool> = routes.iter().map(RouteConfig::mirrored).collect();
        extra_methods.push(Vec::new());
        mirrored.push(true);
        RouteMirroring {
            extra_methods,
            mirrored,
        }
    }

    /// Whether requests on this route may be mirrored at all.
    pub fn mirrored(&self, id: RouteId) -> bool {
        self.mirrored[id]
    }

    /// Methods mirrored on this route beyond the global list.
    pub fn extra_mirror_methods(&self, id: RouteId) -> &[Method] {
        &self.extra_methods[id]
    }
}

/// Routes that differ in their templates (added, removed, changed or moved), which only a
/// restart applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("route templates were added, removed, changed or reordered")]
pub struct TemplatesChanged;

impl RouteTable {
    /// Builds the table from the configured routes.
    pub fn new(routes: &[RouteConfig]) -> Self {
        let mut names: Vec<String> = routes
            .iter()
            .map(|r| r.template().as_str().to_string())
            .collect();
        names.push(OTHER_ROUTE.to_string());
        let mut order: Vec<(RouteTemplate, RouteId)> = routes
            .iter()
            .enumerate()
            .map(|(id, r)| (r.template().clone(), id))
            .collect();
        order.sort_by_key(|(t, _)| std::cmp::Reverse(t.specificity()));
        RouteTable {
            names,
            mirroring: ArcSwap::from_pointee(RouteMirroring::new(routes)),
            order,
        }
    }

    /// Puts `routes`' mirror settings in force for the requests that arrive afterwards; fails,
    /// changing nothing, when their templates are not the running ones, in the same order.
    pub fn set_mirroring(&self, routes: &[RouteConfig]) -> Result<(), TemplatesChanged> {
        let same_templates = routes.len() + 1 == self.names.len()
            && routes
                .iter()
                .zip(&self.names)
                .all(|(route, name)| route.template().as_str() == name);
        if !same_templates {
            return Err(TemplatesChanged);
        }
        self.mirroring.store(Arc::new(RouteMirroring::new(routes)));
        Ok(())
    }

    /// Every route's mirror settings in force.
    pub fn mirroring(&self) -> arc_swap::Guard<Arc<RouteMirroring>> {
        self.mirroring.load()
    }

    /// The route a path belongs to (query ignored); `other` when none matches. The path is
    /// matched as [`normalize_path`] spells it, so `//bookings/7/` and `/%62ookings/7` are
    /// `/bookings/{id}`, and no spelling slips past a route's settings.
    pub fn route_for(&self, path: &str) -> RouteId {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        let path = normalize_path(path);
        self.order
            .iter()
            .find(|(t, _)| t.matches(&path))
            .map(|(_, id)| *id)
            .unwrap_or(self.names.len() - 1)
    }

    /// The label of a route.
    pub fn name(&self, id: RouteId) -> &str {
        &self.names[id]
    }

    /// All route labels, `other` last.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of routes including `other`.
    pub fn len(&self) -> usize {
        self.names.len()
    }
}

/// A request path as the routes see it (RFC 3986 §6.2.2): percent-encoded unreserved
/// characters decoded (`%7E` is `~`), empty segments dropped (`//a///b` is `/a/b`), `.` and
/// `..` segments resolved, and no trailing slash (`/a/` is `/a`; `/` stays). Other escapes
/// (`%2F`) stay as they are: they are part of a segment. Borrows when there is nothing to do,
/// which is the common case.
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    let bytes = path.as_bytes();
    let clean = bytes.first() == Some(&b'/')
        && !bytes.contains(&b'%')
        && !path.contains("//")
        && !path.contains("/.")
        && (bytes.len() == 1 || bytes.last() != Some(&b'/'));
    if clean {
        return Cow::Borrowed(path);
    }
    let mut segments: Vec<String> = Vec::new();
    for raw in path.split('/') {
        let segment = decode_unreserved(raw);
        match segment.as_str() {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    let mut normal = String::with_capacity(path.len());
    for segment in &segments {
        normal.push('/');
        normal.push_str(segment);
    }
    if normal.is_empty() {
        normal.push('/');
    }
    Cow::Owned(normal)
}

/// A segment with its percent-encoded unreserved characters decoded, other escapes kept.
fn decode_unreserved(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(segment.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| segment.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        match decoded {
            Some(b) => {
                out.push(char::from(b));
                i += 3;
            }
            None => {
                let ch = segment[i..]
                    .chars()
                    .next()
                    .expect("i is on a char boundary");
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(templates: &[&str]) -> RouteTable {
        let routes: Vec<RouteConfig> = templates
            .iter()
            .map(|t| RouteConfig::Template(RouteTemplate::parse(t).unwrap()))
            .collect();
        RouteTable::new(&routes)
    }

    #[test]
    fn unmatched_paths_fall_into_other_and_query_is_ignored() {
        let t = table(&["/bookings/{id}", "/partners/{id}/availability"]);
        assert_eq!(t.name(t.route_for("/bookings/7?x=1")), "/bookings/{id}");
        assert_eq!(t.name(t.route_for("/nope")), OTHER_ROUTE);
        assert_eq!(t.name(t.route_for("")), OTHER_ROUTE);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn literal_beats_parameter_and_rest_comes_last() {
        let t = table(&["/api/*", "/bookings/{id}", "/bookings/new"]);
        assert_eq!(t.name(t.route_for("/bookings/new")), "/bookings/new");
        assert_eq!(t.name(t.route_for("/bookings/9")), "/bookings/{id}");
        assert_eq!(t.name(t.route_for("/api/a/b")), "/api/*");
        assert_eq!(t.name(t.route_for("/api/")), "/api/*");
    }

    #[test]
    fn mirror_settings_change_live_and_templates_do_not() {
        let route = |yaml: &str| serde_yaml::from_str::<RouteConfig>(yaml).unwrap();
        let t = RouteTable::new(&[route("/bookings/{id}"), route("/partners/{id}")]);
        let bookings = t.route_for("/bookings/7");
        assert!(t.mirroring().mirrored(bookings));
        let changed = [
            route("{path: \"/bookings/{id}\", mirror: false}"),
            route("{path: \"/partners/{id}\", mirror_methods: [POST]}"),
        ];
        t.set_mirroring(&changed).unwrap();
        let partners = t.route_for("/partners/1");
        assert!(!t.mirroring().mirrored(bookings));
        assert_eq!(
            t.mirroring().extra_mirror_methods(partners)[0].to_string(),
            "POST"
        );
        let other = t.route_for("/nope");
        assert!(t.mirroring().mirrored(other));
        for templates in [
            vec![route("/bookings/{id}")],
            vec![route("/partners/{id}"), route("/bookings/{id}")],
            vec![
                route("/bookings/{id}"),
                route("/partners/{id}"),
                route("/x"),
            ],
        ] {
            assert_eq!(t.set_mirroring(&templates), Err(TemplatesChanged));
        }
        assert!(
            !t.mirroring().mirrored(bookings),
            "a refused change changes nothing"
        );
    }

    #[test]
    fn every_spelling_of_a_path_finds_its_route() {
        let t = table(&["/bookings/{id}", "/bookings/new", "/static/*"]);
        let bookings = t.route_for("/bookings/7");
        for spelling in [
            "//bookings/7",
            "/bookings//7",
            "/bookings/7/",
            "/bookings/7//?x=1",
            "/%62ookings/7",
            "/%62%6F%6fkings/7",
            "/bookings/./7",
            "/static/../bookings/7",
            "/./bookings/7/.",
        ] {
            assert_eq!(t.route_for(spelling), bookings, "{spelling}");
        }
        assert_eq!(t.name(t.route_for("/bookings/%6Eew")), "/bookings/new");
        // An escaped slash is part of a segment, not a separator.
        assert_eq!(
            t.name(t.route_for("/bookings/7%2Fcancel")),
            "/bookings/{id}"
        );
        assert_eq!(t.name(t.route_for("/bookings/../../etc")), OTHER_ROUTE);
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path("//"), "/");
        assert_eq!(normalize_path("/a/..//"), "/");
        assert_eq!(normalize_path("/caf%C3%A9/%7e"), "/caf%C3%A9/~");
        assert_eq!(normalize_path("/a%2"), "/a%2");
        assert!(matches!(normalize_path("/bookings/7"), Cow::Borrowed(_)));
    }
}
