//! The report's charts, drawn as self-contained SVG with `plotters`: a latency percentile
//! curve, p99 and throughput over time with the phases marked, the distribution of paired
//! latency deltas, and the canary's share of traffic with its advances and rollbacks.
//!
//! Each chart is sized by its `viewBox`, so the page scales it to any width; the page's style
//! sheet sets the font of its text.

mod canary;
mod delta;
mod percentiles;
mod timeline;

pub(super) use canary::{canary, CanaryData};
pub(super) use delta::delta;
pub(super) use percentiles::percentiles;
pub(super) use timeline::{timeline, PhaseBand, TimelineData, TimelineSeries};

use plotters::chart::MeshStyle;
use plotters::coord::ranged1d::Ranged;
use plotters::prelude::*;
use plotters::style::TextStyle;

use super::ReportError;

/// Colour of the before system (legacy): orange.
pub(super) const BEFORE: RGBColor = RGBColor(0xe8, 0x59, 0x0c);
/// Colour of the after system (rebuilt): blue.
pub(super) const AFTER: RGBColor = RGBColor(0x19, 0x71, 0xc2);
/// Text and axes.
const INK: RGBColor = RGBColor(0x49, 0x50, 0x57);
/// Secondary lines: intended rate, limits.
const MUTED: RGBColor = RGBColor(0x86, 0x8e, 0x96);
/// Grid lines.
const GRID: RGBColor = RGBColor(0xe9, 0xec, 0xef);
/// Better: the after system faster.
const GOOD: RGBColor = RGBColor(0x2b, 0x8a, 0x3e);
/// Worse: the after system slower.
const BAD: RGBColor = RGBColor(0xc9, 0x2a, 0x2a);

/// Width of every chart, in SVG units.
const WIDTH: u32 = 960;

/// The font family the SVG names; the page's style sheet overrides it.
const FONT: &str = "sans-serif";

/// Text of tick labels.
fn label_style() -> TextStyle<'static> {
    (FONT, 15).into_font().color(&INK)
}

/// Text of axis titles and legends.
fn title_style() -> TextStyle<'static> {
    (FONT, 16).into_font().color(&INK)
}

/// The look every chart's axes and grid share: label and title fonts, a light grid with no
/// minor lines, muted axes.
fn house_mesh<'m, 'a, 'b, X, Y, DB>(
    mesh: &'m mut MeshStyle<'a, 'b, X, Y, DB>,
) -> &'m mut MeshStyle<'a, 'b, X, Y, DB>
where
    X: Ranged,
    Y: Ranged,
    DB: DrawingBackend,
{
    mesh.label_style(label_style())
        .axis_desc_style(title_style())
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(INK.mix(0.6))
}

/// A line of `color`, `width` pixels wide.
fn stroke(color: RGBColor, width: u32) -> ShapeStyle {
    ShapeStyle {
        color: color.to_rgba(),
        filled: false,
        stroke_width: width,
    }
}

/// Draws one chart into an SVG string with `draw` and makes it an inline element named `title`;
/// a drawing failure is reported under `chart`.
fn render<E: std::fmt::Display>(
    chart: &'static str,
    title: &str,
    draw: impl FnOnce(&mut String) -> Result<(), E>,
) -> Result<String, ReportError> {
    let mut svg = String::new();
    draw(&mut svg).map_err(failed(chart))?;
    Ok(finish(svg, "chart", title))
}

/// The drawing error, as a report error naming the chart.
fn failed<E: std::fmt::Display>(chart: &'static str) -> impl Fn(E) -> ReportError {
    move |e| ReportError::Chart {
        chart,
        message: e.to_string(),
    }
}

/// Makes plotters' SVG document an element for inline use in HTML: marks it as an image with
/// an accessible name and a class the page styles, and drops the namespace declaration, which
/// HTML does not need.
fn finish(svg: String, class: &str, title: &str) -> String {
    let svg = svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1);
    let title = title
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let Some(open_end) = svg.find('>') else {
        return svg;
    };
    let (open, rest) = svg.split_at(open_end);
    let open = open.replacen("<svg ", &format!("<svg class=\"{class}\" role=\"img\" "), 1);
    format!("{open}><title>{title}</title>{}", &rest[1..])
}

/// `m:ss` (or `h:mm:ss`) for a time in seconds.
fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3_600 {
        format!("{}:{:02}:{:02}", s / 3_600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_reads_minutes_and_hours() {
        assert_eq!(clock(0.0), "0:00");
        assert_eq!(clock(75.4), "1:15");
        assert_eq!(clock(3_725.0), "1:02:05");
    }

    #[test]
    fn finish_adds_title_and_role() {
        let svg = finish(
            "<svg width=\"2\" height=\"1\" xmlns=\"http://www.w3.org/2000/svg\"><rect/></svg>"
                .to_owned(),
            "chart",
            "a < b",
        );
        assert_eq!(
            svg,
            "<svg class=\"chart\" role=\"img\" width=\"2\" height=\"1\"><title>a &lt; b</title><rect/></svg>"
        );
    }
}
