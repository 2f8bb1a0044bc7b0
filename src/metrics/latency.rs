//! Per-stage latency: each stage thread records into its own [`hdrhistogram`] (no lock, no
//! shared cache line per packet) and merges into the shared [`LatencyHub`] about once a second;
//! the hub is exported as the Prometheus histogram `shaken_sensor_stage_latency_seconds{stage}`
//! and summarised (p50/p90/p99/max) at the end of a replay.
//!
//! Definition. Latency is measured on *sampled* messages: one frame in [`SAMPLE_EVERY`] read by
//! a capture thread gets an arrival instant (monotonic wall clock, taken when libpcap hands the
//! frame over). Each stage then records "now − arrival" when it is done with that message:
//! - `capture` (live only): arrival − the frame's kernel timestamp: time spent in the kernel
//!   buffer before the capture thread read it;
//! - `decode`: until the framed SIP message was put into its worker's batch (link, IP,
//!   reassembly, framing);
//! - `parse`: until the worker parsed it (queue wait included);
//! - `verify`: until its INVITE's STIR/SHAKEN verdict was known (a certificate fetch included);
//! - `detect`: hook for the detection engine: its thread keeps a [`LocalLatency`] and records
//!   `record_since(Stage::Detect, arrival)` for records whose `CallRecord::trace` is set (the
//!   arrival of the sampled message that ended the call), calling `maybe_merge` per batch;
//! - `sink`: until the record of the call this message ended was written by the JSONL sink.
//!
//! A message produced by reassembly carries the arrival of the frame that completed it.
//! This module never takes a lock per packet and never allocates after start-up.

use super::names::STAGE_LATENCY_SECONDS;
use hdrhistogram::Histogram;
use prometheus::core::{Collector, Desc};
use prometheus::proto;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One frame in this many gets an arrival instant (a power of two: a mask test per frame).
pub const SAMPLE_EVERY: u64 = 64;
/// Stage threads merge their local histograms into the hub at most this often.
pub const MERGE_EVERY: Duration = Duration::from_secs(1);
/// Recorded in nanoseconds, 2 significant digits, up to an hour (longer is clamped).
const HIGHEST_NS: u64 = 3_600_000_000_000;
const SIGFIG: u8 = 2;
/// Prometheus bucket bounds, seconds.
const BUCKETS_S: [f64; 21] = [
    1e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Capture,
    Decode,
    Parse,
    Verify,
    Detect,
    Sink,
}

pub const STAGES: [Stage; 6] = [
    Stage::Capture,
    Stage::Decode,
    Stage::Parse,
    Stage::Verify,
    Stage::Detect,
    Stage::Sink,
];

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Stage::Capture => "capture",
            Stage::Decode => "decode",
            Stage::Parse => "parse",
            Stage::Verify => "verify",
            Stage::Detect => "detect",
            Stage::Sink => "sink",
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_NS, SIGFIG).expect("static histogram bounds")
}

/// Percentiles of one stage, microseconds.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct StageLatency {
    pub samples: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

/// The merged histograms of every stage thread; a Prometheus collector.
pub struct LatencyHub {
    stages: Mutex<Vec<Histogram<u64>>>,
    desc: Desc,
}

impl LatencyHub {
    pub fn new() -> Self {
        LatencyHub {
            stages: Mutex::new(STAGES.iter().map(|_| new_histogram()).collect()),
            desc: Desc::new(
                STAGE_LATENCY_SECONDS.into(),
                "Latency from a sampled packet's arrival at its capture thread to the end of \
                 each stage (hdrhistogram inside)"
                    .into(),
                vec!["stage".into()],
                Default::default(),
            )
            .expect("static metric definition"),
        }
    }

    fn merge(&self, local: &mut [Option<Histogram<u64>>; 6]) {
        let mut stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        for (hub, l) in stages.iter_mut().zip(local.iter_mut()) {
            if let Some(h) = l.as_mut().filter(|h| !h.is_empty()) {
                // Same bounds on both sides: adding cannot fail.
                let _ = hub.add(&*h);
                h.reset();
            }
        }
    }

    /// Percentiles per stage that has samples, keyed by stage label.
    pub fn summary(&self) -> BTreeMap<String, StageLatency> {
        let stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        STAGES
            .iter()
            .zip(stages.iter())
            .filter(|(_, h)| !h.is_empty())
            .map(|(s, h)| {
                let us = |ns: u64| ns as f64 / 1000.0;
                (
                    s.label().to_string(),
                    StageLatency {
                        samples: h.len(),
                        p50_us: us(h.value_at_quantile(0.5)),
                        p90_us: us(h.value_at_quantile(0.9)),
                        p99_us: us(h.value_at_quantile(0.99)),
                        max_us: us(h.max()),
                    },
                )
            })
            .collect()
    }
}

impl Default for LatencyHub {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector for LatencyHub {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        let metrics = STAGES
            .iter()
            .zip(stages.iter())
            .map(|(stage, h)| {
                let buckets = BUCKETS_S
                    .iter()
                    .map(|&bound| {
                        let mut b = proto::Bucket::default();
                        b.set_upper_bound(bound);
                        let count = if h.is_empty() {
                            0
                        } else {
                            h.count_between(0, (bound * 1e9) as u64)
                        };
                        b.set_cumulative_count(count);
                        b
                    })
                    .collect();
                let mut ph = proto::Histogram::default();
                ph.set_bucket(buckets);
                ph.set_sample_count(h.len());
                ph.set_sample_sum(if h.is_empty() {
                    0.0
                } else {
                    h.mean() * h.len() as f64 / 1e9
                });
                let mut label = proto::LabelPair::default();
                label.set_name("stage".into());
                label.set_value(stage.label().into());
                let mut m = proto::Metric::from_label(vec![label]);
                m.set_histogram(ph);
                m
            })
            .collect();
        let mut mf = proto::MetricFamily::default();
        mf.set_name(STAGE_LATENCY_SECONDS.into());
        mf.set_help(self.desc.help.clone());
        mf.set_field_type(proto::MetricType::HISTOGRAM);
        mf.set_metric(metrics);
        vec![mf]
    }
}

/// A stage thread's own histograms; merged into the hub by [`maybe_merge`](Self::maybe_merge)
/// and [`merge`](Self::merge). Not `Sync` on purpose: one per thread.
pub struct LocalLatency {
    hub: Arc<LatencyHub>,
    stages: [Option<Histogram<u64>>; 6],
    last_merge: Instant,
    dirty: bool,
}

impl LocalLatency {
    pub fn new(hub: Arc<LatencyHub>) -> Self {
        LocalLatency {
            hub,
            stages: Default::default(),
            last_merge: Instant::now(),
            dirty: false,
        }
    }

    pub fn record(&mut self, stage: Stage, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.stages[stage as usize]
            .get_or_insert_with(new_histogram)
            .saturating_record(ns);
        self.dirty = true;
    }

    pub fn record_since(&mut self, stage: Stage, arrival: Instant) {
        self.record(stage, arrival.elapsed());
    }

    /// Merges when something was recorded and [`MERGE_EVERY`] has passed.
    pub fn maybe_merge(&mut self) {
        if self.dirty && self.last_merge.elapsed() >= MERGE_EVERY {
            self.merge();
        }
    }

    /// Merges now (end of a stage thread).
    pub fn merge(&mut self) {
        if self.dirty {
            self.hub.merge(&mut self.stages);
            self.dirty = false;
        }
        self.last_merge = Instant::now();
    }
}

impl Drop for LocalLatency {
    fn drop(&mut self) {
        self.merge();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_samples_reach_the_hub_summary_and_the_prometheus_histogram() {
        let hub = Arc::new(LatencyHub::new());
        {
            let mut a = LocalLatency::new(hub.clone());
            for us in 1..=100u64 {
                a.record(Stage::Parse, Duration::from_micros(us));
            }
            a.maybe_merge(); // too early: nothing merged yet
            assert!(hub.summary().is_empty());
        } // dropped: merged
        let mut b = LocalLatency::new(hub.clone());
        b.record(Stage::Sink, Duration::from_millis(30));
        b.merge();
        let s = hub.summary();
        assert_eq!(s.keys().collect::<Vec<_>>(), ["parse", "sink"]);
        let p = &s["parse"];
        assert_eq!(p.samples, 100);
        // 2 significant digits: values are within 1% of the exact percentile.
        assert!((p.p50_us - 50.0).abs() <= 0.5, "{p:?}");
        assert!((p.p99_us - 99.0).abs() <= 1.0, "{p:?}");
        assert!((p.max_us - 100.0).abs() <= 1.0, "{p:?}");
        let families = hub.collect();
        let parse = families[0]
            .get_metric()
            .iter()
            .find(|m| m.get_label()[0].value() == "parse")
            .unwrap()
            .get_histogram();
        assert_eq!(parse.get_sample_count(), 100);
        let le = |bound: f64| {
            parse
                .get_bucket()
                .iter()
                .find(|b| b.upper_bound() == bound)
                .unwrap()
                .cumulative_count()
        };
        assert_eq!(le(1e-6), 1);
        assert_eq!(le(1e-5), 10);
        assert_eq!(le(5e-5), 50);
        assert_eq!(le(1e-4), 100);
        assert_eq!(le(10.0), 100);
    }
}
