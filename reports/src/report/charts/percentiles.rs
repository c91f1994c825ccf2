//! The latency percentile curve, as HdrHistogram plots draw it: the percentile axis is
//! logarithmic in 1 / (1 − q), so 90%, 99%, 99.9% and 99.99% are evenly spaced and the tail,
//! where systems differ most, gets most of the width.

use hdrhistogram::Histogram;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::{house_mesh, render, stroke, title_style, GRID, WIDTH};
use crate::report::format;
use crate::report::ReportError;

const HEIGHT: u32 = 460;

/// Decades of the percentile axis: 4 reaches 99.99%.
const DECADES: f64 = 4.0;

/// Points drawn per decade.
const STEPS: u32 = 100;

/// One system's latency histogram (µs), its name and colour.
pub(in crate::report) type Curve<'a> = (&'a str, RGBColor, &'a Histogram<u64>);

/// Draws the percentile curve of every non-empty histogram of `curves`.
pub(in crate::report) fn percentiles(curves: &[Curve<'_>]) -> Result<String, ReportError> {
    render(
        "percentile",
        "Latency by percentile, milliseconds, log percentile axis",
        |svg| draw(svg, curves),
    )
}

/// Latency in ms at `x` decades along the percentile axis.
fn at(h: &Histogram<u64>, x: f64) -> f64 {
    let q = 1.0 - 10f64.powf(-x);
    h.value_at_quantile(q) as f64 / 1_000.0
}

/// `0%`, `90%`, `99%`, `99.9%`, `99.99%` for 0 to 4 decades.
fn percentile_label(x: f64) -> String {
    let pct = (1.0 - 10f64.powf(-x)) * 100.0;
    let places = x.round().max(0.0) as usize;
    let text = format!("{:.*}", places.saturating_sub(2), pct);
    format!("{text}%")
}

fn draw(
    svg: &mut String,
    curves: &[Curve<'_>],
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let curves: Vec<&Curve<'_>> = curves.iter().filter(|(_, _, h)| !h.is_empty()).collect();
    let top = curves
        .iter()
        .map(|(_, _, h)| at(h, DECADES))
        .fold(0.0, f64::max);
    let y_max = if top > 0.0 { top * 1.08 } else { 1.0 };
    let mut chart = ChartBuilder::on(&root)
        .margin(20)
        .margin_left(10)
        .margin_right(40)
        .x_label_area_size(56)
        .y_label_area_size(84)
        .build_cartesian_2d(
            RangedCoordf64::from(0f64..DECADES),
            RangedCoordf64::from(0f64..y_max),
        )?;
    house_mesh(
        chart
            .configure_mesh()
            .x_label_formatter(&|x| percentile_label(*x))
            .y_label_formatter(&|y| format::axis(*y))
            .x_labels(DECADES as usize + 1)
            .y_labels(6)
            .x_desc("percentile")
            .y_desc("latency (ms)"),
    )
    .draw()?;
    for (name, color, h) in curves {
        let points = (0..=(DECADES as u32 * STEPS)).map(|i| {
            let x = f64::from(i) / f64::from(STEPS);
            (x, at(h, x))
        });
        let color = *color;
        chart
            .draw_series(LineSeries::new(points, stroke(color, 3)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], stroke(color, 4)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .margin(14)
        .label_font(title_style())
        .background_style(WHITE.mix(0.9))
        .border_style(GRID)
        .draw()?;
    root.present()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_axis_is_labelled_in_nines() {
        let labels: Vec<String> = (0..=4).map(|x| percentile_label(f64::from(x))).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%"]);
    }
}
