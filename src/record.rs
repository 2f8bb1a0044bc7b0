//! The wire types every sink shares (docs/architecture.md, "Records"): a [`CallRecord`] per
//! call, versioned by its `schema` field. Field names and nesting are a contract with the
//! collector and the traceback store: add fields, never rename or re-nest them.

use crate::clock::Timestamp;
use serde::{Serialize, Serializer};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

pub const CALL_SCHEMA: &str = "shaken-sensor/call/v1";

/// The transport a SIP message was seen on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CallRecord {
    pub schema: &'static str,
    pub record_id: String,
    pub sensor_id: Arc<str>,
    #[serde(serialize_with = "rfc3339")]
    pub observed_at: Timestamp,
    pub call_id: String,
    pub transport: Transport,
    pub src: Endpoint,
    pub dst: Endpoint,
    pub upstream: Upstream,
    pub orig_tn: Option<String>,
    pub dest_tn: Option<String>,
    pub from_user: Option<String>,
    pub pai_user: Option<String>,
    pub ruri_user: Option<String>,
    pub user_agent: Option<String>,
    pub shaken: ShakenResult,
    pub dialog: DialogOutcome,
    pub sdp: Option<SdpTraits>,
    pub fingerprint: Option<String>,
    /// The HEP capture agent id (chunk 0x000c) of the INVITE, when the call came over HEP;
    /// absent from the JSON otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture_agent: Option<u32>,
    /// Arrival (at its capture thread) of the sampled message that ended this call, for the
    /// `sink` stage latency; never serialized, None for unsampled calls.
    #[serde(skip)]
    pub trace: Option<std::time::Instant>,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

impl From<SocketAddr> for Endpoint {
    fn from(a: SocketAddr) -> Self {
        Endpoint {
            ip: a.ip(),
            port: a.port(),
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Upstream {
    pub peer: Arc<str>,
    pub ocn: Option<Arc<str>>,
}

/// The STIR/SHAKEN verdict. All null until verification runs on the call.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ShakenResult {
    pub verstat: Option<String>,
    pub attest: Option<String>,
    pub origid: Option<String>,
    pub spc: Option<String>,
    pub x5u: Option<String>,
    pub iat: Option<i64>,
    pub code: Option<u16>,
    pub reason: Option<String>,
    pub replayed: bool,
    /// Diversion PASSporTs (RFC 8946), each verified and reported; they do not decide verstat.
    pub div: Vec<DivResult>,
    /// Identity header fields the INVITE carried (0 for an unsigned call).
    pub identity_headers: u16,
}

/// One `ppt=div` PASSporT of the INVITE.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct DivResult {
    pub verstat: String,
    pub code: Option<u16>,
    pub reason: Option<String>,
    pub orig: Option<String>,
    pub dest: Vec<String>,
    pub div: Option<String>,
    pub x5u: Option<String>,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EndedBy {
    /// BYE from the calling side, or CANCEL before an answer.
    Caller,
    /// BYE from the called side, or a 3xx-6xx final response.
    Callee,
    /// No final response within `invite_timeout_s`, or no BYE within `max_call_duration_s`.
    Timeout,
    /// Closed early because the dialog table was full.
    Evicted,
    /// Still open when the sensor stopped or the replay ended.
    Shutdown,
}

impl EndedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            EndedBy::Caller => "caller",
            EndedBy::Callee => "callee",
            EndedBy::Timeout => "timeout",
            EndedBy::Evicted => "evicted",
            EndedBy::Shutdown => "shutdown",
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DialogOutcome {
    pub final_code: Option<u16>,
    pub answered: bool,
    /// From the INVITE to its final response (post-dial delay plus ringing).
    pub ring_ms: Option<u64>,
    /// From the answer (2xx) to the BYE.
    pub duration_ms: Option<u64>,
    pub ended_by: EndedBy,
    /// The CANCEL that withdrew the INVITE, if any.
    pub cancelled: bool,
    #[serde(serialize_with = "rfc3339")]
    pub ended_at: Timestamp,
}

/// Media traits of the INVITE's SDP offer: origin traits are fingerprint inputs.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SdpTraits {
    pub origin_user: Option<String>,
    pub conn_addr: Option<String>,
    pub codecs: Vec<String>,
}

pub const DETECTION_SCHEMA: &str = "shaken-sensor/detection/v1";

/// A campaign detection (docs/detection.md, "DetectionEvent"): opened when a rule first fires
/// on a key, updated while it holds, closed when quiet. Every time is capture time in replay.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DetectionEvent {
    pub schema: &'static str,
    /// Unique per event (detection, state, time): the collector deduplicates on it.
    pub record_id: String,
    pub detection_id: String,
    pub state: DetectionState,
    pub rule: &'static str,
    pub severity: Severity,
    pub key: DetectionKey,
    /// The key's fingerprint, or the one most of its calls carry.
    pub fingerprint: Option<String>,
    pub window: &'static str,
    /// First call of the window that made the rule fire.
    #[serde(serialize_with = "rfc3339")]
    pub first_seen: Timestamp,
    /// Capture time of the call that made this event (for "opened": the moment of detection).
    #[serde(serialize_with = "rfc3339")]
    pub last_seen: Timestamp,
    pub calls: u64,
    pub distinct_dest: u64,
    pub distinct_orig: u64,
    pub attest_mix: AttestMix,
    /// verstat → calls (only verstats seen; "none" when verification did not run).
    pub verstat_mix: std::collections::BTreeMap<&'static str, u64>,
    /// Upstream peers, most calls first.
    pub peers: Vec<PeerCalls>,
    pub origids: Vec<String>,
    pub spcs: Vec<String>,
    /// Up to 20 Call-IDs of calls that matched the rule.
    pub sample_call_ids: Vec<String>,
    /// The signals that crossed their thresholds, with their values.
    pub evidence: std::collections::BTreeMap<&'static str, f64>,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DetectionState {
    Opened,
    Updated,
    Closed,
}

impl DetectionState {
    pub fn as_str(self) -> &'static str {
        match self {
            DetectionState::Opened => "opened",
            DetectionState::Updated => "updated",
            DetectionState::Closed => "closed",
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DetectionKey {
    pub kind: &'static str,
    pub value: String,
}

#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct AttestMix {
    #[serde(rename = "A")]
    pub a: u64,
    #[serde(rename = "B")]
    pub b: u64,
    #[serde(rename = "C")]
    pub c: u64,
    pub none: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PeerCalls {
    pub peer: String,
    pub ocn: Option<String>,
    pub calls: u64,
}

fn rfc3339<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; crate::clock::RFC3339_LEN];
    s.serialize_str(t.format_rfc3339(&mut buf))
}

/// A record id that is unique per observed call and the same every time it is computed for that
/// call (so a retried push is recognised as a duplicate): `sensor:` and a UUID-formatted
/// 128-bit hash of the Call-ID, the INVITE's timestamp and its source.
pub fn record_id(sensor: &str, call_id: &[u8], at: Timestamp, src: SocketAddr) -> String {
    let half = |salt: u8| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut h);
        call_id.hash(&mut h);
        at.hash(&mut h);
        src.hash(&mut h);
        h.finish()
    };
    let (hi, lo) = (half(1), half(2));
    // Version 8 (custom) and the RFC 9562 variant, so it parses as a UUID.
    let hi = (hi & !0xF000) | 0x8000;
    let lo = (lo & !(0b11 << 62)) | (0b10 << 62);
    format!(
        "{sensor}:{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFFF,
        lo >> 48,
        lo & 0xFFFF_FFFF_FFFF
    )
}

/// Bytes as seen on the wire, kept readable: invalid UTF-8 becomes U+FFFD, length is capped.
pub fn lossy(bytes: &[u8], max: usize) -> String {
    let cut = &bytes[..bytes.len().min(max)];
    String::from_utf8_lossy(cut).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_id_is_stable_and_distinct() {
        let src: SocketAddr = "198.51.100.10:5060".parse().unwrap();
        let a = record_id("edge-1", b"abc@h", Timestamp(5), src);
        assert_eq!(a, record_id("edge-1", b"abc@h", Timestamp(5), src));
        assert_ne!(a, record_id("edge-1", b"abc@h", Timestamp(6), src));
        assert_ne!(a, record_id("edge-1", b"abd@h", Timestamp(5), src));
        let uuid = a.strip_prefix("edge-1:").unwrap();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "8");
    }
}
