//! The end-of-run summary (replay): what was read, what it held, what went wrong. Built from
//! the metrics, so the summary and `/metrics` can never disagree.

use crate::metrics::latency::StageLatency;
use crate::metrics::Metrics;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Summary {
    pub packets: u64,
    pub bytes: u64,
    pub packets_ignored: u64,
    /// Copies of a packet a Linux cooked ("any") capture saw on a second interface, dropped.
    pub duplicate_packets: u64,
    pub sip_messages: u64,
    pub sip_by_kind: BTreeMap<String, u64>,
    pub invites: u64,
    pub calls: u64,
    pub calls_by_end: BTreeMap<String, u64>,
    pub records_written: u64,
    pub records_dropped: u64,
    /// Verdicts by "verstat.attest" (attest "none" for unsigned calls).
    pub verifications: BTreeMap<String, u64>,
    /// Failed verifications by SIP code.
    pub verification_failures: BTreeMap<String, u64>,
    pub decode_errors: BTreeMap<String, u64>,
    pub sip_parse_errors: BTreeMap<String, u64>,
    pub capture_drops: BTreeMap<String, u64>,
    pub dialog_events: BTreeMap<String, u64>,
    pub reassembly_events: BTreeMap<String, u64>,
    pub elapsed_s: f64,
    pub packets_per_s: f64,
    pub sip_messages_per_s: f64,
    pub invites_per_s: f64,
    /// Per-stage latency percentiles of the sampled messages (see `metrics::latency`).
    pub stage_latency: BTreeMap<String, StageLatency>,
}

fn map(c: &prometheus::IntCounterVec, labels: &[&str]) -> BTreeMap<String, u64> {
    Metrics::by_label(c, labels)
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
}

impl Summary {
    pub fn from_metrics(m: &Metrics, elapsed_s: f64) -> Self {
        let sip_by_kind = map(&m.sip_messages, &["kind"]);
        let sip_messages = sip_by_kind.values().sum();
        let calls_by_end = map(&m.calls, &["ended_by"]);
        let packets = Metrics::total(&m.packets);
        let invites = m.invites.get();
        let rate = |n: u64| {
            if elapsed_s > 0.0 {
                n as f64 / elapsed_s
            } else {
                0.0
            }
        };
        Summary {
            packets,
            bytes: Metrics::total(&m.capture_bytes),
            packets_ignored: m.packets_ignored.get(),
            duplicate_packets: m.duplicate_packets.get(),
            sip_messages,
            sip_by_kind,
            invites,
            calls: calls_by_end.values().sum(),
            calls_by_end,
            records_written: m.records_written.get(),
            records_dropped: Metrics::total(&m.records_dropped),
            verifications: map(&m.verifications, &["verstat", "attest"]),
            verification_failures: map(&m.verification_failures, &["code"]),
            decode_errors: map(&m.decode_errors, &["kind"]),
            sip_parse_errors: map(&m.sip_parse_errors, &["kind"]),
            capture_drops: map(&m.capture_drops, &["where"]),
            dialog_events: map(&m.dialog_events, &["event"]),
            reassembly_events: map(&m.reassembly_events, &["table", "event"]),
            elapsed_s,
            packets_per_s: rate(packets),
            sip_messages_per_s: rate(sip_messages),
            invites_per_s: rate(invites),
            stage_latency: m.latency.summary(),
        }
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let list = |m: &BTreeMap<String, u64>| {
            if m.is_empty() {
                "none".to_string()
            } else {
                m.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        let _ = writeln!(
            s,
            "packets: {} ({:.1} MB, {} without SIP) in {:.2} s ({:.0} packets/s)",
            self.packets,
            self.bytes as f64 / 1e6,
            self.packets_ignored,
            self.elapsed_s,
            self.packets_per_s
        );
        if self.duplicate_packets > 0 {
            let _ = writeln!(
                s,
                "copies dropped: {} (the same packet seen on a second interface of \"any\")",
                self.duplicate_packets
            );
        }
        let _ = writeln!(
            s,
            "SIP messages: {} ({})",
            self.sip_messages,
            list(&self.sip_by_kind)
        );
        let _ = writeln!(s, "INVITEs: {} ({:.0}/s)", self.invites, self.invites_per_s);
        let _ = writeln!(s, "calls: {} ({})", self.calls, list(&self.calls_by_end));
        let _ = writeln!(
            s,
            "records written: {} (dropped: {})",
            self.records_written, self.records_dropped
        );
        if !self.verifications.is_empty() {
            let _ = writeln!(s, "verifications: {}", list(&self.verifications));
        }
        let _ = writeln!(s, "decode errors: {}", list(&self.decode_errors));
        let _ = writeln!(s, "SIP parse errors: {}", list(&self.sip_parse_errors));
        if !self.capture_drops.is_empty() {
            let _ = writeln!(s, "capture drops: {}", list(&self.capture_drops));
        }
        // Pipeline order, not alphabetical.
        let order = crate::metrics::latency::STAGES.map(|st| st.label());
        for stage in order {
            if let Some(l) = self.stage_latency.get(stage) {
                let _ = writeln!(
                    s,
                    "latency {stage:<7} (arrival to end of stage, {} samples): p50 {:.1} µs  p90 {:.1} µs  p99 {:.1} µs  max {:.1} µs",
                    l.samples, l.p50_us, l.p90_us, l.p99_us, l.max_us
                );
            }
        }
        s
    }
}
