//! The front door's metrics: certificate reloads by result, and the not-after time of every
//! certificate served, so an alert can fire well before one expires. A replica's own: rendered
//! with the rest, not kept in the state store.

use prometheus::{GaugeVec, IntCounter, IntCounterVec, Opts};

use super::certs::LoadedPair;
use crate::metrics::Metrics;

/// `twinpeak_tls_reloads_total{result}` and `twinpeak_tls_certificate_expiry_seconds{name}`.
#[derive(Clone)]
pub struct TlsMetrics {
    reloaded: IntCounter,
    refused: IntCounter,
    expiry: GaugeVec,
}

impl TlsMetrics {
    /// Registers the metrics with `metrics`' local collectors.
    pub fn register(metrics: &Metrics) -> Self {
        let reloads = IntCounterVec::new(
            Opts::new(
                "twinpeak_tls_reloads_total",
                "Certificate pairs read again after their files changed or on SIGHUP, by result \
                 (ok: now served; failed: refused, the previous pair still served).",
            ),
            &["result"],
        )
        .expect("valid metric");
        let expiry = GaugeVec::new(
            Opts::new(
                "twinpeak_tls_certificate_expiry_seconds",
                "Not-after time of each certificate served, in seconds since the Unix epoch, by \
                 its first name.",
            ),
            &["name"],
        )
        .expect("valid metric");
        metrics.register_local(Box::new(reloads.clone()));
        metrics.register_local(Box::new(expiry.clone()));
        TlsMetrics {
            reloaded: reloads.with_label_values(&["ok"]),
            refused: reloads.with_label_values(&["failed"]),
            expiry,
        }
    }

    /// Counts one pair read again: served now (`ok`) or refused.
    pub fn reload(&self, ok: bool) {
        if ok {
            self.reloaded.inc();
        } else {
            self.refused.inc();
        }
    }

    /// Shows the expiry of exactly the pairs served now (one label per name; a pair replaced by
    /// one of another name takes its label away).
    pub fn serving<'a>(&self, pairs: impl Iterator<Item = &'a LoadedPair>) {
        self.expiry.reset();
        for pair in pairs {
            self.expiry
                .with_label_values(&[pair.label()])
                .set(pair.not_after as f64);
        }
    }
}
