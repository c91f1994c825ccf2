//! Route templates (`/partners/{id}/availability`): `{name}` stands for one path segment, a
//! final `*` for the rest of the path.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// One segment of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Must equal the path segment.
    Literal(String),
    /// `{name}`: any one non-empty segment.
    Param,
    /// `*` as the last segment: the rest of the path, possibly empty.
    Rest,
}

/// A route template that does not parse; the message quotes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteTemplateError {
    /// Every template starts with `/`.
    #[error("route {0:?} must start with /")]
    NoLeadingSlash(String),
    /// `*` stands for the rest of the path, so only the last segment may be it.
    #[error("route {0:?}: * is allowed only at the end")]
    RestNotLast(String),
    /// A `{name}` whose name is empty or not made of letters, digits and `_`.
    #[error("route {template:?}: bad parameter {segment:?}")]
    BadParameter {
        /// The template.
        template: String,
        /// The segment at fault.
        segment: String,
    },
    /// A segment with text beside a parameter or a wildcard (`x{id}`).
    #[error("route {template:?}: segment {segment:?} mixes text and a parameter")]
    MixedSegment {
        /// The template.
        template: String,
        /// The segment at fault.
        segment: String,
    },
}

/// A parsed route template such as `/partners/{id}/availability`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTemplate {
    text: String,
    segments: Vec<Segment>,
}

impl RouteTemplate {
    /// Parses a template: it starts with `/`; `{name}` stands for one segment; a final `*`
    /// for the rest of the path.
    pub fn parse(text: &str) -> Result<Self, RouteTemplateError> {
        let template = || text.to_string();
        if !text.starts_with('/') {
            return Err(RouteTemplateError::NoLeadingSlash(template()));
        }
        let parts: Vec<&str> = text[1..].split('/').collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let segment = if *part == "*" {
                if i + 1 != parts.len() {
                    return Err(RouteTemplateError::RestNotLast(template()));
                }
                Segment::Rest
            } else if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    return Err(RouteTemplateError::BadParameter {
                        template: template(),
                        segment: (*part).to_string(),
                    });
                }
                Segment::Param
            } else if part.contains(['{', '}', '*', '?', '#']) {
                return Err(RouteTemplateError::MixedSegment {
                    template: template(),
                    segment: (*part).to_string(),
                });
            } else {
                Segment::Literal((*part).to_string())
            };
            segments.push(segment);
        }
        Ok(RouteTemplate {
            text: text.to_string(),
            segments,
        })
    }

    /// The template as written; it is the `route` label.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether a request path (no query) matches.
    pub fn matches(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let mut parts = rest.split('/');
        for segment in &self.segments {
            match segment {
                Segment::Rest => return true,
                Segment::Literal(lit) => {
                    if parts.next() != Some(lit.as_str()) {
                        return false;
                    }
                }
                Segment::Param => match parts.next() {
                    Some(p) if !p.is_empty() => {}
                    _ => return false,
                },
            }
        }
        parts.next().is_none()
    }

    /// Literal segments count for more than parameters: `/bookings/new` beats `/bookings/{id}`.
    pub(super) fn specificity(&self) -> (usize, usize) {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        let has_rest = self.segments.last() == Some(&Segment::Rest);
        (literals, usize::from(!has_rest))
    }
}

impl fmt::Display for RouteTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for RouteTemplate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RouteTemplate::parse(&String::deserialize(deserializer)?).map_err(de::Error::custom)
    }
}

impl Serialize for RouteTemplate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_match_one_segment() {
        let t = RouteTemplate::parse("/partners/{id}/availability").unwrap();
        assert!(t.matches("/partners/42/availability"));
        assert!(!t.matches("/partners//availability"));
        assert!(!t.matches("/partners/42"));
        assert!(!t.matches("/partners/42/availability/x"));
    }

    #[test]
    fn bad_templates_are_refused() {
        assert!(RouteTemplate::parse("bookings").is_err());
        assert!(RouteTemplate::parse("/a/*/b").is_err());
        assert!(RouteTemplate::parse("/a/{}").is_err());
        assert!(RouteTemplate::parse("/a/x{id}").is_err());
    }
}
