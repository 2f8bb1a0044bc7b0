//! The configuration structs and their defaults. `config/sensor.toml` mirrors these defaults
//! key for key; a test keeps the two in step.

use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub sensor: SensorConfig,
    pub log: LogConfig,
    pub capture: CaptureConfig,
    pub sip: SipConfig,
    pub dialog: DialogConfig,
    pub output: OutputConfig,
    pub shaken: ShakenConfig,
    pub traceback: TracebackConfig,
    pub http: HttpConfig,
    pub push: PushConfig,
    pub peers: Vec<PeerConfig>,
    pub detect: DetectConfig,
    pub export: ExportConfig,
}

/// Exports beside the collector push.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExportConfig {
    pub hep: HepExportConfig,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HepExportMode {
    /// The messages of the sample calls of each DetectionEvent that opens.
    Detections,
    /// Every SIP message, as it is captured.
    All,
}

/// HEP output (`[export.hep]`) to a HOMER / heplify-server endpoint.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HepExportConfig {
    pub enabled: bool,
    /// UDP ip:port of the HEP receiver.
    pub address: String,
    pub mode: HepExportMode,
    /// Capture agent id the sensor sends as (chunk 0x000c).
    pub capture_id: u32,
    /// Sent in the auth key chunk when not empty.
    pub auth_key: String,
    /// Messages queued between capture and the exporter; when full they are dropped.
    pub queue_messages: usize,
    /// `detections` mode: bytes of recent calls' messages held for a detection that may name them.
    pub buffer_mb: usize,
    /// `detections` mode: how long (packet time) a call's messages are held.
    pub retain_s: u64,
}

impl Default for HepExportConfig {
    fn default() -> Self {
        HepExportConfig {
            enabled: false,
            address: "127.0.0.1:9060".into(),
            mode: HepExportMode::Detections,
            capture_id: 0,
            auth_key: String::new(),
            queue_messages: 65536,
            buffer_mb: 64,
            retain_s: 900,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SensorConfig {
    /// Names this sensor in every record it emits.
    pub id: String,
    /// Worker threads for parsing, dialogs and verification; 0 means one per core.
    pub workers: usize,
}

impl Default for SensorConfig {
    fn default() -> Self {
        SensorConfig {
            id: "sensor-1".into(),
            workers: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter directive: "info", "shaken_sensor=debug", ...
    pub level: String,
    /// Period of the summaries that replace per-packet warnings.
    pub summary_interval_s: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            level: "info".into(),
            summary_interval_s: 60,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// Interfaces for `run`; "any" captures on all of them (Linux cooked link type).
    pub interfaces: Vec<String>,
    pub snaplen: u32,
    /// Kernel capture buffer per interface.
    pub buffer_size_mb: u32,
    pub promiscuous: bool,
    /// BPF filter for live capture; "auto" derives one from `sip_ports` that also keeps every
    /// IP fragment and IP-in-IP/GRE tunnels (a port filter alone loses the tail of a large INVITE).
    pub bpf_filter: String,
    /// UDP and TCP ports on which payloads are treated as SIP.
    pub sip_ports: Vec<u16>,
    /// Also recognise SIP by its start line on any other port (costs a few bytes' look per packet).
    pub detect_sip_on_any_port: bool,
    /// Largest SIP message accepted (bytes); larger ones are counted and dropped.
    pub max_message_bytes: usize,
    /// How often libpcap's kernel and interface drop counters are read (live).
    pub stats_interval_s: u64,
    /// Batches queued per worker before capture drops (live) or waits (replay).
    pub queue_batches: usize,
    /// Linux cooked captures ("any"): a packet seen again within this many ms is a copy from
    /// a second interface and is dropped (counted); 0 keeps every copy.
    pub dedup_window_ms: u64,
    pub defrag: DefragConfig,
    pub tcp: TcpConfig,
    pub hep: HepConfig,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            interfaces: vec!["any".into()],
            snaplen: 65535,
            buffer_size_mb: 64,
            promiscuous: false,
            bpf_filter: "auto".into(),
            sip_ports: vec![5060, 5080],
            detect_sip_on_any_port: false,
            max_message_bytes: 65535,
            stats_interval_s: 10,
            queue_batches: 128,
            dedup_window_ms: 10,
            defrag: DefragConfig::default(),
            tcp: TcpConfig::default(),
            hep: HepConfig::default(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DefragConfig {
    pub max_datagrams: usize,
    pub max_bytes_mb: usize,
    pub timeout_s: u64,
}

impl Default for DefragConfig {
    fn default() -> Self {
        DefragConfig {
            max_datagrams: 4096,
            max_bytes_mb: 64,
            timeout_s: 30,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TcpConfig {
    pub max_streams: usize,
    pub max_stream_kb: usize,
    pub max_total_mb: usize,
    pub idle_timeout_s: u64,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            max_streams: 65536,
            max_stream_kb: 256,
            max_total_mb: 128,
            idle_timeout_s: 300,
        }
    }
}

/// HEP input (`[capture.hep]`): SIP mirrored by proxies and SBCs over HEPv1/v2/v3.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HepConfig {
    /// Runs the HEP listeners with `run` (beside the interfaces, or alone when there are none).
    pub enabled: bool,
    /// UDP address to receive HEP on; "" for none.
    pub listen_udp: String,
    /// TCP address to accept HEPv3 streams on; "" for none.
    pub listen_tcp: String,
    /// When not empty, packets without exactly this auth key chunk are refused and counted.
    pub auth_key: String,
    /// Largest HEP packet accepted (bytes); larger ones are counted and dropped.
    pub max_frame_bytes: usize,
    /// TCP connections served at once; more are refused and counted.
    pub max_connections: usize,
    /// HEP packets queued between the listeners and decoding; when full they are dropped.
    pub queue_frames: usize,
    /// Kernel receive buffer of the UDP socket, MiB (capped by net.core.rmem_max).
    pub udp_buffer_mb: usize,
    /// How long SIP from HEP is held so an INVITE mirrored late can overtake its responses
    /// (0: no hold).
    pub reorder_ms: u64,
    /// UDP destination ports whose payload is decoded as HEP when read by libpcap (replay of a
    /// capture of a HEP feed, or a live tap that sees one).
    pub pcap_ports: Vec<u16>,
    /// When not empty, only messages to or from one of these ports are used: a proxy that keeps
    /// the Call-ID mirrors both legs of each call, and one Call-ID is one call to the sensor.
    pub leg_ports: Vec<u16>,
}

impl Default for HepConfig {
    fn default() -> Self {
        HepConfig {
            enabled: false,
            listen_udp: "0.0.0.0:9060".into(),
            listen_tcp: String::new(),
            auth_key: String::new(),
            max_frame_bytes: 65535,
            max_connections: 64,
            queue_frames: 16384,
            udp_buffer_mb: 4,
            reorder_ms: 50,
            pcap_ports: vec![9060],
            leg_ports: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    pub max_headers: usize,
    pub max_header_line: usize,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            max_headers: 256,
            max_header_line: 8192,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DialogConfig {
    /// Calls tracked at once (all workers together); when full the oldest is closed as a record.
    pub max_dialogs: usize,
    /// An INVITE with no final response after this long is closed as timed out.
    pub invite_timeout_s: u64,
    /// An answered call with no BYE after this long is closed as timed out.
    pub max_call_duration_s: u64,
}

impl Default for DialogConfig {
    fn default() -> Self {
        DialogConfig {
            max_dialogs: 100_000,
            invite_timeout_s: 180,
            max_call_duration_s: 14_400,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// CallRecords as JSON lines: a file path, "-" for stdout, "" for none.
    pub records: String,
    /// Records queued for the writer before workers wait (replay) or drop and count (live).
    pub queue_records: usize,
    /// DetectionEvents as JSON lines: a file path, "-" for stdout, "" for none.
    pub detections: String,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            records: "-".into(),
            queue_records: 4096,
            detections: String::new(),
        }
    }
}

/// An upstream peer: calls arriving from these source addresses were handed to us by it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub name: String,
    /// Operating Company Number of the peer, as used in tracebacks.
    #[serde(default)]
    pub ocn: String,
    pub cidrs: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ShakenConfig {
    /// Verify the Identity headers of every INVITE.
    pub enabled: bool,
    /// PEM files or directories of them: the STI-CA roots (and pinned intermediates) trusted.
    pub trust_anchors: Vec<String>,
    /// Largest |now - iat| accepted, seconds.
    pub max_iat_age_s: u64,
    /// Certificates served from files instead of fetched: x5u URL and PEM file.
    pub certs: Vec<SeededCert>,
    /// INVITEs waiting for a certificate, over all workers; beyond it they get 436 at once.
    pub max_pending: usize,
    /// Signatures remembered for replay detection.
    pub replay_entries: usize,
    /// Revocation checks against the leaf's CRL distribution point.
    pub crl: CrlMode,
    pub x5u: X5uConfig,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CrlMode {
    /// No revocation checks.
    Off,
    /// A revoked certificate fails (437); a CRL that cannot be had (yet) lets the call pass
    /// and is counted.
    Soft,
    /// Also fail (437) when the CRL cannot be had or is stale.
    Hard,
}

impl Default for ShakenConfig {
    fn default() -> Self {
        ShakenConfig {
            enabled: true,
            trust_anchors: Vec::new(),
            max_iat_age_s: 60,
            certs: Vec::new(),
            max_pending: 10_000,
            replay_entries: 1_000_000,
            crl: CrlMode::Soft,
            x5u: X5uConfig::default(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeededCert {
    pub url: String,
    pub file: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct X5uConfig {
    /// Fetch x5u certificates (off: only `certs` are used; others give 436).
    pub fetch: bool,
    /// Allow http: URLs (labs and tests only).
    pub allow_http: bool,
    /// Allow x5u hosts that resolve to loopback, private or link-local addresses.
    pub allow_private: bool,
    /// "host" or "host:port" allowed to resolve to such addresses.
    pub allowed_hosts: Vec<String>,
    pub max_bytes: usize,
    pub timeout_ms: u64,
    /// Fetched certificates (and failures) cached at most.
    pub cache_entries: usize,
}

impl Default for X5uConfig {
    fn default() -> Self {
        X5uConfig {
            fetch: true,
            allow_http: false,
            allow_private: false,
            allowed_hosts: Vec::new(),
            max_bytes: 65_536,
            timeout_ms: 4000,
            cache_entries: 10_000,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TracebackConfig {
    /// Keep every CallRecord in the local traceback store (`run`; `replay` only with --store).
    pub enabled: bool,
    /// One SQLite file per UTC day lives here.
    pub dir: String,
    /// Partitions older than this are dropped.
    pub retention_days: u32,
    /// When the store grows past this, the oldest partitions are dropped first.
    pub max_disk_mb: u64,
    /// A record is committed at most this long after its call ends.
    pub flush_ms: u64,
    /// Records queued for the store writer (replay waits when full; live drops and counts).
    pub queue_records: usize,
}

impl Default for TracebackConfig {
    fn default() -> Self {
        TracebackConfig {
            enabled: true,
            dir: "/var/lib/shaken-sensor/store".into(),
            retention_days: 30,
            max_disk_mb: 10_240,
            flush_ms: 1000,
            queue_records: 16_384,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address of /metrics, /healthz and the traceback API (`run` only); "" disables it.
    pub bind: String,
    /// Bearer token the traceback API requires; empty means the API refuses every request.
    pub token: String,
    /// Seconds a request header may take to arrive (slowloris guard; docs/http-limits.md).
    pub header_timeout_s: u64,
    /// Seconds a request body may take to arrive once its handler reads it.
    pub body_timeout_s: u64,
    /// Seconds a connection may sit with no request in flight and no byte moving.
    pub keepalive_idle_s: u64,
    /// Open connections; more are closed at accept and counted.
    pub max_connections: usize,
    /// Requests handled at once; more get 503.
    pub max_in_flight: usize,
    /// Largest request body, KiB.
    pub max_body_kb: usize,
    /// Seconds open connections get to finish at shutdown before they are cut.
    pub drain_timeout_s: u64,
    /// Calls returned in total by one traceback request (all its queries together); past it
    /// the answer says `"truncated": true`.
    pub traceback_max_calls: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        let l = crate::httpd::Limits::default();
        HttpConfig {
            bind: "127.0.0.1:9464".into(),
            token: String::new(),
            header_timeout_s: l.header_timeout.as_secs(),
            body_timeout_s: l.body_timeout.as_secs(),
            keepalive_idle_s: l.idle_timeout.as_secs(),
            max_connections: l.max_connections,
            max_in_flight: l.max_in_flight,
            max_body_kb: l.max_body_bytes >> 10,
            drain_timeout_s: l.drain_timeout.as_secs(),
            traceback_max_calls: crate::traceback::query::MAX_REQUEST_CALLS,
        }
    }
}

impl HttpConfig {
    /// The HTTP layer's limits this section sets.
    pub fn limits(&self) -> crate::httpd::Limits {
        use std::time::Duration;
        crate::httpd::Limits {
            header_timeout: Duration::from_secs(self.header_timeout_s),
            body_timeout: Duration::from_secs(self.body_timeout_s),
            idle_timeout: Duration::from_secs(self.keepalive_idle_s),
            max_connections: self.max_connections,
            max_in_flight: self.max_in_flight,
            max_body_bytes: self.max_body_kb << 10,
            drain_timeout: Duration::from_secs(self.drain_timeout_s),
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PushFsync {
    /// fsync the spool after every appended batch.
    EveryBatch,
    /// fsync at most every `fsync_interval_ms`.
    Interval,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// Deliver CallRecords and DetectionEvents to the collector (`run`, and `replay`).
    pub enabled: bool,
    /// Base URL of the collector; records go to `{url}/v1/ingest`.
    pub url: String,
    /// Bearer token; or read from `token_file` (exactly one of the two when enabled).
    pub token: String,
    pub token_file: String,
    /// Allow an http: URL (labs and tests only).
    pub allow_http: bool,
    /// Extra PEM CA bundle trusted for the collector (besides the public roots).
    pub ca_file: String,
    /// Client certificate and key (PEM) for mutual TLS; both or neither.
    pub client_cert_file: String,
    pub client_key_file: String,
    /// The durable spool: records wait here until the collector has them.
    pub spool_dir: String,
    /// Cap of the spool on disk; past it the oldest CallRecords are shed (counted).
    pub spool_max_mb: u64,
    pub fsync: PushFsync,
    pub fsync_interval_ms: u64,
    /// Records queued in memory for the spool writer (live drops and counts when full).
    pub queue_records: usize,
    pub batch_max_records: usize,
    pub batch_max_bytes: usize,
    /// Batches out for delivery at once; the spool's ack point still moves only over a
    /// contiguous run of delivered ones.
    pub max_in_flight: usize,
    /// Whole-request deadline.
    pub timeout_ms: u64,
    /// Retry delays: exponential from initial to max, with jitter; Retry-After is honoured.
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// Batches the collector refuses (4xx other than 401/403/408/429) are written here.
    pub dead_letter_dir: String,
    /// Cap of the dead-letter folder; past it refused batches are only logged and counted.
    pub dead_letter_max_mb: u64,
    /// At shutdown, wait at most this long for delivery; the rest stays in the spool.
    pub drain_timeout_s: u64,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            enabled: false,
            url: String::new(),
            token: String::new(),
            token_file: String::new(),
            allow_http: false,
            ca_file: String::new(),
            client_cert_file: String::new(),
            client_key_file: String::new(),
            spool_dir: "/var/lib/shaken-sensor/spool".into(),
            spool_max_mb: 1024,
            fsync: PushFsync::EveryBatch,
            fsync_interval_ms: 1000,
            queue_records: 16_384,
            batch_max_records: 2000,
            batch_max_bytes: 4_194_304,
            max_in_flight: 4,
            timeout_ms: 10_000,
            backoff_initial_ms: 500,
            backoff_max_ms: 60_000,
            dead_letter_dir: "/var/lib/shaken-sensor/dead-letter".into(),
            dead_letter_max_mb: 1024,
            drain_timeout_s: 10,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Run the campaign detectors (docs/detection.md).
    pub enabled: bool,
    /// Detector threads; each key (fingerprint, peer, origid, caller) belongs to one of them.
    pub shards: usize,
    /// Batches of call features queued per shard before workers drop and count (live) or wait
    /// (replay).
    pub queue_batches: usize,
    /// Keys with full state (exact windows, samples) per key kind; beyond it the lightest key
    /// is evicted (counted in shaken_sensor_detect_key_evictions_total).
    pub max_keys: usize,
    /// Count-Min sketch width (cells per row, 4 rows) per key kind, for admission.
    pub sketch_width: usize,
    /// Calls a key needs (Count-Min estimate, last one to two minutes) to earn full state.
    pub promote_calls: u32,
    /// An open detection is re-announced (state "updated") this often while its rule holds.
    pub update_s: u64,
    /// An open detection is closed once its rule has not held for this long.
    pub quiet_s: u64,
    /// Seconds of traffic before a key without history can count as a new burst.
    pub warmup_s: u64,
    pub rules: DetectRules,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            enabled: true,
            shards: 1,
            queue_batches: 1024,
            max_keys: 2048,
            sketch_width: 65_536,
            promote_calls: 3,
            update_s: 60,
            quiet_s: 120,
            warmup_s: 300,
            rules: DetectRules::default(),
        }
    }
}

/// Thresholds of the detection rules. Every rule needs volume (a minimum of calls in a window)
/// and a badness signal (a share of calls with a bad trait), so a legitimate bulk sender
/// (stable, signed caller IDs, normal answer behaviour) never fires.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DetectRules {
    /// neighbour_spoofing: calls in the window, share whose caller NPA-NXX is the callee's
    /// (or caller = callee), and distinct callers per call (the caller ID rotates).
    pub neighbour_min_calls: u32,
    pub neighbour_min_share: f64,
    pub neighbour_min_caller_churn: f64,
    /// origid_caller_churn: distinct caller IDs within a minute behind one origid or signed
    /// fingerprint, their ratio to calls, and (origid keys) the share of the origid's calls
    /// that come from its main fingerprint (one dialer, not a carrier's many phones).
    pub churn_min_callers: u32,
    pub churn_min_ratio: f64,
    pub churn_min_fingerprint_share: f64,
    /// origid_caller_churn stays quiet when more than this share of the calls is A-attested
    /// (the signer vouches for each caller ID: a call centre's own DIDs).
    pub churn_max_a_share: f64,
    /// Keys that carry many originators (a peer; a peer's signer at one attestation) and
    /// fingerprints judge rules by a burst of bad calls against the key's own earlier rate:
    /// at least `burst_factor` times the expected count and `burst_min_z` Poisson standard
    /// deviations above it (plus the rule's own minimum of calls).
    pub burst_factor: f64,
    pub burst_min_z: f64,
    /// unsigned_flood: unsigned calls in the last minute, their share (fingerprint keys), and
    /// how far above the key's own earlier unsigned rate they are.
    pub unsigned_min_calls: u32,
    pub unsigned_min_share: f64,
    pub unsigned_burst_factor: f64,
    /// invalid_caller_id: calls with a NANP-invalid caller ID, and their share.
    pub invalid_min_calls: u32,
    pub invalid_min_share: f64,
    /// sequential_dialling: calls whose destination is within `sequential_max_step` of the
    /// key's previous one, and their share.
    pub sequential_min_calls: u32,
    pub sequential_min_share: f64,
    pub sequential_max_step: u64,
    /// one_ring: ended calls CANCELled unanswered within `one_ring_max_ring_ms`, and their
    /// share of ended calls.
    pub one_ring_min_calls: u32,
    pub one_ring_min_share: f64,
    pub one_ring_max_ring_ms: u64,
    /// short_calls: ended calls, answer-seizure ratio at most `short_max_asr`, and the share
    /// of answered calls shorter than `short_max_duration_ms`.
    pub short_min_calls: u32,
    pub short_max_asr: f64,
    pub short_max_duration_ms: u64,
    pub short_min_share: f64,
    /// replayed_passport: calls whose PASSporT was already seen on another call.
    pub replayed_min_calls: u32,
}

impl Default for DetectRules {
    fn default() -> Self {
        DetectRules {
            neighbour_min_calls: 10,
            neighbour_min_share: 0.5,
            neighbour_min_caller_churn: 0.5,
            churn_min_callers: 15,
            churn_min_ratio: 0.8,
            churn_min_fingerprint_share: 0.8,
            churn_max_a_share: 0.5,
            burst_factor: 3.0,
            burst_min_z: 6.0,
            unsigned_min_calls: 20,
            unsigned_min_share: 0.9,
            unsigned_burst_factor: 3.0,
            invalid_min_calls: 5,
            invalid_min_share: 0.3,
            sequential_min_calls: 10,
            sequential_min_share: 0.5,
            sequential_max_step: 10,
            one_ring_min_calls: 10,
            one_ring_min_share: 0.5,
            one_ring_max_ring_ms: 4000,
            short_min_calls: 15,
            short_max_asr: 0.2,
            short_max_duration_ms: 6000,
            short_min_share: 0.5,
            replayed_min_calls: 3,
        }
    }
}
