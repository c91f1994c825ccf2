//! The per-route, per-field findings view of compared answers, built the same way whatever
//! compared them: the proxy's mirrored pairs (snapshots) or replayed answers against the
//! recorded ones (run records of `twinpeak load --replay --compare`).

use super::figures::Provenance;
use super::format;
use super::model::{DiffRouteRow, DiffView, FieldRow};
use crate::diff::{DiffSummary, FieldSummary};

/// Most differing fields listed, and most noise fields.
const MAX_FIELDS: usize = 12;

/// One route's comparisons: its counts, and its summary when the record has one.
pub(super) struct RouteFindings<'a> {
    /// Route template.
    pub route: &'a str,
    /// Pairs compared.
    pub compared: u64,
    /// Of those, pairs with a real difference.
    pub different: u64,
    /// Fields and signatures, when recorded.
    pub summary: Option<&'a DiffSummary>,
}

/// The findings over `routes` (those with nothing compared are left out); `None` if nothing
/// was compared. Figures name `sources` and `derivation`.
pub(super) fn diff_view<'a>(
    routes: impl IntoIterator<Item = RouteFindings<'a>>,
    sources: &[String],
    derivation: &str,
) -> Option<DiffView> {
    let mut rows = Vec::new();
    let (mut compared_all, mut different_all) = (0u64, 0u64);
    let mut fields: Vec<(&str, &FieldSummary)> = Vec::new();
    let mut noise: Vec<(&str, &FieldSummary)> = Vec::new();
    for route in routes.into_iter().filter(|r| r.compared > 0) {
        compared_all += route.compared;
        different_all += route.different;
        let (identical, noise_only) = route
            .summary
            .map_or((0, 0), |s| (s.identical, s.noise_only));
        rows.push(DiffRouteRow {
            route: route.route.to_owned(),
            compared: format::thousands(route.compared),
            identical: format::thousands(identical),
            different: format::thousands(route.different),
            noise_only: format::thousands(noise_only),
            rate: format::share(route.different as f64 / route.compared as f64),
        });
        if let Some(summary) = route.summary {
            fields.extend(summary.fields.iter().map(|f| (route.route, f)));
            noise.extend(summary.noise.iter().map(|f| (route.route, f)));
        }
    }
    if compared_all == 0 {
        return None;
    }
    let by_count = |a: &(&str, &FieldSummary), b: &(&str, &FieldSummary)| {
        b.1.count
            .cmp(&a.1.count)
            .then_with(|| (a.0, &a.1.path).cmp(&(b.0, &b.1.path)))
    };
    fields.sort_by(by_count);
    noise.sort_by(by_count);
    let rate = different_all as f64 / compared_all as f64;
    Some(DiffView {
        compared: compared_all,
        different: different_all,
        rate: Provenance::new(sources.to_vec(), derivation).figure(
            rate * 100.0,
            "%",
            format::share(rate),
        ),
        routes: rows,
        fields: fields
            .into_iter()
            .take(MAX_FIELDS)
            .map(|(route, f)| field_row(route, f, f.rate))
            .collect(),
        noise: noise
            .into_iter()
            .take(MAX_FIELDS)
            .map(|(route, f)| field_row(route, f, f.reference_rate.unwrap_or(f.rate)))
            .collect(),
        sources: sources.to_vec(),
    })
}

fn field_row(route: &str, f: &FieldSummary, rate: f64) -> FieldRow {
    FieldRow {
        route: route.to_owned(),
        path: f.path.clone(),
        kind: f.kind.clone(),
        count: format::thousands(f.count),
        rate: format::share(rate),
        suggested_ignore: f.suggested_ignore.clone(),
    }
}
