//! Every metric name, in one place. Prefix `shaken_sensor_`, units in names, `_total` on counters.

pub const PACKETS_TOTAL: &str = "shaken_sensor_packets_total";
pub const CAPTURE_BYTES_TOTAL: &str = "shaken_sensor_capture_bytes_total";
pub const CAPTURE_DROPS_TOTAL: &str = "shaken_sensor_capture_drops_total";
pub const DECODE_ERRORS_TOTAL: &str = "shaken_sensor_decode_errors_total";
pub const PACKETS_IGNORED_TOTAL: &str = "shaken_sensor_packets_ignored_total";
pub const DUPLICATE_PACKETS_TOTAL: &str = "shaken_sensor_duplicate_packets_total";
pub const REASSEMBLY_EVENTS_TOTAL: &str = "shaken_sensor_reassembly_events_total";
pub const FRAGMENTS_PENDING: &str = "shaken_sensor_fragments_pending";
pub const FRAGMENT_BYTES: &str = "shaken_sensor_fragment_bytes";
pub const TCP_STREAMS_ACTIVE: &str = "shaken_sensor_tcp_streams_active";
pub const TCP_BUFFERED_BYTES: &str = "shaken_sensor_tcp_buffered_bytes";
pub const SIP_MESSAGES_TOTAL: &str = "shaken_sensor_sip_messages_total";
pub const SIP_PARSE_ERRORS_TOTAL: &str = "shaken_sensor_sip_parse_errors_total";
pub const INVITES_TOTAL: &str = "shaken_sensor_invites_total";
pub const DIALOGS_ACTIVE: &str = "shaken_sensor_dialogs_active";
pub const DIALOG_EVENTS_TOTAL: &str = "shaken_sensor_dialog_events_total";
pub const CALLS_TOTAL: &str = "shaken_sensor_calls_total";
pub const RECORDS_WRITTEN_TOTAL: &str = "shaken_sensor_records_written_total";
pub const RECORDS_DROPPED_TOTAL: &str = "shaken_sensor_records_dropped_total";
pub const BUILD_INFO: &str = "shaken_sensor_build_info";
pub const VERIFICATIONS_TOTAL: &str = "shaken_sensor_verifications_total";
pub const VERIFICATION_FAILURES_TOTAL: &str = "shaken_sensor_verification_failures_total";
pub const VERIFICATION_EVENTS_TOTAL: &str = "shaken_sensor_verification_events_total";
pub const VERIFICATIONS_PENDING: &str = "shaken_sensor_verifications_pending";
pub const CERT_CACHE: &str = "shaken_sensor_cert_cache";
pub const CERT_CACHE_HITS_TOTAL: &str = "shaken_sensor_cert_cache_hits_total";
pub const CERT_CACHE_MISSES_TOTAL: &str = "shaken_sensor_cert_cache_misses_total";
pub const CERT_FETCH_ERRORS_TOTAL: &str = "shaken_sensor_cert_fetch_errors_total";
pub const STORE: &str = "shaken_sensor_traceback_store";

// Operability (issue #8): latency, bounded structures, reloads, health.
/// Histogram (seconds) per pipeline stage, from a sampled packet's arrival at its capture
/// thread to the end of that stage; see `metrics::latency`.
pub const STAGE_LATENCY_SECONDS: &str = "shaken_sensor_stage_latency_seconds";
/// Calls remembered per worker after they closed (their trailing ACK/200 are recognised).
pub const RECENTLY_CLOSED_CALLS: &str = "shaken_sensor_recently_closed_calls";
/// Closed calls forgotten before their linger time ended because the set was full.
pub const RECENTLY_CLOSED_EVICTIONS_TOTAL: &str = "shaken_sensor_recently_closed_evictions_total";
/// PASSporT signatures remembered for replay detection.
pub const REPLAY_SIGNATURES: &str = "shaken_sensor_replay_signatures";
/// Signatures forgotten inside the freshness window because `shaken.replay_entries` was reached.
pub const REPLAY_SIGNATURE_EVICTIONS_TOTAL: &str = "shaken_sensor_replay_signature_evictions_total";
/// Certificate-ready notifications lost to a full per-worker channel (the call then waits for
/// its deadline instead of its certificate).
pub const CERT_NOTIFICATIONS_DROPPED_TOTAL: &str = "shaken_sensor_cert_notifications_dropped_total";
/// Batch buffer pool: `allocated` (pool empty, a new batch was made), `discarded` (pool full).
pub const BATCH_POOL_EVENTS_TOTAL: &str = "shaken_sensor_batch_pool_events_total";
/// SIGHUP reloads by result: `success`, `failure` (the old configuration stays in force).
pub const CONFIG_RELOADS_TOTAL: &str = "shaken_sensor_config_reloads_total";
/// 1 per component while it is healthy, 0 otherwise (what /healthz reports).
pub const COMPONENT_HEALTHY: &str = "shaken_sensor_component_healthy";
/// Periodic log summaries of per-packet problems written (instead of a line per packet).
pub const LOG_SUMMARIES_TOTAL: &str = "shaken_sensor_log_summaries_total";
pub const SPOOL_BYTES: &str = "shaken_sensor_spool_bytes";
pub const SPOOL_RECORDS: &str = "shaken_sensor_spool_records";
pub const PUSH_BATCHES_TOTAL: &str = "shaken_sensor_push_batches_total";
pub const PUSH_RECORDS_TOTAL: &str = "shaken_sensor_push_records_total";
pub const RECORDS_SHED_TOTAL: &str = "shaken_sensor_records_shed_total";
pub const PUSH_OLDEST_UNDELIVERED_SECONDS: &str = "shaken_sensor_push_oldest_undelivered_seconds";
pub const SPOOL_TORN_TAIL_TOTAL: &str = "shaken_sensor_spool_torn_tail_total";
pub const PUSH_AUTH_FAILING: &str = "shaken_sensor_push_auth_failing";
/// Push batches out for delivery now; at push.max_in_flight the pusher sends no more.
pub const PUSH_IN_FLIGHT: &str = "shaken_sensor_push_in_flight";
/// Times the pusher had records to send and push.max_in_flight batches already out.
pub const PUSH_IN_FLIGHT_FULL_TOTAL: &str = "shaken_sensor_push_in_flight_full_total";
pub const DETECTIONS_TOTAL: &str = "shaken_sensor_detections_total";
pub const DETECT_DROPPED_TOTAL: &str = "shaken_sensor_detect_dropped_total";
pub const DETECT_KEYS: &str = "shaken_sensor_detect_keys";
pub const DETECT_KEY_EVICTIONS_TOTAL: &str = "shaken_sensor_detect_key_evictions_total";
pub const DETECT_REORDER_FORCED_TOTAL: &str = "shaken_sensor_detect_reorder_forced_total";

// HEP input and output (issue #16).
/// HEP packets received by the listeners, by transport (udp, tcp).
pub const HEP_FRAMES_TOTAL: &str = "shaken_sensor_hep_frames_total";
/// HEP packets lost before decoding: `queue` (full), `too_large` (capture.hep.max_frame_bytes),
/// `connections` (a TCP connection refused at capture.hep.max_connections), `stream` (a TCP
/// stream that is not HEPv3, closed).
pub const HEP_FRAMES_DROPPED_TOTAL: &str = "shaken_sensor_hep_frames_dropped_total";
/// TCP connections of HEP agents being served.
pub const HEP_CONNECTIONS_ACTIVE: &str = "shaken_sensor_hep_connections_active";
/// SIP messages exported over HEP (`[export.hep]`), by outcome: sent, dropped (queue full or
/// send failed), too_large, evicted (buffered messages pushed out by the byte cap).
pub const HEP_EXPORT_MESSAGES_TOTAL: &str = "shaken_sensor_hep_export_messages_total";

// HTTP layer (crates/shaken-httpd, issue #18), which names them `<prefix>_http_…` itself; they
// are listed here for the dashboard (a test checks both agree). The collector exposes the same
// series with the prefix `shaken_collector_` instead of `shaken_sensor_`.
/// Connections open now.
pub const HTTP_CONNECTIONS_ACTIVE: &str = "shaken_sensor_http_connections_active";
/// Connections closed at accept: `cap` (max_connections reached), `accept_error` (e.g. EMFILE).
pub const HTTP_CONNECTIONS_REFUSED_TOTAL: &str = "shaken_sensor_http_connections_refused_total";
/// Requests refused before their handler finished: `overloaded` (max_in_flight), `unauthorized`,
/// `no_token`, `body_too_large`, `body_timeout`, `body_error`.
pub const HTTP_REQUESTS_REJECTED_TOTAL: &str = "shaken_sensor_http_requests_rejected_total";
/// Connections cut by a timeout: `header`, `body`, `idle`, `drain`.
pub const HTTP_TIMEOUTS_TOTAL: &str = "shaken_sensor_http_timeouts_total";

#[cfg(test)]
mod tests {
    #[test]
    fn the_http_layer_registers_the_names_listed_here() {
        let registry = prometheus::Registry::new();
        crate::httpd::HttpdMetrics::register(&registry, "shaken_sensor");
        let mut got: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        got.sort();
        let mut want = [
            super::HTTP_CONNECTIONS_ACTIVE,
            super::HTTP_CONNECTIONS_REFUSED_TOTAL,
            super::HTTP_REQUESTS_REJECTED_TOTAL,
            super::HTTP_TIMEOUTS_TOTAL,
        ];
        want.sort();
        assert_eq!(got, want);
    }
}
