//! Per-packet problems (decode errors, malformed SIP, verification failures, certificate fetch
//! errors, queue and capture drops) are never logged one line per packet: stages only count
//! them in metrics, and this thread writes one summary line every `log.summary_interval_s`
//! with the counts by kind since the previous summary (and a last one at shutdown).
//!
//! It reads the metrics (no stage is touched) and never logs when nothing went wrong.

use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The message of every summary line (log shippers can match on it).
pub const SUMMARY_MESSAGE: &str = "per-packet problems since the last summary";

/// Problem families: (log field, counter family, its label).
fn families(m: &Metrics) -> [(&'static str, &prometheus::IntCounterVec, &'static str); 6] {
    [
        ("decode_errors", &m.decode_errors, "kind"),
        ("sip_parse_errors", &m.sip_parse_errors, "kind"),
        ("verification_failures", &m.verification_failures, "code"),
        ("cert_fetch_errors", &m.cert_fetch_errors, "kind"),
        ("capture_drops", &m.capture_drops, "where"),
        ("records_dropped", &m.records_dropped, "where"),
    ]
}

/// Counts by family and label value, as last logged.
pub struct ProblemLog {
    metrics: Arc<Metrics>,
    last: BTreeMap<(&'static str, String), u64>,
    since: Instant,
}

impl ProblemLog {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        ProblemLog {
            metrics,
            last: BTreeMap::new(),
            since: Instant::now(),
        }
    }

    /// The increase of every problem counter since the last call, per family: "kind=n ...".
    pub fn deltas(&mut self) -> BTreeMap<&'static str, String> {
        let mut out: BTreeMap<&'static str, String> = BTreeMap::new();
        for (field, family, label) in families(&self.metrics) {
            for (value, n) in Metrics::by_label(family, &[label]) {
                let before = self.last.entry((field, value.clone())).or_insert(0);
                if n > *before {
                    let s = out.entry(field).or_default();
                    if !s.is_empty() {
                        s.push(' ');
                    }
                    s.push_str(&format!("{value}={}", n - *before));
                    *before = n;
                }
            }
        }
        out
    }

    /// Writes one summary line if anything went wrong since the last one; true if it did.
    pub fn log(&mut self) -> bool {
        let d = self.deltas();
        let interval_s = self.since.elapsed().as_secs_f64();
        self.since = Instant::now();
        if d.is_empty() {
            return false;
        }
        let f = |k: &str| d.get(k).map_or("", String::as_str);
        tracing::warn!(
            target: "shaken_sensor::problems",
            interval_s = (interval_s * 10.0).round() / 10.0,
            decode_errors = f("decode_errors"),
            sip_parse_errors = f("sip_parse_errors"),
            verification_failures = f("verification_failures"),
            cert_fetch_errors = f("cert_fetch_errors"),
            capture_drops = f("capture_drops"),
            records_dropped = f("records_dropped"),
            "{SUMMARY_MESSAGE}"
        );
        self.metrics.log_summaries.inc();
        true
    }
}

/// The `log-summary` stage: one summary every `log.summary_interval_s`, and a last one when
/// it finishes (after the stages that count problems have ended).
pub struct Summaries {
    done: Shutdown,
    thread: thread::JoinHandle<()>,
}

impl Summaries {
    pub fn start(
        cfg: &crate::config::Config,
        shared: &super::stage::Shared,
    ) -> Result<Self, super::PipelineError> {
        let metrics = shared.metrics.clone();
        let interval = Duration::from_secs(cfg.log.summary_interval_s.max(1));
        // Its own token: a signal stops capture, this thread writes until the end.
        let done = Shutdown::new();
        let stop = done.clone();
        let thread = super::stage::spawn("log-summary".into(), move || {
            let mut log = ProblemLog::new(metrics);
            while !stop.wait_timeout(interval) {
                log.log();
            }
            log.log();
        })?;
        Ok(Summaries { done, thread })
    }
}

impl super::stage::Stage for Summaries {
    fn name(&self) -> &'static str {
        "log summary"
    }
    fn finish(self: Box<Self>) -> Result<(), super::PipelineError> {
        self.done.trigger();
        super::stage::join(self.thread, "log summary")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_hold_only_what_grew_since_the_last_summary() {
        let m = Arc::new(Metrics::new());
        let mut log = ProblemLog::new(m.clone());
        assert!(log.deltas().is_empty());
        m.decode_errors.with_label_values(&["truncated"]).inc_by(3);
        m.decode_errors.with_label_values(&["bad_ip"]).inc();
        m.verification_failures
            .with_label_values(&["438"])
            .inc_by(2);
        let d = log.deltas();
        assert_eq!(d["decode_errors"], "bad_ip=1 truncated=3");
        assert_eq!(d["verification_failures"], "438=2");
        assert_eq!(d.len(), 2);
        m.decode_errors.with_label_values(&["truncated"]).inc();
        let d = log.deltas();
        assert_eq!(d["decode_errors"], "truncated=1");
        assert_eq!(d.len(), 1);
        assert!(!log.log(), "nothing new: no line");
        assert_eq!(m.log_summaries.get(), 0);
        m.capture_drops.with_label_values(&["queue"]).inc_by(64);
        assert!(log.log());
        assert_eq!(m.log_summaries.get(), 1);
    }
}
