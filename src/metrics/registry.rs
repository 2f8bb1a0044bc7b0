//! The registry and typed handles. Created once by the pipeline and shared (`Arc`) by stages.

use super::latency::LatencyHub;
use super::names::*;
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use std::sync::Arc;

pub struct Metrics {
    pub registry: Registry,
    pub packets: IntCounterVec,
    pub capture_bytes: IntCounterVec,
    pub capture_drops: IntCounterVec,
    pub decode_errors: IntCounterVec,
    pub packets_ignored: IntCounter,
    pub duplicate_packets: IntCounter,
    pub reassembly_events: IntCounterVec,
    pub fragments_pending: IntGaugeVec,
    pub fragment_bytes: IntGaugeVec,
    pub tcp_streams_active: IntGaugeVec,
    pub tcp_buffered_bytes: IntGaugeVec,
    pub sip_messages: IntCounterVec,
    pub sip_parse_errors: IntCounterVec,
    pub invites: IntCounter,
    pub dialogs_active: IntGaugeVec,
    pub dialog_events: IntCounterVec,
    pub calls: IntCounterVec,
    pub records_written: IntCounter,
    pub records_dropped: IntCounterVec,
    pub verifications: IntCounterVec,
    pub verification_failures: IntCounterVec,
    pub verification_events: IntCounterVec,
    pub verifications_pending: IntGaugeVec,
    pub cert_cache_hits: IntCounter,
    pub cert_cache_misses: IntCounter,
    pub cert_fetch_errors: IntCounterVec,
    /// Cache state: entries, in_flight, evictions, crl_unavailable.
    pub cert_cache: IntGaugeVec,
    /// Traceback store writer: inserted, duplicates, batches, errors, partitions_dropped.
    pub store: IntGaugeVec,
    /// Per-stage latency (hdrhistogram inside), exported as a Prometheus histogram.
    pub latency: Arc<LatencyHub>,
    pub recently_closed: IntGaugeVec,
    pub recently_closed_evictions: IntCounter,
    pub replay_signatures: IntGauge,
    pub replay_signature_evictions: IntCounter,
    pub cert_notifications_dropped: IntCounter,
    pub batch_pool_events: IntCounterVec,
    pub config_reloads: IntCounterVec,
    pub component_healthy: IntGaugeVec,
    pub log_summaries: IntCounter,
    /// Collector push (docs/collector.md): spool size and backlog per class (detection, call).
    pub spool_bytes: IntGaugeVec,
    pub spool_records: IntGaugeVec,
    /// Push requests by outcome: delivered, retry, auth_failed, dead_letter.
    pub push_batches: IntCounterVec,
    /// Records that left the spool, by outcome: delivered, dead_letter.
    pub push_records: IntCounterVec,
    /// Undelivered records deleted by the spool's size cap, per class.
    pub records_shed: IntCounterVec,
    pub push_oldest_undelivered_seconds: IntGauge,
    pub spool_torn_tail: IntCounter,
    /// 1 while the collector refuses our credentials (401/403).
    pub push_auth_failing: IntGauge,
    /// Batches out for delivery at once, and how often that hit push.max_in_flight.
    pub push_in_flight: IntGauge,
    pub push_in_flight_full: IntCounter,
    /// DetectionEvents by rule and state.
    pub detections: IntCounterVec,
    /// Detection input lost (live only): calls at a full shard queue, events at the sink.
    pub detect_dropped: IntCounterVec,
    /// Keys with full detector state, per key kind.
    pub detect_keys: IntGaugeVec,
    /// Keys pushed out of a full detector key table, per key kind.
    pub detect_key_evictions: IntCounterVec,
    /// Calls a detector shard took before every worker had caught up (its reorder buffer full).
    pub detect_reorder_forced: IntCounter,
    pub hep_frames: IntCounterVec,
    pub hep_frames_dropped: IntCounterVec,
    pub hep_connections_active: IntGauge,
    pub hep_export_messages: IntCounterVec,
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
    r.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("static metric definition");
    r.register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("static metric definition");
    r.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let build = IntGaugeVec::new(
            Opts::new(BUILD_INFO, "Build of the running sensor"),
            &["version"],
        )
        .expect("static metric definition");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        r.register(Box::new(build)).expect("metric registered once");
        let dialogs_active = IntGaugeVec::new(
            Opts::new(DIALOGS_ACTIVE, "Calls being tracked, per worker"),
            &["worker"],
        )
        .expect("static metric definition");
        r.register(Box::new(dialogs_active.clone()))
            .expect("metric registered once");
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let g =
                IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition");
            r.register(Box::new(g.clone()))
                .expect("metric registered once");
            g
        };
        let verifications_pending = gauge_vec(
            VERIFICATIONS_PENDING,
            "Calls waiting for an x5u certificate, per worker",
            &["worker"],
        );
        let cert_cache = gauge_vec(
            CERT_CACHE,
            "x5u certificate cache state: entries, in_flight, evictions, crl_unavailable",
            &["stat"],
        );
        Metrics {
            packets: counter_vec(&r, PACKETS_TOTAL, "Frames read from a capture source", &["source"]),
            capture_bytes: counter_vec(&r, CAPTURE_BYTES_TOTAL, "Bytes of frames read", &["source"]),
            capture_drops: counter_vec(
                &r,
                CAPTURE_DROPS_TOTAL,
                "Packets or messages lost: kernel buffer, interface, or a full internal queue",
                &["where"],
            ),
            decode_errors: counter_vec(&r, DECODE_ERRORS_TOTAL, "Frames that failed to decode, by kind", &["kind"]),
            packets_ignored: counter(&r, PACKETS_IGNORED_TOTAL, "Frames that carry no SIP (other protocols or ports)"),
            duplicate_packets: counter(
                &r,
                DUPLICATE_PACKETS_TOTAL,
                "Linux cooked (\"any\") copies of a packet already seen on another interface, dropped",
            ),
            reassembly_events: counter_vec(
                &r,
                REASSEMBLY_EVENTS_TOTAL,
                "IP fragment and TCP stream reassembly events (completions, timeouts, evictions, limits hit)",
                &["table", "event"],
            ),
            fragments_pending: gauge_vec(FRAGMENTS_PENDING, "IP datagrams waiting for fragments", &["source"]),
            fragment_bytes: gauge_vec(FRAGMENT_BYTES, "Bytes held by incomplete IP datagrams", &["source"]),
            tcp_streams_active: gauge_vec(TCP_STREAMS_ACTIVE, "TCP stream directions tracked", &["source"]),
            tcp_buffered_bytes: gauge_vec(TCP_BUFFERED_BYTES, "Bytes buffered by TCP reassembly", &["source"]),
            sip_messages: counter_vec(
                &r,
                SIP_MESSAGES_TOTAL,
                "SIP messages parsed, by request method or response class",
                &["kind"],
            ),
            sip_parse_errors: counter_vec(&r, SIP_PARSE_ERRORS_TOTAL, "SIP messages that failed to parse, by kind", &["kind"]),
            invites: counter(&r, INVITES_TOTAL, "INVITE requests seen (retransmissions and re-INVITEs included)"),
            dialogs_active,
            dialog_events: counter_vec(
                &r,
                DIALOG_EVENTS_TOTAL,
                "Dialog events: retransmissions, re-INVITEs, unmatched in-dialog messages",
                &["event"],
            ),
            calls: counter_vec(&r, CALLS_TOTAL, "Calls closed, by who or what ended them", &["ended_by"]),
            records_written: counter(&r, RECORDS_WRITTEN_TOTAL, "CallRecords written to the output"),
            records_dropped: counter_vec(&r, RECORDS_DROPPED_TOTAL, "CallRecords lost, by stage", &["where"]),
            verifications: counter_vec(
                &r,
                VERIFICATIONS_TOTAL,
                "INVITEs verified, by verstat and attestation",
                &["verstat", "attest"],
            ),
            verification_failures: counter_vec(
                &r,
                VERIFICATION_FAILURES_TOTAL,
                "Failed verifications by SIP code (403, 436, 437, 438)",
                &["code"],
            ),
            verification_events: counter_vec(
                &r,
                VERIFICATION_EVENTS_TOTAL,
                "Verification events: replayed tokens, deadlines, pending set full, Identity overflow",
                &["event"],
            ),
            verifications_pending,
            cert_cache_hits: counter(&r, CERT_CACHE_HITS_TOTAL, "Certificate lookups answered from the cache (seeds included)"),
            cert_cache_misses: counter(&r, CERT_CACHE_MISSES_TOTAL, "Certificate lookups that started or joined a fetch"),
            cert_fetch_errors: counter_vec(
                &r,
                CERT_FETCH_ERRORS_TOTAL,
                "x5u fetches that failed, by kind (policy refusals included)",
                &["kind"],
            ),
            cert_cache,
            store: gauge_vec(
                STORE,
                "Traceback store writer totals: inserted, duplicates, batches, errors, partitions_dropped, dict_full (strings stored literally: a partition dictionary was full)",
                &["stat"],
            ),
            latency: {
                let hub = Arc::new(LatencyHub::new());
                r.register(Box::new(SharedHub(hub.clone())))
                    .expect("metric registered once");
                hub
            },
            recently_closed: gauge_vec(
                RECENTLY_CLOSED_CALLS,
                "Closed calls remembered per worker so their trailing messages are recognised",
                &["worker"],
            ),
            recently_closed_evictions: counter(
                &r,
                RECENTLY_CLOSED_EVICTIONS_TOTAL,
                "Closed calls forgotten early because the recently-closed set was full",
            ),
            replay_signatures: {
                let g = IntGauge::new(REPLAY_SIGNATURES, "PASSporT signatures remembered for replay detection")
                    .expect("static metric definition");
                r.register(Box::new(g.clone())).expect("metric registered once");
                g
            },
            replay_signature_evictions: counter(
                &r,
                REPLAY_SIGNATURE_EVICTIONS_TOTAL,
                "Signatures forgotten inside the freshness window because shaken.replay_entries was reached",
            ),
            cert_notifications_dropped: counter(
                &r,
                CERT_NOTIFICATIONS_DROPPED_TOTAL,
                "Certificate-ready notifications lost to a full worker channel (the call waits for its deadline)",
            ),
            batch_pool_events: counter_vec(
                &r,
                BATCH_POOL_EVENTS_TOTAL,
                "Message batch pool: allocated (pool empty), discarded (pool full)",
                &["event"],
            ),
            config_reloads: counter_vec(
                &r,
                CONFIG_RELOADS_TOTAL,
                "SIGHUP configuration reloads by result (success, failure)",
                &["result"],
            ),
            component_healthy: gauge_vec(
                COMPONENT_HEALTHY,
                "1 while a component is healthy, 0 otherwise (as /healthz reports)",
                &["component"],
            ),
            log_summaries: counter(
                &r,
                LOG_SUMMARIES_TOTAL,
                "Periodic log summaries of per-packet problems",
            ),
            spool_bytes: gauge_vec(SPOOL_BYTES, "Bytes of the push spool on disk, per class", &["class"]),
            spool_records: gauge_vec(SPOOL_RECORDS, "Records in the push spool not yet delivered, per class", &["class"]),
            push_batches: counter_vec(
                &r,
                PUSH_BATCHES_TOTAL,
                "Push requests to the collector by outcome: delivered, retry, auth_failed, dead_letter",
                &["outcome"],
            ),
            push_records: counter_vec(
                &r,
                PUSH_RECORDS_TOTAL,
                "Records that left the spool by outcome: delivered, dead_letter",
                &["outcome"],
            ),
            records_shed: counter_vec(
                &r,
                RECORDS_SHED_TOTAL,
                "Undelivered records deleted because the spool reached push.spool_max_mb, per class",
                &["class"],
            ),
            push_oldest_undelivered_seconds: gauge(
                &r,
                PUSH_OLDEST_UNDELIVERED_SECONDS,
                "Age of the oldest record waiting for delivery (0 when none)",
            ),
            spool_torn_tail: counter(
                &r,
                SPOOL_TORN_TAIL_TOTAL,
                "Spool segments whose torn or corrupt tail was truncated at start-up",
            ),
            push_auth_failing: gauge(
                &r,
                PUSH_AUTH_FAILING,
                "1 while the collector answers 401/403 to our token or certificate",
            ),
            push_in_flight: gauge(
                &r,
                PUSH_IN_FLIGHT,
                "Push batches out for delivery now (at most push.max_in_flight)",
            ),
            push_in_flight_full: counter(
                &r,
                PUSH_IN_FLIGHT_FULL_TOTAL,
                "Times records waited because push.max_in_flight batches were already out",
            ),
            detections: counter_vec(&r, DETECTIONS_TOTAL, "DetectionEvents emitted, by rule and state", &["rule", "state"]),
            detect_dropped: counter_vec(
                &r,
                DETECT_DROPPED_TOTAL,
                "Detection input lost at a full queue (live): calls (feature_queue) or events (event_queue)",
                &["where"],
            ),
            detect_keys: gauge_vec(DETECT_KEYS, "Keys with full detector state, by key kind", &["kind"]),
            detect_key_evictions: counter_vec(
                &r,
                DETECT_KEY_EVICTIONS_TOTAL,
                "Keys evicted from a full detector key table (detect.max_keys), by key kind",
                &["kind"],
            ),
            detect_reorder_forced: counter(
                &r,
                DETECT_REORDER_FORCED_TOTAL,
                "Detector inputs released out of the workers' merged time order because a shard's reorder buffer was full (a worker stalled)",
            ),
            hep_frames: counter_vec(&r, HEP_FRAMES_TOTAL, "HEP packets received, by transport", &["transport"]),
            hep_frames_dropped: counter_vec(
                &r,
                HEP_FRAMES_DROPPED_TOTAL,
                "HEP packets lost before decoding: queue, too_large, connections, stream",
                &["reason"],
            ),
            hep_connections_active: gauge(&r, HEP_CONNECTIONS_ACTIVE, "TCP connections of HEP agents being served"),
            hep_export_messages: counter_vec(
                &r,
                HEP_EXPORT_MESSAGES_TOTAL,
                "SIP messages exported over HEP, by outcome: sent, dropped, too_large, evicted",
                &["outcome"],
            ),
            registry: r,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = String::new();
        let families = self.registry.gather();
        if prometheus::TextEncoder::new()
            .encode_utf8(&families, &mut buf)
            .is_err()
        {
            buf.clear();
        }
        buf
    }

    /// Sum of a counter family over all label values (for summaries and tests).
    pub fn total(c: &IntCounterVec) -> u64 {
        use prometheus::core::Collector;
        c.collect()
            .iter()
            .flat_map(|mf| {
                mf.get_metric()
                    .iter()
                    .map(|m| m.get_counter().get_value() as u64)
            })
            .sum()
    }

    /// Each label combination of a counter family with its count, sorted; the key joins the
    /// values of `labels`, in that order, with '.'.
    pub fn by_label(c: &IntCounterVec, labels: &[&str]) -> Vec<(String, u64)> {
        use prometheus::core::Collector;
        let mut v: Vec<(String, u64)> = c
            .collect()
            .iter()
            .flat_map(|mf| {
                mf.get_metric().iter().map(|m| {
                    let value_of = |name: &str| {
                        m.get_label()
                            .iter()
                            .find(|l| l.name() == name)
                            .map_or("", |l| l.value())
                    };
                    let key = labels
                        .iter()
                        .map(|n| value_of(n))
                        .collect::<Vec<_>>()
                        .join(".");
                    (key, m.get_counter().get_value() as u64)
                })
            })
            .collect();
        v.sort();
        v
    }
}

/// Registers the shared hub (the registry wants an owned collector).
struct SharedHub(Arc<LatencyHub>);

impl prometheus::core::Collector for SharedHub {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        prometheus::core::Collector::desc(&*self.0)
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        prometheus::core::Collector::collect(&*self.0)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
