//! The canary's share of live traffic over time, as steps: each advance up the ramp marked
//! with a dot and its new share, each rollback with a red line and its time, operators'
//! changes with a hollow dot, and the ramp's steps drawn faintly. The page writes the legend.

use std::time::{Duration, SystemTime};

use plotters::coord::combinators::BindKeyPoints;
use plotters::coord::types::{RangedCoordf64, RangedCoordi64};
use plotters::prelude::*;

use super::{house_mesh, label_style, render, stroke, AFTER, BAD, MUTED, WIDTH};
use crate::report::format;
use crate::report::ReportError;

const HEIGHT: u32 = 400;

/// Steps between the time axis's ticks, in seconds: round shares of a minute, an hour or a day.
const TICK_STEPS: [u64; 15] = [
    1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1_800, 3_600, 7_200, 21_600, 43_200,
];

/// Most ticks on the time axis.
const MAX_TICKS: f64 = 8.0;

/// Everything the canary chart shows; times are seconds since `start`, shares in percent.
pub(in crate::report) struct CanaryData {
    /// When the time axis begins.
    pub start: SystemTime,
    /// Length of the time axis, seconds.
    pub span: f64,
    /// The candidate's share, as the corners of a step line.
    pub weights: Vec<(f64, f64)>,
    /// Steps up the ramp, and the share after each.
    pub advances: Vec<(f64, f64)>,
    /// Operators' changes other than rollbacks, and the share after each.
    pub admin: Vec<(f64, f64)>,
    /// Rollbacks, by the judge or an operator.
    pub rollbacks: Vec<f64>,
    /// The ramp's shares, in order.
    pub ramp: Vec<f64>,
}

/// Draws the candidate's share over time.
pub(in crate::report) fn canary(data: &CanaryData) -> Result<String, ReportError> {
    render(
        "canary",
        "Canary share of live traffic over time, percent, with advances and rollbacks",
        |svg| draw(svg, data),
    )
}

/// The UTC time of day `x` seconds after `start`, to the second when `seconds`.
fn time_at(data: &CanaryData, x: f64, seconds: bool) -> String {
    let t = data.start + Duration::from_secs_f64(x.max(0.0));
    format::time_of_day(t, seconds)
}

/// A time on the axis, in whole seconds since `start`.
fn sec(x: f64) -> i64 {
    x.round() as i64
}

/// The time axis's ticks, at round times of day, and the step between them in seconds.
fn ticks(data: &CanaryData) -> (Vec<i64>, u64) {
    let step = TICK_STEPS
        .into_iter()
        .find(|s| data.span / *s as f64 <= MAX_TICKS)
        .unwrap_or(86_400);
    let start = data
        .start
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let first = (start / step as f64).ceil() * step as f64 - start;
    let points = (0..)
        .map(|i| sec(first + (i * step) as f64))
        .take_while(|x| *x <= sec(data.span))
        .collect();
    (points, step)
}

fn draw(svg: &mut String, data: &CanaryData) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let highest = data
        .weights
        .iter()
        .map(|(_, w)| *w)
        .chain(data.ramp.iter().copied())
        .fold(1.0, f64::max);
    let top = highest * 1.15;
    let (ticks, step) = ticks(data);
    let seconds = step < 60;
    let mut chart = ChartBuilder::on(&root)
        .margin(20)
        .margin_top(36)
        .margin_right(28)
        .margin_left(10)
        .x_label_area_size(56)
        .y_label_area_size(84)
        .build_cartesian_2d(
            RangedCoordi64::from(0..sec(data.span)).with_key_points(ticks),
            RangedCoordf64::from(0f64..top),
        )?;
    house_mesh(
        chart
            .configure_mesh()
            .x_label_formatter(&|x| time_at(data, *x as f64, seconds))
            .y_label_formatter(&|y| format!("{}%", format::rate(*y)))
            .y_labels(5)
            .x_desc("time (UTC)")
            .y_desc("share of live traffic to the candidate"),
    )
    .draw()?;
    for weight in &data.ramp {
        let level = [(0, *weight), (sec(data.span), *weight)];
        chart.draw_series(DashedLineSeries::new(level, 6, 5, stroke(MUTED, 1)))?;
    }
    for x in &data.rollbacks {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(sec(*x), 0.0), (sec(*x), top)],
            stroke(BAD, 2),
        )))?;
        let label = format!("rollback {}", time_at(data, *x, seconds));
        // Near the right edge the label goes left of its line.
        let dx = if *x > data.span * 0.75 {
            -(label.chars().count() as i32 * 8 + 6)
        } else {
            6
        };
        chart.draw_series(std::iter::once(
            EmptyElement::at((sec(*x), top))
                + Text::new(label, (dx, -24), label_style().color(&BAD)),
        ))?;
    }
    chart.draw_series(LineSeries::new(
        data.weights.iter().map(|(x, w)| (sec(*x), *w)),
        stroke(AFTER, 3),
    ))?;
    chart.draw_series(
        data.admin
            .iter()
            .map(|(x, w)| Circle::new((sec(*x), *w), 6, stroke(MUTED, 2))),
    )?;
    for (x, weight) in &data.advances {
        chart.draw_series(std::iter::once(
            EmptyElement::at((sec(*x), *weight))
                + Circle::new((0, 0), 6, AFTER.filled())
                + Text::new(
                    format!("{}%", format::rate(*weight)),
                    (8, -22),
                    label_style(),
                ),
        ))?;
    }
    root.present()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_fall_on_round_times() {
        let data = CanaryData {
            start: SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_320_430),
            span: 3_600.0,
            weights: Vec::new(),
            advances: Vec::new(),
            admin: Vec::new(),
            rollbacks: Vec::new(),
            ramp: Vec::new(),
        };
        let (points, step) = ticks(&data);
        assert_eq!(step, 600);
        assert_eq!(points.first(), Some(&570));
        assert_eq!(time_at(&data, points[0] as f64, false), "09:10");
        assert_eq!(points.len(), 6);
    }

    #[test]
    fn marks_rollbacks_with_their_time() {
        let data = CanaryData {
            start: SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_320_400),
            span: 600.0,
            weights: vec![
                (0.0, 1.0),
                (120.0, 1.0),
                (120.0, 5.0),
                (420.0, 5.0),
                (420.0, 0.0),
            ],
            advances: vec![(120.0, 5.0)],
            admin: Vec::new(),
            rollbacks: vec![420.0],
            ramp: vec![1.0, 5.0, 25.0],
        };
        let svg = canary(&data).unwrap();
        assert!(
            svg.starts_with("<svg class=\"chart\" role=\"img\""),
            "{svg}"
        );
        assert!(svg.contains("rollback 09:07"), "{svg}");
        assert!(svg.contains("\n09:02\n"), "{svg}");
        assert!(svg.contains("#C92A2A") || svg.contains("#c92a2a"), "{svg}");
    }
}
