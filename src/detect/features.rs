//! The per-call features the detectors consume, in two messages: [`CallStart`] as soon as the
//! call's verdict is known (INVITE time for unsigned calls and seeded certificates), so a
//! campaign of long answered calls is seen within seconds, and [`CallEnd`] with the dialog
//! outcome when the record is written. Both carry the call's keys so any shard can place them.
//! Built from the dialog state or the CallRecord; never holds borrowed packet data.

use super::hash::Hash64;
use super::kinds::KeyKind;
use crate::clock::Timestamp;
use crate::record::{CallRecord, ShakenResult};
use crate::sip::tn::{canonicalize, Tn};
use std::sync::Arc;

/// A short string kept inline (no heap allocation per call: features cross threads by the
/// hundred thousand per second, and a cross-thread free is the costliest part of a message).
/// Longer input is cut at a character boundary.
#[derive(Clone, Copy)]
pub struct InlineStr<const N: usize> {
    len: u16,
    buf: [u8; N],
}

impl<const N: usize> InlineStr<N> {
    pub fn new(s: &str) -> Self {
        let mut end = s.len().min(N);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let mut buf = [0u8; N];
        buf[..end].copy_from_slice(&s.as_bytes()[..end]);
        InlineStr {
            len: end as u16,
            buf,
        }
    }

    /// Bytes as seen on the wire; invalid UTF-8 is replaced (as in the records).
    pub fn from_bytes(b: &[u8]) -> Self {
        match std::str::from_utf8(b) {
            Ok(s) => Self::new(s),
            Err(_) => Self::new(&String::from_utf8_lossy(b)),
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ever filled from a &str cut at a char boundary.
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
}

impl<const N: usize> PartialEq for InlineStr<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl<const N: usize> Eq for InlineStr<N> {}

impl<const N: usize> std::ops::Deref for InlineStr<N> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> std::fmt::Debug for InlineStr<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A Call-ID as sampled in events (longer ones are cut).
pub type CallIdStr = InlineStr<128>;
/// An origid (a UUID: 36 characters).
pub type OrigidStr = InlineStr<64>;
pub type SpcStr = InlineStr<16>;

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

/// Who signed a call, as far as keys go: the signer's SPC and the attestation it gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signer {
    pub spc: SpcStr,
    pub attest: Attest,
}

/// The keys a call counts under. `origid`, `signer` and `orig_tn` are absent for unsigned
/// calls and calls without a number.
#[derive(Clone, Debug)]
pub struct CallKeys {
    pub fingerprint: u64,
    pub peer: Arc<str>,
    pub signer: Option<Signer>,
    pub origid: Option<OrigidStr>,
    pub orig_tn: Option<Tn>,
}

impl CallKeys {
    /// The hash that identifies (and shards) the call's key of one kind.
    pub fn hash(&self, kind: KeyKind) -> Option<u64> {
        (kind.def().hash)(self, Hash64::seeded(kind as u64))
    }

    /// The key value of one kind, as it appears in events.
    pub fn value(&self, kind: KeyKind) -> Option<String> {
        (kind.def().value)(self)
    }
}

fn signer_of(shaken: &ShakenResult) -> Option<Signer> {
    Some(Signer {
        spc: SpcStr::new(shaken.spc.as_deref()?),
        attest: Attest::parse(shaken.attest.as_deref()),
    })
}

/// What is known once the call's verdict is in.
#[derive(Clone, Debug)]
pub struct CallStart {
    pub at: Timestamp,
    pub call_id: CallIdStr,
    pub keys: CallKeys,
    pub ocn: Option<Arc<str>>,
    pub dest_tn: Option<Tn>,
    pub attest: Attest,
    pub verstat: Verstat,
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
    pub call_id: CallIdStr,
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
    call_id: CallIdStr,
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
            signer: signer_of(shaken),
            origid: shaken.origid.as_deref().map(OrigidStr::new),
            orig_tn,
        },
        ocn,
        dest_tn,
        attest: Attest::parse(shaken.attest.as_deref()),
        verstat: Verstat::parse(shaken.verstat.as_deref()),
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
        signer: signer_of(&r.shaken),
        origid: r.shaken.origid.as_deref().map(OrigidStr::new),
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
            CallIdStr::new(&r.call_id),
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
            call_id: CallIdStr::new(&r.call_id),
            keys: keys_of(r),
            answered: r.dialog.answered,
            cancelled: r.dialog.cancelled,
            ring_ms: r.dialog.ring_ms,
            duration_ms: r.dialog.duration_ms,
            final_code: r.dialog.final_code,
        }
    }
}
