//! Every metric name, in one place. Prefix `shaken_sensor_`, units in names, `_total` on counters.

pub const PACKETS_TOTAL: &str = "shaken_sensor_packets_total";
pub const CAPTURE_BYTES_TOTAL: &str = "shaken_sensor_capture_bytes_total";
pub const CAPTURE_DROPS_TOTAL: &str = "shaken_sensor_capture_drops_total";
pub const DECODE_ERRORS_TOTAL: &str = "shaken_sensor_decode_errors_total";
pub const PACKETS_IGNORED_TOTAL: &str = "shaken_sensor_packets_ignored_total";
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
