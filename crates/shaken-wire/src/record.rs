//! The records (docs/architecture.md, "Records"): a [`CallRecord`] per call and a
//! [`DetectionEvent`] per detection state change, versioned by their `schema` field. Field
//! names and nesting are a contract with the collector and the traceback store: add fields,
//! never rename or re-nest them. Reading accepts fields it does not know (a newer sensor).
//!
//! It must never change the JSON bytes a record serializes to (the store, the spool and the
//! collector's idempotency digests depend on them), and never depend on capture types.

use crate::schema::SchemaId;
use crate::time::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

pub use crate::schema::{CALL_SCHEMA, DETECTION_SCHEMA};

/// The transport a call's INVITE was seen on (the sensor converts its capture type to it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CallRecord {
    #[serde(deserialize_with = "SchemaId::call")]
    pub schema: SchemaId,
    pub record_id: String,
    pub sensor_id: Arc<str>,
    #[serde(with = "rfc3339")]
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

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
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

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Upstream {
    pub peer: Arc<str>,
    pub ocn: Option<Arc<str>>,
}

/// The STIR/SHAKEN verdict. All null until verification runs on the call.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
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
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DivResult {
    pub verstat: String,
    pub code: Option<u16>,
    pub reason: Option<String>,
    pub orig: Option<String>,
    pub dest: Vec<String>,
    pub div: Option<String>,
    pub x5u: Option<String>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
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

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
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
    #[serde(with = "rfc3339")]
    pub ended_at: Timestamp,
}

/// Media traits of the INVITE's SDP offer: origin traits are fingerprint inputs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SdpTraits {
    pub origin_user: Option<String>,
    pub conn_addr: Option<String>,
    pub codecs: Vec<String>,
}

/// A campaign detection (docs/detection.md, "DetectionEvent"): opened when a rule first fires
/// on a key, updated while it holds, closed when quiet. Every time is capture time in replay.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DetectionEvent {
    #[serde(deserialize_with = "SchemaId::detection")]
    pub schema: SchemaId,
    /// Unique per event (detection, state, time): the collector deduplicates on it.
    pub record_id: String,
    pub detection_id: String,
    pub state: DetectionState,
    pub rule: Cow<'static, str>,
    pub severity: Severity,
    pub key: DetectionKey,
    /// The key's fingerprint, or the one most of its calls carry.
    pub fingerprint: Option<String>,
    pub window: Cow<'static, str>,
    /// First call of the window that made the rule fire.
    #[serde(with = "rfc3339")]
    pub first_seen: Timestamp,
    /// Capture time of the call that made this event (for "opened": the moment of detection).
    #[serde(with = "rfc3339")]
    pub last_seen: Timestamp,
    pub calls: u64,
    pub distinct_dest: u64,
    pub distinct_orig: u64,
    pub attest_mix: AttestMix,
    /// verstat → calls (only verstats seen; "none" when verification did not run).
    pub verstat_mix: std::collections::BTreeMap<Cow<'static, str>, u64>,
    /// Upstream peers, most calls first.
    pub peers: Vec<PeerCalls>,
    pub origids: Vec<String>,
    pub spcs: Vec<String>,
    /// Up to 20 Call-IDs of calls that matched the rule.
    pub sample_call_ids: Vec<String>,
    /// The signals that crossed their thresholds, with their values.
    pub evidence: std::collections::BTreeMap<Cow<'static, str>, f64>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
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

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DetectionKey {
    pub kind: Cow<'static, str>,
    pub value: String,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AttestMix {
    #[serde(rename = "A")]
    pub a: u64,
    #[serde(rename = "B")]
    pub b: u64,
    #[serde(rename = "C")]
    pub c: u64,
    pub none: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerCalls {
    pub peer: String,
    pub ocn: Option<String>,
    pub calls: u64,
}

/// Timestamps as RFC 3339 with microseconds (the one formatter and the one strict parser).
mod rfc3339 {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; crate::time::RFC3339_LEN];
        s.serialize_str(t.format_rfc3339(&mut buf))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = Cow::<'de, str>::deserialize(d)?;
        Timestamp::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {s:?}")))
    }
}
