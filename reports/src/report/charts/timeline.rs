//! p99 latency and throughput over the run, one line per system, with the scenario's phases
//! shaded and named and the p99 limit drawn where the SLO sets one. The page writes the
//! legend, so it never hides a line.

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{clock, house_mesh, label_style, render, stroke, BAD, MUTED, WIDTH};
use crate::report::format;
use crate::report::ReportError;

const HEIGHT: u32 = 640;

/// Width of the plotting area, roughly: the chart less its axis labels and margins.
const PLOT_WIDTH_PX: f64 = (WIDTH - 114) as f64;

/// Room a phase name needs to be written in its band.
fn label_width_px(name: &str) -> f64 {
    name.chars().count() as f64 * 8.5 + 12.0
}

/// One system's points over the run: seconds since the scenario started, and a value.
pub(in crate::report) struct TimelineSeries {
    /// Line colour.
    pub color: RGBColor,
    /// p99 latency per window, ms.
    pub p99_ms: Vec<(f64, f64)>,
    /// Requests sent per second, per window.
    pub achieved_rps: Vec<(f64, f64)>,
}

/// A phase of the scenario on the time axis.
pub(in crate::report) struct PhaseBand {
    /// Phase name.
    pub name: String,
    /// Start, seconds since the scenario started.
    pub start: f64,
    /// End, seconds since the scenario started.
    pub end: f64,
    /// The p99 limit in force during the phase, ms.
    pub p99_limit_ms: Option<f64>,
}

/// Everything the timeline chart shows.
pub(in crate::report) struct TimelineData {
    /// One line per system.
    pub series: Vec<TimelineSeries>,
    /// The arrival rate the scenario asked for, per window.
    pub intended: Vec<(f64, f64)>,
    /// The scenario's phases.
    pub phases: Vec<PhaseBand>,
}

/// Draws p99 (top) and throughput (bottom) over time.
pub(in crate::report) fn timeline(data: &TimelineData) -> Result<String, ReportError> {
    render(
        "timeline",
        "p99 latency and throughput over the run, by phase",
        |svg| draw(svg, &data.series, &data.intended, &data.phases),
    )
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Error = DrawingAreaErrorKind<std::io::Error>;

fn draw(
    svg: &mut String,
    series: &[TimelineSeries],
    intended: &[(f64, f64)],
    phases: &[PhaseBand],
) -> Result<(), Error> {
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let end = series
        .iter()
        .flat_map(|s| s.p99_ms.iter().chain(&s.achieved_rps))
        .map(|(t, _)| *t)
        .chain(phases.iter().map(|p| p.end))
        .fold(1.0, f64::max);
    let (upper, lower) = root.split_vertically(HEIGHT * 57 / 100);

    let p99_top = series
        .iter()
        .flat_map(|s| s.p99_ms.iter().map(|(_, v)| *v))
        .chain(phases.iter().filter_map(|p| p.p99_limit_ms))
        .fold(0.0, f64::max);
    let panel = Panel {
        end,
        top: nice_top(p99_top),
        y_desc: "p99 latency (ms)",
        x_desc: None,
    };
    let lines: Vec<Line<'_>> = series
        .iter()
        .map(|s| Line {
            color: s.color,
            points: &s.p99_ms,
            dashed: false,
        })
        .collect();
    panel.draw(&upper, phases, &lines, true)?;

    let rps_top = series
        .iter()
        .flat_map(|s| s.achieved_rps.iter())
        .chain(intended)
        .map(|(_, v)| *v)
        .fold(0.0, f64::max);
    let panel = Panel {
        end,
        top: nice_top(rps_top),
        y_desc: "throughput (req/s)",
        x_desc: Some("time since the scenario started (m:ss)"),
    };
    let mut lines: Vec<Line<'_>> = series
        .iter()
        .map(|s| Line {
            color: s.color,
            points: &s.achieved_rps,
            dashed: false,
        })
        .collect();
    if !intended.is_empty() {
        lines.push(Line {
            color: MUTED,
            points: intended,
            dashed: true,
        });
    }
    panel.draw(&lower, phases, &lines, false)?;
    root.present()
}

/// The top of an axis: a little above the highest value.
fn nice_top(highest: f64) -> f64 {
    if highest > 0.0 {
        highest * 1.12
    } else {
        1.0
    }
}

/// One line of a panel.
struct Line<'a> {
    color: RGBColor,
    points: &'a [(f64, f64)],
    dashed: bool,
}

/// One of the two stacked charts.
struct Panel<'a> {
    end: f64,
    top: f64,
    y_desc: &'a str,
    x_desc: Option<&'a str>,
}

impl Panel<'_> {
    fn draw(
        &self,
        area: &Area<'_>,
        phases: &[PhaseBand],
        lines: &[Line<'_>],
        upper: bool,
    ) -> Result<(), Error> {
        let mut chart = ChartBuilder::on(area)
            .margin_top(if upper { 36 } else { 12 })
            .margin_right(28)
            .margin_left(10)
            .margin_bottom(if upper { 4 } else { 10 })
            .x_label_area_size(if upper { 28 } else { 56 })
            .y_label_area_size(84)
            .build_cartesian_2d(
                RangedCoordf64::from(0f64..self.end),
                RangedCoordf64::from(0f64..self.top),
            )?;
        let top = self.top;
        for (i, phase) in phases.iter().enumerate() {
            let shade = if i % 2 == 0 {
                RGBColor(0xf1, 0xf3, 0xf5)
            } else {
                WHITE
            };
            chart.draw_series(std::iter::once(Rectangle::new(
                [(phase.start, 0.0), (phase.end, top)],
                shade.filled(),
            )))?;
            let width_px = (phase.end - phase.start) / self.end * PLOT_WIDTH_PX;
            if upper && width_px >= label_width_px(&phase.name) {
                chart.draw_series(std::iter::once(
                    EmptyElement::at((phase.start, top))
                        + Text::new(phase.name.clone(), (6, -24), label_style()),
                ))?;
            }
        }
        let mut mesh = chart.configure_mesh();
        mesh.x_label_formatter(&|t| clock(*t))
            .y_label_formatter(&|v| format::rate(*v))
            .y_labels(5)
            .x_labels(10)
            .y_desc(self.y_desc);
        house_mesh(&mut mesh);
        if let Some(desc) = self.x_desc {
            mesh.x_desc(desc);
        }
        mesh.draw()?;
        for phase in phases.iter().skip(1) {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(phase.start, 0.0), (phase.start, top)],
                stroke(MUTED, 1),
            )))?;
        }
        if upper {
            for phase in phases {
                let Some(limit) = phase.p99_limit_ms else {
                    continue;
                };
                let segment = [(phase.start, limit), (phase.end, limit)];
                chart.draw_series(DashedLineSeries::new(segment, 8, 6, stroke(BAD, 2)))?;
            }
        }
        for line in lines {
            let color = line.color;
            let width = if line.dashed { 2 } else { 3 };
            let points = line.points.iter().copied();
            if line.dashed {
                chart.draw_series(DashedLineSeries::new(points, 6, 5, stroke(color, width)))?;
            } else {
                chart.draw_series(LineSeries::new(points, stroke(color, width)))?;
            }
        }
        Ok(())
    }
}
