//! Rendering the report with its templates: HTML (autoescaped, charts inline) and Markdown.

use minijinja::value::{Serde, Value};
use minijinja::{context, Environment};

use super::format;
use super::model::Summary;
use super::{Charts, ReportError};
use crate::timestamp::parse_rfc3339;

const HTML: &str = "report.html";
const MARKDOWN: &str = "report.md";

/// The template environment: both templates, with HTML autoescaped by file extension.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.add_filter("when", when);
    env.add_filter("cell", cell);
    env.add_filter("thousands", |n: u64| format::thousands(n));
    env.add_template(HTML, include_str!("templates/report.html"))
        .expect("the HTML template parses");
    env.add_template(MARKDOWN, include_str!("templates/report.md"))
        .expect("the Markdown template parses");
    env
}

/// The page, with the charts' SVG inline.
pub(super) fn html(summary: &Summary, charts: &Charts) -> Result<String, ReportError> {
    let svg = |chart: &Option<String>| chart.clone().map(Value::from_safe_string);
    render(
        HTML,
        context! {
            s => Value::from(Serde(summary)),
            charts => context! {
                percentiles => svg(&charts.percentiles),
                timeline => svg(&charts.timeline),
                delta => svg(&charts.delta),
                canary => svg(&charts.canary),
            },
            generator => generator(),
        },
    )
}

/// The report as Markdown.
pub(super) fn markdown(summary: &Summary) -> Result<String, ReportError> {
    render(
        MARKDOWN,
        context! { s => Value::from(Serde(summary)), generator => generator() },
    )
}

fn render(name: &'static str, ctx: Value) -> Result<String, ReportError> {
    let env = environment();
    env.get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|source| ReportError::Template { name, source })
}

fn generator() -> String {
    format!("twinpeak-reports {}", env!("CARGO_PKG_VERSION"))
}

/// An RFC 3339 timestamp as people read it: `2025-11-28 09:00:00 UTC`; other text as is.
fn when(text: String) -> String {
    match parse_rfc3339(&text) {
        Some(t) => {
            let seconds = humantime::format_rfc3339_seconds(t).to_string();
            format!(
                "{} UTC",
                seconds.trim_end_matches('Z').replacen('T', " ", 1)
            )
        }
        None => text,
    }
}

/// Text safe inside a Markdown table cell: pipes escaped, line breaks as spaces.
fn cell(text: String) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse() {
        let env = environment();
        assert!(env.get_template(HTML).is_ok());
        assert!(env.get_template(MARKDOWN).is_ok());
    }

    #[test]
    fn filters() {
        assert_eq!(
            when("2025-11-28T09:00:00.123Z".to_owned()),
            "2025-11-28 09:00:00 UTC"
        );
        assert_eq!(when("soon".to_owned()), "soon");
        assert_eq!(cell("a|b\nc".to_owned()), "a\\|b c");
    }
}
