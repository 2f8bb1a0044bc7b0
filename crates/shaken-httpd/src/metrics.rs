//! The HTTP layer's metrics, registered into the server's own registry under its prefix
//! (`shaken_sensor_…`, as the sensor's `metrics::names` lists them; the collector the same
//! with `shaken_collector_…`).
//!
//! It must never panic at run time: the definitions are static and registered once.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

/// The metric names after the server's prefix (`<prefix>_http_…`).
pub mod names {
    pub const HTTP_CONNECTIONS_ACTIVE: &str = "http_connections_active";
    pub const HTTP_CONNECTIONS_REFUSED_TOTAL: &str = "http_connections_refused_total";
    pub const HTTP_REQUESTS_REJECTED_TOTAL: &str = "http_requests_rejected_total";
    pub const HTTP_TIMEOUTS_TOTAL: &str = "http_timeouts_total";
}

#[derive(Clone)]
pub struct HttpdMetrics {
    pub connections_active: IntGauge,
    pub connections_refused: IntCounterVec,
    pub requests_rejected: IntCounterVec,
    pub timeouts: IntCounterVec,
}

impl HttpdMetrics {
    /// Defines the metrics and registers them in `registry`, named `<prefix>_http_…` (pass
    /// "shaken_sensor" for the sensor).
    pub fn register(registry: &Registry, prefix: &str) -> Self {
        let name = |n: &str| format!("{prefix}_{n}");
        let vec = |n: &str, help: &str, label: &str| {
            let c = IntCounterVec::new(Opts::new(name(n), help), &[label])
                .expect("static metric definition");
            if let Err(e) = registry.register(Box::new(c.clone())) {
                tracing::error!(error = %e, "http metric registered twice");
            }
            c
        };
        let connections_active = IntGauge::new(
            name(names::HTTP_CONNECTIONS_ACTIVE),
            "HTTP connections open now",
        )
        .expect("static metric definition");
        if let Err(e) = registry.register(Box::new(connections_active.clone())) {
            tracing::error!(error = %e, "http metric registered twice");
        }
        let m = HttpdMetrics {
            connections_active,
            connections_refused: vec(
                names::HTTP_CONNECTIONS_REFUSED_TOTAL,
                "HTTP connections closed at accept, by reason (cap, accept_error)",
                "reason",
            ),
            requests_rejected: vec(
                names::HTTP_REQUESTS_REJECTED_TOTAL,
                "HTTP requests refused by the HTTP layer, by reason",
                "reason",
            ),
            timeouts: vec(
                names::HTTP_TIMEOUTS_TOTAL,
                "HTTP connections cut by a timeout, by phase (header, body, idle, drain)",
                "phase",
            ),
        };
        // Zero series exist from the start, so a dashboard sees 0 rather than no data.
        for r in ["cap", "accept_error"] {
            m.connections_refused.with_label_values(&[r]);
        }
        for r in [
            "overloaded",
            "unauthorized",
            "no_token",
            "body_too_large",
            "body_timeout",
            "body_error",
        ] {
            m.requests_rejected.with_label_values(&[r]);
        }
        for p in ["header", "body", "idle", "drain"] {
            m.timeouts.with_label_values(&[p]);
        }
        m
    }

    pub fn rejected(&self, reason: &str) {
        self.requests_rejected.with_label_values(&[reason]).inc();
    }

    pub fn timeout(&self, phase: &str) {
        self.timeouts.with_label_values(&[phase]).inc();
    }
}
