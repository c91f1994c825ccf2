//! The distribution of paired latency deltas, shadow − primary: for each mirrored request
//! answered by both systems, how much sooner (left, green) or later (right, red) the shadow
//! answered.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::{house_mesh, render, stroke, BAD, GOOD, INK, MUTED, WIDTH};
use crate::histogram::SignedHistogram;
use crate::report::format;
use crate::report::ReportError;

const HEIGHT: u32 = 420;

/// Bars drawn.
const BINS: usize = 48;

/// Share of pairs (0..1) per bin over `[lo, hi)` µs; values beyond fall in the end bins.
fn bins(delta: &SignedHistogram, lo: f64, hi: f64) -> Vec<f64> {
    let mut counts = vec![0u64; BINS];
    let width = (hi - lo) / BINS as f64;
    let mut put = |value: f64, count: u64| {
        let i = ((value - lo) / width).floor();
        let i = i.clamp(0.0, (BINS - 1) as f64) as usize;
        counts[i] += count;
    };
    for v in delta.slower.iter_recorded() {
        put(
            delta.slower.median_equivalent(v.value_iterated_to()) as f64,
            v.count_at_value(),
        );
    }
    for v in delta.faster.iter_recorded() {
        put(
            -(delta.faster.median_equivalent(v.value_iterated_to()) as f64),
            v.count_at_value(),
        );
    }
    let total = delta.count().max(1) as f64;
    counts.into_iter().map(|c| c as f64 / total).collect()
}

/// The range drawn, in µs: the 1st to the 99th percentile, and zero.
fn range(delta: &SignedHistogram) -> (f64, f64) {
    let lo = (delta.quantile(0.01) as f64).min(0.0);
    let hi = (delta.quantile(0.99) as f64).max(0.0);
    if hi - lo < 2.0 {
        (lo - 1.0, hi + 1.0)
    } else {
        let pad = (hi - lo) * 0.02;
        (lo - pad, hi + pad)
    }
}

/// Draws the distribution of `delta` as bars.
pub(in crate::report) fn delta(delta: &SignedHistogram) -> Result<String, ReportError> {
    render(
        "delta",
        "Paired latency delta, shadow minus primary, milliseconds",
        |svg| draw(svg, delta),
    )
}

fn draw(
    svg: &mut String,
    delta: &SignedHistogram,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let (lo, hi) = range(delta);
    let shares = bins(delta, lo, hi);
    let top = shares.iter().copied().fold(0.0, f64::max).max(0.01) * 1.15 * 100.0;
    let (lo_ms, hi_ms) = (lo / 1_000.0, hi / 1_000.0);
    let mut chart = ChartBuilder::on(&root)
        .margin(20)
        .margin_left(10)
        .x_label_area_size(56)
        .y_label_area_size(84)
        .build_cartesian_2d(
            RangedCoordf64::from(lo_ms..hi_ms),
            RangedCoordf64::from(0f64..top),
        )?;
    house_mesh(
        chart
            .configure_mesh()
            .x_label_formatter(&|x| format::axis(*x))
            .y_label_formatter(&|y| format!("{}%", format::rate(*y)))
            .x_labels(9)
            .y_labels(5)
            .x_desc("shadow − primary (ms): left of zero the shadow answered sooner")
            .y_desc("share of paired requests"),
    )
    .draw()?;
    let width = (hi_ms - lo_ms) / BINS as f64;
    chart.draw_series(shares.iter().enumerate().map(|(i, share)| {
        let x0 = lo_ms + width * i as f64;
        let x1 = x0 + width;
        let color = if x1 <= 0.0 {
            GOOD
        } else if x0 >= 0.0 {
            BAD
        } else {
            MUTED
        };
        let gap = width * 0.08;
        Rectangle::new(
            [(x0 + gap, 0.0), (x1 - gap, share * 100.0)],
            color.mix(0.85).filled(),
        )
    }))?;
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(0.0, 0.0), (0.0, top)],
        stroke(INK, 2),
    )))?;
    root.present()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_hold_every_pair() {
        let mut delta = SignedHistogram::new();
        for d in [-5_000, -4_000, -10, 0, 20, 3_000, 90_000] {
            delta.record(d);
        }
        let (lo, hi) = range(&delta);
        assert!(lo <= -5_000.0 && hi >= 0.0, "{lo}..{hi}");
        let shares = bins(&delta, lo, hi);
        assert_eq!(shares.len(), BINS);
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }
}
