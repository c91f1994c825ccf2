//! A recorded request's path and query as a template: the recorded route template's
//! parameters (`/bookings/{id}`), or, for requests recorded under `other`, segments that look
//! like identifiers (numbers, UUIDs, hex ids), and every query value, become variables whose
//! observed values are kept as data.

use percent_encoding::percent_decode_str;

/// The route requests matching no template were recorded under.
const OTHER_ROUTE: &str = "other";

/// Shortest run of hex digits taken for an identifier.
const MIN_HEX_ID: usize = 8;

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Sent as it was recorded.
    Literal(String),
    /// A variable: its column name and the value this request had (decoded).
    Param { name: String, value: String },
}

/// One query parameter: its key as recorded, and its value decoded (`None` for a bare key or
/// an empty value, kept as written).
#[derive(Debug, Clone, PartialEq, Eq)]
struct QueryParam {
    key: String,
    value: Option<String>,
}

/// A recorded request's path and query, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PathShape {
    segments: Vec<Segment>,
    query: Vec<QueryParam>,
}

impl PathShape {
    /// Takes `path` (path and query as recorded) apart along `route` (the template it was
    /// recorded under), or by inference when the route is `other`, empty or does not fit.
    pub(super) fn of(route: &str, path: &str) -> PathShape {
        let path = path.split('#').next().unwrap_or_default();
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut names = Names::default();
        let segments = along_route(route, &parts, &mut names)
            .unwrap_or_else(|| parts.iter().map(|part| infer(part, &mut names)).collect());
        let query = query
            .split('&')
            .filter(|p| !p.is_empty())
            // Braces would read as a placeholder: they go as their escapes, which servers
            // decode alike.
            .map(|pair| pair.replace('{', "%7B").replace('}', "%7D"))
            .map(|pair| match pair.split_once('=') {
                // An empty value is sent as it was: `key=`.
                Some((key, "")) => QueryParam {
                    key: format!("{key}="),
                    value: None,
                },
                Some((key, value)) => QueryParam {
                    key: key.to_string(),
                    value: Some(decode(&value.replace('+', " "))),
                },
                None => QueryParam {
                    key: pair.to_string(),
                    value: None,
                },
            })
            .collect();
        PathShape { segments, query }
    }

    /// The route-style template of the path (`/bookings/{id}`): what requests are grouped by.
    pub(super) fn route(&self) -> String {
        let mut route = String::new();
        for segment in &self.segments {
            route.push('/');
            match segment {
                Segment::Literal(text) => route.push_str(text),
                Segment::Param { name, .. } => {
                    route.push('{');
                    route.push_str(name);
                    route.push('}');
                }
            }
        }
        if route.is_empty() {
            route.push('/');
        }
        route
    }

    /// The query's keys (with whether each has a value), which requests of a group share
    /// most often.
    pub(super) fn query_keys(&self) -> Vec<(String, bool)> {
        self.query
            .iter()
            .map(|p| (p.key.clone(), p.value.is_some()))
            .collect()
    }

    /// The variables of this request, as (column, value), path first; query columns are named
    /// after their keys, a repeated one numbered.
    pub(super) fn values(&self) -> Vec<(String, String)> {
        let mut names = Names::default();
        for segment in &self.segments {
            if let Segment::Param { name, .. } = segment {
                names.taken.push(name.clone());
            }
        }
        let path = self.segments.iter().filter_map(|s| match s {
            Segment::Param { name, value } => Some((name.clone(), value.clone())),
            Segment::Literal(_) => None,
        });
        let query: Vec<(String, String)> = self
            .query
            .iter()
            .filter_map(|p| {
                let value = p.value.clone()?;
                Some((names.unique(&column_name(&decode(&p.key))), value))
            })
            .collect();
        path.chain(query).collect()
    }

    /// The URL template: literal text as recorded, each variable `{{prefix_column}}`.
    pub(super) fn template(&self, prefix: &str) -> String {
        let mut text = String::new();
        let mut values = self.values().into_iter().map(|(column, _)| column);
        for segment in &self.segments {
            text.push('/');
            match segment {
                Segment::Literal(literal) => text.push_str(literal),
                Segment::Param { .. } => {
                    let column = values.next().unwrap_or_default();
                    text.push_str(&format!("{{{{{prefix}_{column}}}}}"));
                }
            }
        }
        if text.is_empty() {
            text.push('/');
        }
        for (i, param) in self.query.iter().enumerate() {
            text.push(if i == 0 { '?' } else { '&' });
            text.push_str(&param.key);
            if param.value.is_some() {
                let column = values.next().unwrap_or_default();
                text.push_str(&format!("={{{{{prefix}_{column}}}}}"));
            }
        }
        text
    }
}

/// The segments of `parts` along a recorded route template, when it fits: its literals as
/// written, its `{name}`s as variables, a final `*` as the rest inferred.
fn along_route(route: &str, parts: &[&str], names: &mut Names) -> Option<Vec<Segment>> {
    if route.is_empty() || route == OTHER_ROUTE || !route.starts_with('/') {
        return None;
    }
    let template: Vec<&str> = route.split('/').filter(|s| !s.is_empty()).collect();
    let rest = template.last() == Some(&"*");
    let fixed = template.len() - usize::from(rest);
    if parts.len() < fixed || (!rest && parts.len() != fixed) {
        return None;
    }
    let mut segments = Vec::with_capacity(parts.len());
    for (written, part) in template[..fixed].iter().zip(parts) {
        match written.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
            Some(name) => segments.push(Segment::Param {
                name: names.unique(&column_name(name)),
                value: decode(part),
            }),
            None if is_literal(written) => segments.push(Segment::Literal(written.to_string())),
            None => return None,
        }
    }
    segments.extend(parts[fixed..].iter().map(|part| infer(part, names)));
    Some(segments)
}

/// A segment kept as written, or a variable when it looks like an identifier (or could not be
/// written literally in a template).
fn infer(part: &str, names: &mut Names) -> Segment {
    if is_literal(part) && !looks_like_id(&decode(part)) {
        Segment::Literal(part.to_string())
    } else {
        Segment::Param {
            name: names.unique("id"),
            value: decode(part),
        }
    }
}

/// Whether text can stand in a template as it is (no placeholder braces).
fn is_literal(text: &str) -> bool {
    !text.contains(['{', '}'])
}

/// A number, a UUID, or a hex id of at least [`MIN_HEX_ID`] digits with a digit in it.
fn looks_like_id(segment: &str) -> bool {
    let is_number = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit());
    let is_uuid = uuid::Uuid::try_parse(segment).is_ok();
    let is_hex = segment.len() >= MIN_HEX_ID
        && segment.bytes().all(|b| b.is_ascii_hexdigit())
        && segment.bytes().any(|b| b.is_ascii_digit());
    is_number || is_uuid || is_hex
}

/// Percent-decoded text (invalid UTF-8 replaced).
fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// A column name made of lower-case letters, digits and `_`.
pub(super) fn column_name(text: &str) -> String {
    let mut name = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.ends_with('_') && !name.is_empty() {
            name.push('_');
        }
    }
    let name = name.trim_end_matches('_').to_string();
    if name.is_empty() {
        "value".into()
    } else {
        name
    }
}

/// Names handed out so far, so each is used once (`id`, `id_2`, ...).
#[derive(Default)]
pub(super) struct Names {
    taken: Vec<String>,
}

impl Names {
    /// `wanted`, or `wanted_N` for the first N not taken yet.
    pub(super) fn unique(&mut self, wanted: &str) -> String {
        let mut name = wanted.to_string();
        let mut n = 1;
        while self.taken.contains(&name) {
            n += 1;
            name = format!("{wanted}_{n}");
        }
        self.taken.push(name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_route_s_parameters_become_variables() {
        let shape = PathShape::of(
            "/partners/{id}/availability",
            "/partners/7/availability?date=2026-12-24&x&y=",
        );
        assert_eq!(shape.route(), "/partners/{id}/availability");
        assert_eq!(
            shape.values(),
            vec![
                ("id".into(), "7".into()),
                ("date".into(), "2026-12-24".into())
            ]
        );
        assert_eq!(
            shape.template("avail"),
            "/partners/{{avail_id}}/availability?date={{avail_date}}&x&y="
        );
    }

    #[test]
    fn identifiers_of_unmatched_paths_are_inferred() {
        let uuid = "6f1c2a4e-0b7d-4c1e-9a55-3f2d1e0c9b8a";
        let shape = PathShape::of("other", &format!("/v2/users/42/files/{uuid}/deadbeef99"));
        assert_eq!(shape.route(), "/v2/users/{id}/files/{id_2}/{id_3}");
        let other = PathShape::of("", "/static/app.js");
        assert_eq!(other.route(), "/static/app.js");
        assert_eq!(PathShape::of("other", "/").template("root"), "/");
        // A route the path does not fit is inferred too.
        assert_eq!(PathShape::of("/a/{x}", "/b/12/c").route(), "/b/{id}/c");
    }

    #[test]
    fn values_are_decoded_and_repeated_keys_numbered() {
        let shape = PathShape::of("/s", "/s?q=new+delhi&q=caf%C3%A9&Sort-By=price");
        assert_eq!(
            shape.values(),
            vec![
                ("q".into(), "new delhi".into()),
                ("q_2".into(), "café".into()),
                ("sort_by".into(), "price".into())
            ]
        );
        assert_eq!(
            shape.template("s"),
            "/s?q={{s_q}}&q={{s_q_2}}&Sort-By={{s_sort_by}}"
        );
        // Braces cannot be written literally: a query key's go escaped, a segment is a value.
        assert_eq!(
            PathShape::of("/s", "/s?{{x}}=1").template("s"),
            "/s?%7B%7Bx%7D%7D={{s_x}}"
        );
        assert_eq!(
            PathShape::of("other", "/x/%7B%7Ba%7D%7D/{{b}}").route(),
            "/x/%7B%7Ba%7D%7D/{id}"
        );
    }

    #[test]
    fn a_rest_wildcard_keeps_the_rest_inferred() {
        let shape = PathShape::of("/files/*", "/files/docs/123");
        assert_eq!(shape.route(), "/files/docs/{id}");
        assert_eq!(column_name("--Weird Key!"), "weird_key");
        assert_eq!(column_name("%%"), "value");
    }
}
