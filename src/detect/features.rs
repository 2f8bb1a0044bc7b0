//! The per-call features the detectors consume, in two messages: [`CallStart`] as soon as the
//! call's verdict is known (INVITE time for unsigned calls and seeded certificates), so a
//! campaign of long answered calls is seen within seconds, and [`CallEnd`] with the dialog
//! outcome when the record is written. Both carry the call's keys so any shard can place them.
//! Built from the dialog state or the CallRecord; never holds borrowed packet data.

use super::fingerprint::fingerprint_hex;
use crate::clock::Timestamp;
use crate::record::{CallRecord, ShakenResult};
use crate::sip::tn::{canonicalize, Tn};
use std::sync::Arc;

/// The kinds of key a detector keeps windows for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyKind {
    Fingerprint = 0,
    Peer = 1,
    Origid = 2,
    OrigTn = 3,
}

pub const KEY_KINDS: [KeyKind; 4] = [
    KeyKind::Fingerprint,
    KeyKind::Peer,
    KeyKind::Origid,
    KeyKind::OrigTn,
];

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Fingerprint => "fingerprint",
            KeyKind::Peer => "peer",
            KeyKind::Origid => "origid",
            KeyKind::OrigTn => "orig_tn",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attest {
    A,
    B,
    C,
    None,
}

impl Attest {
    pub fn parse(s: Option<&str>) -> Attest {
        match s {
            Some("A") => Attest::A,
            Some("B") => Attest::B,
            Some("C") => Attest::C,
            _ => Attest::None,
        }
    }
}

/// verstat of the call, `none` when verification did not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verstat {
    Passed,
    Failed,
    NoValidation,
    None,
}

pub const VERSTATS: [(Verstat, &str); 4] = [
    (Verstat::Passed, "TN-Validation-Passed"),
    (Verstat::Failed, "TN-Validation-Failed"),
    (Verstat::NoValidation, "No-TN-Validation"),
    (Verstat::None, "none"),
];

impl Verstat {
    pub fn parse(s: Option<&str>) -> Verstat {
        match s {
            Some("TN-Validation-Passed") => Verstat::Passed,
            Some("TN-Validation-Failed") => Verstat::Failed,
            Some("No-TN-Validation") => Verstat::NoValidation,
            _ => Verstat::None,
        }
    }
}

/// The keys a call counts under. `origid` and `orig_tn` are absent for unsigned calls and
/// calls without a number.
#[derive(Clone, Debug)]
pub struct CallKeys {
    pub fingerprint: u64,
    pub peer: Arc<str>,
    pub origid: Option<Box<str>>,
    pub orig_tn: Option<Tn>,
}

impl CallKeys {
    /// The key value of one kind, as it appears in events.
    pub fn value(&self, kind: KeyKind) -> Option<String> {
        match kind {
            KeyKind::Fingerprint => Some(fingerprint_hex(self.fingerprint)),
            KeyKind::Peer => Some(self.peer.to_string()),
            KeyKind::Origid => self.origid.as_deref().map(str::to_string),
            KeyKind::OrigTn => self.orig_tn.map(|t| t.to_string()),
        }
    }
}

/// What is known once the call's verdict is in.
#[derive(Clone, Debug)]
pub struct CallStart {
    pub at: Timestamp,
    pub call_id: Arc<str>,
    pub keys: CallKeys,
    pub ocn: Option<Arc<str>>,
    pub dest_tn: Option<Tn>,
    pub attest: Attest,
    pub verstat: Verstat,
    pub spc: Option<Box<str>>,
    /// The INVITE carried no Identity header.
    pub unsigned: bool,
    /// The same PASSporT was seen on another call (the verifier's flag).
    pub replayed: bool,
    /// Verification failed (a SIP code other than 436, which is "could not fetch").
    pub verify_failed: bool,
}

/// The dialog outcome, when the call ends.
#[derive(Clone, Debug)]
pub struct CallEnd {
    pub at: Timestamp,
    pub call_id: Arc<str>,
    pub keys: CallKeys,
    pub answered: bool,
    pub cancelled: bool,
    pub ring_ms: Option<u64>,
    pub duration_ms: Option<u64>,
    pub final_code: Option<u16>,
}

/// Builds a start from the parts the dialog keeps (also used for a record whose verdict came
/// after the call ended).
#[allow(clippy::too_many_arguments)]
pub fn start_from_parts(
    at: Timestamp,
    call_id: Arc<str>,
    fingerprint: u64,
    peer: Arc<str>,
    ocn: Option<Arc<str>>,
    orig_tn: Option<Tn>,
    dest_tn: Option<Tn>,
    shaken: &ShakenResult,
) -> CallStart {
    CallStart {
        at,
        call_id,
        keys: CallKeys {
            fingerprint,
            peer,
            origid: shaken.origid.as_deref().map(Box::from),
            orig_tn,
        },
        ocn,
        dest_tn,
        attest: Attest::parse(shaken.attest.as_deref()),
        verstat: Verstat::parse(shaken.verstat.as_deref()),
        spc: shaken.spc.as_deref().map(Box::from),
        unsigned: shaken.identity_headers == 0,
        replayed: shaken.replayed,
        verify_failed: shaken.code.is_some_and(|c| c != 436),
    }
}

fn keys_of(r: &CallRecord) -> CallKeys {
    CallKeys {
        fingerprint: r
            .fingerprint
            .as_deref()
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .unwrap_or(0),
        peer: r.upstream.peer.clone(),
        origid: r.shaken.origid.as_deref().map(Box::from),
        orig_tn: r
            .orig_tn
            .as_deref()
            .and_then(|t| canonicalize(t.as_bytes())),
    }
}

impl CallStart {
    /// For a call whose start was not announced while it was open (its verdict came later).
    pub fn from_record(r: &CallRecord) -> CallStart {
        let keys = keys_of(r);
        start_from_parts(
            r.observed_at,
            Arc::from(r.call_id.as_str()),
            keys.fingerprint,
            keys.peer,
            r.upstream.ocn.clone(),
            keys.orig_tn,
            r.dest_tn
                .as_deref()
                .and_then(|t| canonicalize(t.as_bytes())),
            &r.shaken,
        )
    }
}

impl CallEnd {
    pub fn from_record(r: &CallRecord) -> CallEnd {
        CallEnd {
            at: r.dialog.ended_at,
            call_id: Arc::from(r.call_id.as_str()),
            keys: keys_of(r),
            answered: r.dialog.answered,
            cancelled: r.dialog.cancelled,
            ring_ms: r.dialog.ring_ms,
            duration_ms: r.dialog.duration_ms,
            final_code: r.dialog.final_code,
        }
    }
}
