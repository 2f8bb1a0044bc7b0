//! Reading and validating the configuration file. Every error names the file and the key, so
//! an operator can fix the file without reading our source.

use super::model::*;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}; {}", read_hint(.source))]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    File(#[from] super::files::FileError),
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: key `{key}`: {problem}")]
    Invalid {
        path: String,
        key: String,
        problem: String,
    },
}

/// The example `[[peers]]` names in config/sensor.toml (a test keeps them in step): a copy of
/// that file still holds them, and an operator's own peer of the same name collides.
const SHIPPED_EXAMPLE_PEERS: &[&str] = &["carrier-alpha", "loopback-lab"];

/// What to do when the configuration file cannot be read.
fn read_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            "pass --config FILE, or install config/sensor.toml (every key with its default) there"
        }
        std::io::ErrorKind::PermissionDenied => {
            "make it readable by this user (the systemd unit runs as shaken-sensor)"
        }
        _ => "check the path given to --config",
    }
}

/// Reads, parses and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let label = path.display().to_string();
    let bytes =
        super::files::read_bounded(path, super::files::MAX_CONFIG_BYTES).map_err(|e| match e {
            // The first error a newcomer meets: keep the hint that says what to do.
            super::files::FileError::Io { path, source } => ConfigError::Read { path, source },
            other => ConfigError::File(other),
        })?;
    let text = String::from_utf8(bytes).map_err(|_| ConfigError::Parse {
        path: label.clone(),
        message: "not UTF-8".into(),
    })?;
    Config::from_toml(&text, &label)
}

/// The checks every section's validation repeats; errors name the file and the full key
/// (`section` is its prefix, e.g. "push.").
struct Checks<'a> {
    path: &'a str,
    section: &'static str,
}

impl<'a> Checks<'a> {
    fn new(path: &'a str, section: &'static str) -> Self {
        Checks { path, section }
    }

    /// The two checks nearly every section uses, as closures: `bad(key, problem)` and
    /// `range(key, value, lo, hi)`.
    #[allow(clippy::type_complexity)]
    fn fns(
        &self,
    ) -> (
        impl Fn(&str, String) -> ConfigError + '_,
        impl Fn(&str, u64, u64, u64) -> Result<(), ConfigError> + '_,
    ) {
        (
            move |key: &str, problem: String| self.bad(key, problem),
            move |key: &str, v: u64, lo: u64, hi: u64| self.range(key, v, lo, hi),
        )
    }

    fn bad(&self, key: &str, problem: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_string(),
            key: format!("{}{key}", self.section),
            problem,
        }
    }

    fn range(&self, key: &str, v: u64, lo: u64, hi: u64) -> Result<(), ConfigError> {
        if v < lo || v > hi {
            Err(self.bad(key, format!("must be between {lo} and {hi}, got {v}")))
        } else {
            Ok(())
        }
    }

    fn share(&self, key: &str, v: f64) -> Result<(), ConfigError> {
        if (0.0..=1.0).contains(&v) {
            Ok(())
        } else {
            Err(self.bad(key, format!("must be a share between 0 and 1, got {v}")))
        }
    }
}

impl Config {
    /// Parses and validates TOML text; `label` names its origin in errors.
    pub fn from_toml(text: &str, label: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: label.to_string(),
            message: e.to_string().trim_end().replace('\n', " | "),
        })?;
        config.validate(label)?;
        Ok(config)
    }

    /// Start-up checks that types alone cannot express.
    pub fn validate(&self, label: &str) -> Result<(), ConfigError> {
        self.sensor.validate(label)?;
        self.log.validate(label)?;
        self.capture.validate(label)?;
        self.export.validate(label)?;
        self.sip.validate(label)?;
        self.dialog.validate(label)?;
        self.output.validate(label)?;
        self.shaken.validate(label)?;
        self.traceback.validate(label)?;
        self.http.validate(label)?;
        self.push.validate(label)?;
        self.detect.validate(label)?;
        self.peers.validate(label)
    }

    /// What a reload from `self` to `new` changes, section by section: applied live, or
    /// read only at start (docs/operator-guide.md, "Reload").
    pub fn reload_changes(&self, new: &Config) -> Vec<(&'static str, OnSighup)> {
        let mut v = Vec::new();
        v.extend(self.sensor.changes(&new.sensor));
        v.extend(self.log.changes(&new.log));
        v.extend(self.capture.changes(&new.capture));
        v.extend(self.export.changes(&new.export));
        v.extend(self.sip.changes(&new.sip));
        v.extend(self.dialog.changes(&new.dialog));
        v.extend(self.output.changes(&new.output));
        v.extend(self.shaken.changes(&new.shaken));
        v.extend(self.traceback.changes(&new.traceback));
        v.extend(self.http.changes(&new.http));
        v.extend(self.push.changes(&new.push));
        v.extend(self.detect.changes(&new.detect));
        v.extend(self.peers.changes(&new.peers));
        v
    }

    /// Worker threads to start: the configured number, or one per core.
    pub fn worker_count(&self) -> usize {
        match self.sensor.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// The BPF expression for live capture on an interface of `linktype` (libpcap DLT).
    /// "auto" keeps the SIP ports on UDP and TCP, every IP fragment (a non-first fragment has
    /// no port to match) and IP-in-IP/GRE tunnels; on Ethernet also behind a VLAN tag. Other
    /// link types get no `vlan` clause: libpcap rejects it on Linux cooked captures (the
    /// "any" interface) and raw IP, where the kernel has already removed the tag.
    pub fn bpf_filter(&self, linktype: i32) -> String {
        let c = &self.capture;
        if c.bpf_filter != "auto" {
            return c.bpf_filter.clone();
        }
        let ports = c
            .sip_ports
            .iter()
            .map(|p| format!("port {p}"))
            .chain(c.hep.pcap_ports.iter().map(|p| format!("udp dst port {p}")))
            .collect::<Vec<_>>()
            .join(" or ");
        let base = format!(
            "{ports} or (ip[6:2] & 0x3fff != 0) or (ip6 and ip6[6] == 44) \
             or ip proto 4 or ip proto 41 or ip proto 47"
        );
        if linktype == crate::capture::decode::linktype::ETHERNET {
            format!("({base}) or (vlan and ({base}))")
        } else {
            base
        }
    }
}

/// Loads the file, or the defaults when no file is given.
pub fn load_or_default(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        Some(p) => load(p),
        None => Ok(Config::default()),
    }
}

/// A section's start-up checks; errors name the file and the full key.
pub trait Validate {
    fn validate(&self, label: &str) -> Result<(), ConfigError>;
}

/// Whether a reload applies a changed section to the running sensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnSighup {
    /// The running pipeline takes the new values (the reload logs it as applied).
    Live,
    /// Read only at start: the reload keeps the old values and logs that a restart is needed.
    Restart,
}

/// The changes of a section applied partly live: `live` (its key, whether it changed) and
/// the rest (the section once `strip` has cleared the live part), which needs a restart.
fn partly_live<S: Section + Clone>(
    old: &S,
    new: &S,
    live: (&'static str, bool),
    strip: impl Fn(&mut S),
) -> Vec<(&'static str, OnSighup)> {
    let rest = |s: &S| {
        let mut s = s.clone();
        strip(&mut s);
        s
    };
    let mut v = Vec::new();
    if live.1 {
        v.push((live.0, OnSighup::Live));
    }
    if rest(old) != rest(new) {
        v.push((S::KEY, OnSighup::Restart));
    }
    v
}

/// A top-level section of the configuration file: its key and what a SIGHUP does with it.
pub trait Section: Validate + PartialEq {
    const KEY: &'static str;
    const ON_SIGHUP: OnSighup;

    /// The keys a reload from `self` to `new` changes, with how each is applied. A section
    /// applied partly live overrides this.
    fn changes(&self, new: &Self) -> Vec<(&'static str, OnSighup)> {
        if self == new {
            Vec::new()
        } else {
            vec![(Self::KEY, Self::ON_SIGHUP)]
        }
    }
}

/// `[sensor]`: the id and the worker count, read at start.
impl Section for SensorConfig {
    const KEY: &'static str = "sensor";
    const ON_SIGHUP: OnSighup = OnSighup::Restart;
}

impl Validate for SensorConfig {
    fn validate(&self, label: &str) -> Result<(), ConfigError> {
        let checks = Checks::new(label, "");
        let (bad, range) = checks.fns();
        if self.id.trim().is_empty() || self.id.len() > 64 {
            return Err(bad("sensor.id", "must be 1 to 64 characters".into()));
        }
        if !self
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(bad(
                "sensor.id",
                "may hold only letters, digits, '-', '_' and '.'".into(),
            ));
        }
        range("sensor.workers", self.workers as u64, 0, 256)?;
        Ok(())
    }
}

/// `[log]`: the filter and the summary interval, set up at start.
impl Section for LogConfig {
    const KEY: &'static str = "log";
    const ON_SIGHUP: OnSighup = OnSighup::Restart;
}

impl Validate for LogConfig {
    fn validate(&self, label: &str) -> Result<(), ConfigError> {
        let checks = Checks::new(label, "");
        let (bad, range) = checks.fns();
        if tracing_subscriber::EnvFilter::try_new(&self.level).is_err() {
            return Err(bad(
                "log.level",
                format!("not a valid filter: {:?}", self.level),
            ));
        }
        range("log.summary_interval_s", self.summary_interval_s, 1, 86_400)?;
        Ok(())
    }
}

/// `[capture]` (with `[capture.hep]`): sources, filter and reassembly limits, fixed while capture runs.
impl Section for CaptureConfig {
    const KEY: &'static str = "capture";
    const ON_SIGHUP: OnSighup = OnSighup::Restart;
}

impl Validate for CaptureConfig {
    fn validate(&self, label: &str) -> Result<(), ConfigError> {
        let checks = Checks::new(label, "");
        let (bad, range) = checks.fns();
        let c = self;
        c.hep.validate(label)?;
        if (c.interfaces.is_empty() && !c.hep.enabled)
            || c.interfaces.iter().any(|i| i.trim().is_empty())
        {
            return Err(bad(
                "capture.interfaces",
                "needs at least one non-empty interface name (or capture.hep.enabled)".into(),
            ));
        }
        range("capture.snaplen", c.snaplen.into(), 256, 262_144)?;
        range("capture.buffer_size_mb", c.buffer_size_mb.into(), 1, 4096)?;
        if c.bpf_filter.trim().is_empty() {
            return Err(bad(
                "capture.bpf_filter",
                "empty; use \"auto\" or a BPF expression".into(),
            ));
        }
        if c.sip_ports.is_empty() || c.sip_ports.contains(&0) {
            return Err(bad(
                "capture.sip_ports",
                "needs at least one port, none of them 0".into(),
            ));
        }
        range(
            "capture.max_message_bytes",
            c.max_message_bytes as u64,
            1024,
            1 << 20,
        )?;
        range("capture.stats_interval_s", c.stats_interval_s, 1, 3600)?;
        range("capture.queue_batches", c.queue_batches as u64, 2, 1 << 20)?;
        range("capture.dedup_window_ms", c.dedup_window_ms, 0, 1000)?;
        range(
            "capture.defrag.max_datagrams",
            c.defrag.max_datagrams as u64,
            1,
            1 << 24,
        )?;
        range(
            "capture.defrag.max_bytes_mb",
            c.defrag.max_bytes_mb as u64,
            1,
            16_384,
        )?;
        range("capture.defrag.timeout_s", c.defrag.timeout_s, 1, 120)?;
        range(
            "capture.tcp.max_streams",
            c.tcp.max_streams as u64,
            1,
            1 << 24,
        )?;
        range(
            "capture.tcp.max_stream_kb",
            c.tcp.max_stream_kb as u64,
            64,
            65_536,
        )?;
        range(
            "capture.tcp.max_total_mb",
            c.tcp.max_total_mb as u64,
            1,
            65_536,
        )?;
        range(
            "capture.tcp.idle_timeout_s",
            c.tcp.idle_timeout_s,
            1,
            86_400,
        )?;
        if (c.tcp.max_stream_kb as u64) * 1024 < c.max_message_bytes as u64 {
            return Err(bad(
                "capture.tcp.max_stream_kb",
                "must hold at least one message of capture.max_message_bytes".into(),
            ));
        }
        Ok(())
    }
}

/// `[sip]`: parser limits, given to the workers at start.
impl Section for SipConfig {
    const KEY: &'static str = "sip";
    const ON_SIGHUP: OnSighup = OnSighup::Restart;
}

impl Validate for SipConfig {
    fn validate(&self, label: &str) -> Result<(), ConfigError> {
        let checks = Checks::new(label, "");
        let (_, range) = checks.fns();
        range("sip.max_headers", self.max_headers as u64, 16, 4096)?;
        range(
            "sip.max_header_line",
            self.max_header_line as u64,
            256,
            1 << 20,
        )?;
        Ok(())
    }
}

/// `[dialog]`: table limits and timeouts, sized at start.
impl Section for DialogConfig {
    const KEY: &'static str = "dialog";
    const ON_SIGHUP: OnSighup = OnSighup::Restart;
}

impl Validate for DialogConfig {
    fn validate(&self, label: &str) -> Result<(), ConfigError> {
        let checks = Checks::new(label, "");
        let (_, range) = checks.fns();
        range("dialog.max_dialogs", self.max_dialogs as u64, 1, 1 << 26)?;
        range("dialog.invite_timeout_s", self.invite_timeout_s, 1, 3600)?;
        range(
            "dialog.max_call_duration_s",
            self.max_call_duration_s,
            60,
            7 * 86_400,
        )?;
        Ok(())
    }
}

/// `[output]`: output paths and the record queue, opened at start.
impl Section for OutputConfig {
    const KEY: &'static str = "output";
    const ON_SIGHUP: OnSighup = OnSighup::Restart;
}

impl Validate for OutputConfig {
    fn validate(&self, label: &str) -> Result<(), ConfigError> {
        let checks = Checks::new(label, "");
        let (_, range) = checks.fns();
        range(
            "output.queue_records",
            self.queue_records as u64,
            1,
            1 << 24,
        )?;
        Ok(())
    }
}

/// `[shaken]`: trust anchors and seeded certificates apply live (the service swaps them); the rest at start.
impl Section for ShakenConfig {
    const KEY: &'static str = "shaken";
    const ON_SIGHUP: OnSighup = OnSighup::Restart;

    fn changes(&self, new: &Self) -> Vec<(&'static str, OnSighup)> {
        let credentials = self.trust_anchors != new.trust_anchors || self.certs != new.certs;
        partly_live(self, new, ("shaken.trust_anchors", credentials), |s| {
            s.trust_anchors.clear();
            s.certs.clear();
        })
    }
}

impl Validate for ShakenConfig {
    fn validate(&self, label: &str) -> Result<(), ConfigError> {
        let checks = Checks::new(label, "");
        let (bad, range) = checks.fns();
        let sh = self;
        range("shaken.max_iat_age_s", sh.max_iat_age_s, 1, 86_400)?;
        range("shaken.max_pending", sh.max_pending as u64, 1, 1 << 24)?;
        range(
            "shaken.replay_entries",
            sh.replay_entries as u64,
            16,
            1 << 26,
        )?;
        range(
            "shaken.x5u.max_bytes",
            sh.x5u.max_bytes as u64,
            1024,
            1 << 20,
        )?;
        range("shaken.x5u.timeout_ms", sh.x5u.timeout_ms, 100, 60_000)?;
        range(
            "shaken.x5u.cache_entries",
            sh.x5u.cache_entries as u64,
            1,
            1 << 24,
        )?;
        for (i, c) in sh.certs.iter().enumerate() {
            if !(c.url.starts_with("https://") || c.url.starts_with("http://")) {
                return Err(bad(
                    &format!("shaken.certs[{i}].url"),
                    format!("not an http(s) URL: {:?}", c.url),
                ));
            }
            if c.file.trim().is_empty() {
                return Err(bad(&format!("shaken.certs[{i}].file"), "empty path".into()));
            }
        }
        if sh.enabled && sh.trust_anchors.is_empty() {
            tracing::warn!("shaken.trust_anchors is empty: every signed call will fail with 437");
        }
        Ok(())
    }
}

/// `[traceback]`: the store, opened at start.
impl Section for TracebackConfig {
    const KEY: &'static str = "traceback";
    const ON_SIGHUP: OnSighup = OnSighup::Restart;
}

impl Validate for TracebackConfig {
    fn validate(&self, label: &str) -> Result<(), ConfigError> {
        let checks = Checks::new(label, "");
        let (bad, range) = checks.fns();
        let tb = self;
        if tb.enabled && tb.dir.trim().is_empty() {
            return Err(bad("traceback.dir", "empty".into()));
        }
        range(
            "traceback.retention_days",
            tb.retention_days.into(),
            1,
            3650,
        )?;
        range("traceback.max_disk_mb", tb.max_disk_mb, 16, 1 << 30)?;
        range("traceback.flush_ms", tb.flush_ms, 10, 60_000)?;
        range(
            "traceback.queue_records",
            tb.queue_records as u64,
            1,
            1 << 24,
        )?;
        Ok(())
    }
}

/// `[http]`: the server, bound at start.
impl Section for HttpConfig {
    const KEY: &'static str = "http";
    const ON_SIGHUP: OnSighup = OnSighup::Restart;
}

impl Validate for HttpConfig {
    fn validate(&self, label: &str) -> Result<(), ConfigError> {
        let checks = Checks::new(label, "");
        let (bad, range) = checks.fns();
        if !self.bind.is_empty() && self.bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(bad(
                "http.bind",
                format!("not an address:port: {:?}", self.bind),
            ));
        }
        let h = self;
        range("http.header_timeout_s", h.header_timeout_s, 1, 3600)?;
        range("http.body_timeout_s", h.body_timeout_s, 1, 3600)?;
        range("http.keepalive_idle_s", h.keepalive_idle_s, 1, 3600)?;
        range("http.max_connections", h.max_connections as u64, 1, 1 << 20)?;
        range("http.max_in_flight", h.max_in_flight as u64, 1, 1 << 16)?;
        range("http.max_body_kb", h.max_body_kb as u64, 1, 1 << 20)?;
        range("http.drain_timeout_s", h.drain_timeout_s, 1, 3600)?;
        range(
            "http.traceback_max_calls",
            h.traceback_max_calls as u64,
            1,
            1_000_000,
        )?;
        Ok(())
    }
}

/// `[[peers]]`: the table workers read for every new call, swapped live.
impl Section for Vec<PeerConfig> {
    const KEY: &'static str = "peers";
    const ON_SIGHUP: OnSighup = OnSighup::Live;
}

impl Validate for Vec<PeerConfig> {
    fn validate(&self, label: &str) -> Result<(), ConfigError> {
        let checks = Checks::new(label, "");
        let (bad, _) = checks.fns();
        let mut names = std::collections::HashMap::new();
        for (i, p) in self.iter().enumerate() {
            if p.name.trim().is_empty() || p.name == crate::peers::UNKNOWN_PEER {
                return Err(bad(
                    &format!("peers[{i}].name"),
                    format!("must be non-empty and not {:?}", crate::peers::UNKNOWN_PEER),
                ));
            }
            if let Some(first) = names.insert(p.name.as_str(), i) {
                // The usual way in: a copy of config/sensor.toml, still holding its example
                // peers, with the operator's own appended under the same name.
                let what_to_do = if SHIPPED_EXAMPLE_PEERS.contains(&p.name.as_str()) {
                    format!(
                        "peers[{first}] is the example peer {:?} shipped in config/sensor.toml: \
                         delete the example [[peers]] blocks from this file and keep your own",
                        p.name
                    )
                } else {
                    format!("rename one of them or merge their cidrs into peers[{first}]")
                };
                return Err(bad(
                    &format!("peers[{i}].name"),
                    format!(
                        "duplicate peer name {:?} (also peers[{first}]); {what_to_do}",
                        p.name
                    ),
                ));
            }
            if p.cidrs.is_empty() {
                return Err(bad(
                    &format!("peers[{i}].cidrs"),
                    "needs at least one CIDR".into(),
                ));
            }
            for (j, cidr) in p.cidrs.iter().enumerate() {
                if crate::peers::parse_cidr(cidr).is_none() {
                    return Err(bad(
                        &format!("peers[{i}].cidrs[{j}]"),
                        format!("not an address or CIDR: {cidr:?}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `[detect]`: the rule thresholds (`[detect.rules]`) apply live (the shards re-read them); the
/// engine's sizes and timings at start.
impl Section for DetectConfig {
    const KEY: &'static str = "detect";
    const ON_SIGHUP: OnSighup = OnSighup::Restart;

    fn changes(&self, new: &Self) -> Vec<(&'static str, OnSighup)> {
        let rules = self.rules != new.rules;
        partly_live(self, new, ("detect.rules", rules), |d| {
            d.rules = Default::default()
        })
    }
}

impl Validate for DetectConfig {
    /// The `[detect]` section: ranges of the engine's caps and of every rule threshold.
    fn validate(&self, label: &str) -> Result<(), ConfigError> {
        let checks = Checks::new(label, "detect.");
        let (bad, range) = checks.fns();
        let share = |key: &str, v: f64| checks.share(key, v);
        let d = self;
        range("shards", d.shards as u64, 1, 64)?;
        range("queue_batches", d.queue_batches as u64, 1, 1 << 20)?;
        range("max_keys", d.max_keys as u64, 16, 1 << 22)?;
        range("sketch_width", d.sketch_width as u64, 1024, 1 << 24)?;
        range("promote_calls", d.promote_calls.into(), 1, 1000)?;
        range("update_s", d.update_s, 1, 86_400)?;
        range("quiet_s", d.quiet_s, 1, 86_400)?;
        range("warmup_s", d.warmup_s, 0, 86_400)?;
        let r = &d.rules;
        range(
            "rules.neighbour_min_calls",
            r.neighbour_min_calls.into(),
            1,
            1 << 20,
        )?;
        share("rules.neighbour_min_share", r.neighbour_min_share)?;
        share(
            "rules.neighbour_min_caller_churn",
            r.neighbour_min_caller_churn,
        )?;
        range(
            "rules.churn_min_callers",
            r.churn_min_callers.into(),
            2,
            1 << 20,
        )?;
        share("rules.churn_min_ratio", r.churn_min_ratio)?;
        share(
            "rules.churn_min_fingerprint_share",
            r.churn_min_fingerprint_share,
        )?;
        share("rules.churn_max_a_share", r.churn_max_a_share)?;
        for (key, v, lo, hi) in [
            (
                "rules.unsigned_burst_factor",
                r.unsigned_burst_factor,
                1.0,
                1000.0,
            ),
            ("rules.burst_factor", r.burst_factor, 1.0, 1000.0),
            ("rules.burst_min_z", r.burst_min_z, 0.0, 100.0),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(bad(key, format!("must be between {lo} and {hi}, got {v}")));
            }
        }
        range(
            "rules.unsigned_min_calls",
            r.unsigned_min_calls.into(),
            1,
            1 << 20,
        )?;
        share("rules.unsigned_min_share", r.unsigned_min_share)?;
        range(
            "rules.invalid_min_calls",
            r.invalid_min_calls.into(),
            1,
            1 << 20,
        )?;
        share("rules.invalid_min_share", r.invalid_min_share)?;
        range(
            "rules.sequential_min_calls",
            r.sequential_min_calls.into(),
            2,
            1 << 20,
        )?;
        share("rules.sequential_min_share", r.sequential_min_share)?;
        range(
            "rules.sequential_max_step",
            r.sequential_max_step,
            1,
            1_000_000,
        )?;
        range(
            "rules.one_ring_min_calls",
            r.one_ring_min_calls.into(),
            1,
            1 << 20,
        )?;
        share("rules.one_ring_min_share", r.one_ring_min_share)?;
        range(
            "rules.one_ring_max_ring_ms",
            r.one_ring_max_ring_ms,
            100,
            60_000,
        )?;
        range(
            "rules.short_min_calls",
            r.short_min_calls.into(),
            1,
            1 << 20,
        )?;
        share("rules.short_max_asr", r.short_max_asr)?;
        range(
            "rules.short_max_duration_ms",
            r.short_max_duration_ms,
            100,
            600_000,
        )?;
        share("rules.short_min_share", r.short_min_share)?;
        range(
            "rules.replayed_min_calls",
            r.replayed_min_calls.into(),
            1,
            1 << 20,
        )?;
        Ok(())
    }
}

/// `[push]`: the spool and the pusher, started at start.
impl Section for PushConfig {
    const KEY: &'static str = "push";
    const ON_SIGHUP: OnSighup = OnSighup::Restart;
}

impl Validate for PushConfig {
    /// The `[push]` section: checked only as far as it matters when push is off.
    fn validate(&self, label: &str) -> Result<(), ConfigError> {
        let checks = Checks::new(label, "push.");
        let (bad, range) = checks.fns();
        let p = self;
        range("spool_max_mb", p.spool_max_mb, 1, 1 << 22)?;
        range("fsync_interval_ms", p.fsync_interval_ms, 1, 60_000)?;
        range("queue_records", p.queue_records as u64, 1, 1 << 24)?;
        range("batch_max_records", p.batch_max_records as u64, 1, 100_000)?;
        range("batch_max_bytes", p.batch_max_bytes as u64, 1024, 64 << 20)?;
        range("max_in_flight", p.max_in_flight as u64, 1, 64)?;
        range("timeout_ms", p.timeout_ms, 100, 600_000)?;
        range("backoff_initial_ms", p.backoff_initial_ms, 1, 600_000)?;
        range(
            "backoff_max_ms",
            p.backoff_max_ms,
            p.backoff_initial_ms,
            3_600_000,
        )?;
        range("dead_letter_max_mb", p.dead_letter_max_mb, 1, 1 << 22)?;
        range("drain_timeout_s", p.drain_timeout_s, 0, 3600)?;
        if !p.enabled {
            return Ok(());
        }
        let Some(rest) = p
            .url
            .strip_prefix("https://")
            .or_else(|| p.url.strip_prefix("http://"))
        else {
            return Err(bad("url", format!("not an http(s) URL: {:?}", p.url)));
        };
        if rest.is_empty() || rest.starts_with('/') || reqwest::Url::parse(&p.url).is_err() {
            return Err(bad("url", format!("not a valid URL: {:?}", p.url)));
        }
        if p.url.starts_with("http://") && !p.allow_http {
            return Err(bad(
                "url",
                "http: sends records and token in clear; use https, or set push.allow_http = true (labs only)".into(),
            ));
        }
        match (p.token.is_empty(), p.token_file.is_empty()) {
            (true, true) => return Err(bad("token", "set token or token_file".into())),
            (false, false) => {
                return Err(bad(
                    "token_file",
                    "set token or token_file, not both".into(),
                ))
            }
            _ => {}
        }
        if p.client_cert_file.is_empty() != p.client_key_file.is_empty() {
            return Err(bad(
                "client_key_file",
                "client_cert_file and client_key_file go together".into(),
            ));
        }
        for (key, v) in [
            ("spool_dir", &p.spool_dir),
            ("dead_letter_dir", &p.dead_letter_dir),
        ] {
            if v.trim().is_empty() {
                return Err(bad(key, "empty".into()));
            }
        }
        Ok(())
    }
}

/// `[capture.hep]`: part of `[capture]`.
impl Validate for HepConfig {
    fn validate(&self, label: &str) -> Result<(), ConfigError> {
        let checks = Checks::new(label, "capture.hep.");
        let (bad, range) = checks.fns();
        let h = self;
        for (key, addr) in [("listen_udp", &h.listen_udp), ("listen_tcp", &h.listen_tcp)] {
            if !addr.is_empty() && addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(bad(key, format!("not an ip:port address: {addr:?}")));
            }
        }
        if h.enabled && h.listen_udp.is_empty() && h.listen_tcp.is_empty() {
            return Err(bad(
                "enabled",
                "needs capture.hep.listen_udp or capture.hep.listen_tcp".into(),
            ));
        }
        range("max_frame_bytes", h.max_frame_bytes as u64, 64, 65_535)?;
        range("max_connections", h.max_connections as u64, 1, 65_536)?;
        range("queue_frames", h.queue_frames as u64, 1, 1 << 22)?;
        range("udp_buffer_mb", h.udp_buffer_mb as u64, 1, 1024)?;
        range("reorder_ms", h.reorder_ms, 0, 2000)?;
        if h.pcap_ports.contains(&0) || h.leg_ports.contains(&0) {
            return Err(bad(
                "pcap_ports",
                "ports (pcap_ports, leg_ports) may not be 0".into(),
            ));
        }
        if h.auth_key.len() > 1024 {
            return Err(bad("auth_key", "longer than 1024 bytes".into()));
        }
        Ok(())
    }
}

/// `[export]`: the HEP exporter, started at start.
impl Section for ExportConfig {
    const KEY: &'static str = "export";
    const ON_SIGHUP: OnSighup = OnSighup::Restart;
}

impl Validate for ExportConfig {
    fn validate(&self, label: &str) -> Result<(), ConfigError> {
        self.hep.validate(label)
    }
}

impl Validate for HepExportConfig {
    fn validate(&self, label: &str) -> Result<(), ConfigError> {
        let checks = Checks::new(label, "export.hep.");
        let e = self;
        if e.address.parse::<std::net::SocketAddr>().is_err() {
            return Err(checks.bad(
                "address",
                format!("not an ip:port address: {:?}", e.address),
            ));
        }
        if e.auth_key.len() > 1024 {
            return Err(checks.bad("auth_key", "longer than 1024 bytes".into()));
        }
        checks.range("queue_messages", e.queue_messages as u64, 1, 1 << 22)?;
        checks.range("buffer_mb", e.buffer_mb as u64, 1, 16_384)?;
        checks.range("retain_s", e.retain_s, 1, 86_400)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../config/sensor.toml");

    #[test]
    fn each_section_says_whether_a_reload_applies_it_live_or_needs_a_restart() {
        let old = Config::default();
        let mut new = old.clone();
        assert!(old.reload_changes(&new).is_empty());
        new.shaken.trust_anchors = vec!["/etc/anchors.pem".into()];
        new.detect.rules.burst_min_z += 1.0;
        new.push.queue_records += 1;
        new.peers.push(PeerConfig {
            name: "p".into(),
            ocn: "1".into(),
            cidrs: vec!["10.0.0.0/8".into()],
        });
        assert_eq!(
            old.reload_changes(&new),
            vec![
                ("shaken.trust_anchors", OnSighup::Live),
                ("push", OnSighup::Restart),
                ("detect.rules", OnSighup::Live),
                ("peers", OnSighup::Live),
            ]
        );
        new.shaken.max_pending += 1;
        new.detect.max_keys += 1;
        let restart: Vec<_> = old
            .reload_changes(&new)
            .into_iter()
            .filter(|(_, on)| *on == OnSighup::Restart)
            .map(|(k, _)| k)
            .collect();
        assert_eq!(restart, vec!["shaken", "push", "detect"]);
    }

    #[test]
    fn a_section_checks_its_own_keys_and_names_them_in_full() {
        let mut push = PushConfig::default();
        assert!(push.validate("f.toml").is_ok());
        push.queue_records = 0;
        let e = push.validate("f.toml").unwrap_err().to_string();
        assert!(
            e.contains("f.toml") && e.contains("push.queue_records"),
            "{e}"
        );
        let mut capture = CaptureConfig::default();
        capture.hep.max_frame_bytes = 1;
        let e = capture.validate("f.toml").unwrap_err().to_string();
        assert!(e.contains("capture.hep.max_frame_bytes"), "{e}");
    }

    #[test]
    fn shipped_file_equals_the_defaults() {
        let mut shipped = Config::from_toml(SHIPPED, "config/sensor.toml").unwrap();
        assert!(
            !shipped.peers.is_empty(),
            "the shipped file documents [[peers]] with examples"
        );
        let names: Vec<&str> = shipped.peers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, SHIPPED_EXAMPLE_PEERS);
        shipped.peers.clear();
        assert_eq!(shipped, Config::default());
    }

    #[test]
    fn duplicate_of_a_shipped_example_peer_says_what_to_do() {
        let own = "\n[[peers]]\nname = \"carrier-alpha\"\ncidrs = [\"198.51.100.0/24\"]\n";
        let text = format!("{SHIPPED}{own}");
        let msg = Config::from_toml(&text, "/etc/s.toml")
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("/etc/s.toml: key `peers[2].name`"), "{msg}");
        assert!(
            msg.contains("also peers[0]") && msg.contains("delete the example"),
            "{msg}"
        );
        let mine = "[[peers]]\nname = \"x\"\ncidrs = [\"10.0.0.0/8\"]\n";
        let msg = Config::from_toml(&format!("{mine}{mine}"), "f.toml")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("rename one of them"), "{msg}");
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let err = Config::from_toml("[capture]\nsnaplenn = 5\n", "f.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("f.toml:"), "{msg}");
        assert!(msg.contains("snaplenn"), "{msg}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let cases = [
            ("[capture]\nsnaplen = 10\n", "capture.snaplen"),
            ("[capture]\nsip_ports = []\n", "capture.sip_ports"),
            ("[sensor]\nid = \"a b\"\n", "sensor.id"),
            ("[[peers]]\nname = \"x\"\ncidrs = [\"10.0.0.0/8\", \"nope\"]\n", "peers[0].cidrs[1]"),
            ("[[peers]]\nname = \"x\"\ncidrs = [\"10.0.0.1\"]\n[[peers]]\nname = \"x\"\ncidrs = [\"::1\"]\n", "peers[1].name"),
            ("[log]\nlevel = \"[[[\"\n", "log.level"),
            ("[push]\nenabled = true\nurl = \"ftp://x\"\ntoken = \"t\"\n", "push.url"),
            ("[push]\nenabled = true\nurl = \"http://127.0.0.1:1\"\ntoken = \"t\"\n", "push.url"),
            ("[push]\nenabled = true\nurl = \"https://c.example\"\n", "push.token"),
            ("[push]\nenabled = true\nurl = \"https://c.example\"\ntoken = \"t\"\nclient_cert_file = \"c.pem\"\n", "push.client_key_file"),
            ("[push]\nbackoff_initial_ms = 500\nbackoff_max_ms = 10\n", "push.backoff_max_ms"),
            ("[detect]\nshards = 0\n", "detect.shards"),
            ("[detect.rules]\nneighbour_min_share = 1.5\n", "detect.rules.neighbour_min_share"),
            ("[detect.rules]\nunsigned_burst_factor = 0.5\n", "detect.rules.unsigned_burst_factor"),
            ("[detect.rules]\nburst_min_z = -1.0\n", "detect.rules.burst_min_z"),
            ("[detect.rules]\nchurn_max_a_share = 2.0\n", "detect.rules.churn_max_a_share"),
        ];
        for (text, key) in cases {
            let msg = Config::from_toml(text, "f.toml").unwrap_err().to_string();
            assert!(msg.contains(&format!("key `{key}`")), "{text} -> {msg}");
        }
    }

    #[test]
    fn wrong_type_is_a_parse_error_with_the_file() {
        let msg = Config::from_toml("[dialog]\nmax_dialogs = \"many\"\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("f.toml:") && msg.contains("max_dialogs"),
            "{msg}"
        );
    }

    #[test]
    fn auto_filter_keeps_fragments_and_ports() {
        use crate::capture::decode::linktype;
        for lt in [
            linktype::ETHERNET,
            linktype::LINUX_SLL,
            linktype::LINUX_SLL2,
            12,
        ] {
            let f = Config::default().bpf_filter(lt);
            assert!(f.contains("port 5060") && f.contains("port 5080"));
            assert!(f.contains("ip[6:2] & 0x3fff != 0"), "{f}");
            assert!(f.contains("ip6[6] == 44"), "{f}");
            assert_eq!(f.contains("vlan"), lt == linktype::ETHERNET, "{lt}: {f}");
        }
    }
}
