//! One call's state, built from its INVITE and advanced by the messages that follow. Only the
//! fields a record needs are copied out of the packet, once per call, never per message.

use super::texts::{Field, Texts, TextsBuilder};
use crate::capture::packet::Transport;
use crate::clock::Timestamp;
use crate::detect::features::{self, CallStart};
use crate::detect::fingerprint;
use crate::peers::Peer;
use crate::record::{self, CallRecord, DialogOutcome, EndedBy, SdpTraits, ShakenResult, Upstream};
use crate::shaken::verify::CallNumbers;
use crate::sip::header::split_list;
use crate::sip::message::{Method, SipMessage, StartLine};
use crate::sip::sdp::parse_sdp;
use crate::sip::tn::{canonicalize, Tn};
use crate::sip::uri::{param, parse_name_addr, parse_uri};
use std::net::SocketAddr;
use std::sync::Arc;

/// Where and when a message was seen.
#[derive(Clone, Copy, Debug)]
pub struct Seen {
    pub ts: Timestamp,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: Transport,
    /// HEP capture agent id of the message (None from libpcap).
    pub agent: Option<u32>,
}

#[derive(Clone, Debug)]
pub struct Call {
    pub(super) created: u64,
    pub invite: Seen,
    cseq: u32,
    peer: Peer,
    texts: Texts,
    numbers: CallNumbers,
    has_sdp: bool,
    identity_headers: u16,
    pub final_code: Option<u16>,
    final_ts: Option<Timestamp>,
    answered_ts: Option<Timestamp>,
    cancelled: bool,
    /// Answered 401/407: the caller may retry with credentials on the same Call-ID.
    challenged: bool,
    /// Where the call's STIR/SHAKEN verdict is.
    pub verdict: Verdict,
    /// Hash of the INVITE's origin traits (see `detect::fingerprint`).
    origin: u64,
    /// The call's start was handed to the detectors.
    announced: bool,
}

/// A call's STIR/SHAKEN verdict: its record and its start for the detectors wait while it is
/// pending, never longer (verification gives every pending call a verdict, at the latest at
/// its deadline).
#[derive(Clone, Debug)]
pub enum Verdict {
    /// Verification is off: no verdict comes; the record says only how many Identity headers
    /// the INVITE carried.
    Unverified,
    /// Verification runs (a certificate may be being fetched).
    Pending,
    /// Boxed: most of a call's life it is the only large field.
    Done(Box<ShakenResult>),
}

impl Verdict {
    fn result(&self) -> Option<&ShakenResult> {
        match self {
            Verdict::Done(r) => Some(r),
            Verdict::Unverified | Verdict::Pending => None,
        }
    }
}

/// User parts of the INVITE's identities: (From, chosen PAI entry, Request-URI, To).
fn invite_users<'a>(msg: &SipMessage<'a>) -> [Option<&'a [u8]>; 4] {
    let from = name_addr_user(msg.from);
    // P-Asserted-Identity may list a sip: and a tel: URI; the first that has a number wins.
    let pai = msg.pai.and_then(|v| {
        split_list(v)
            .filter_map(name_addr_user)
            .find(|u| canonicalize(u).is_some())
            .or_else(|| split_list(v).find_map(name_addr_user))
    });
    let ruri = match msg.start {
        StartLine::Request { uri, .. } => parse_uri(uri).ok().and_then(|u| u.user),
        StartLine::Response { .. } => None,
    };
    [from, pai, ruri, name_addr_user(msg.to)]
}

pub fn invite_numbers(msg: &SipMessage<'_>) -> CallNumbers {
    numbers_of(invite_users(msg))
}

fn numbers_of([from, pai, ruri, to]: [Option<&[u8]>; 4]) -> CallNumbers {
    CallNumbers {
        orig: tn_of(pai).or_else(|| tn_of(from)),
        ruri: tn_of(ruri),
        to: tn_of(to),
    }
}

/// The user part of a name-addr header value (From, To, one P-Asserted-Identity entry).
fn name_addr_user(value: &[u8]) -> Option<&[u8]> {
    parse_name_addr(value).ok().and_then(|na| na.uri.user)
}

fn name_addr_tag(value: &[u8]) -> Option<&[u8]> {
    parse_name_addr(value)
        .ok()
        .and_then(|na| param(na.params, b"tag"))
        .filter(|t| !t.is_empty())
}

/// A canonical number from a URI user part (`+1202...;npdi@host` keeps only the number).
fn tn_of(user: Option<&[u8]>) -> Option<Tn> {
    user.and_then(canonicalize)
}

impl Call {
    /// Starts a call from an initial INVITE (one without a To tag); `verdict`: Pending when
    /// verification runs, else Unverified.
    pub fn from_invite(
        msg: &SipMessage<'_>,
        seen: Seen,
        peer: &Peer,
        created: u64,
        verdict: Verdict,
    ) -> Call {
        // One parse of the identities serves both the texts and the numbers (callgrind: URI
        // parsing was the largest cost of an unsigned INVITE).
        let users = invite_users(msg);
        let [from, pai, ruri, _] = users;
        let numbers = numbers_of(users);
        let mut texts = TextsBuilder::default();
        texts.set(Field::FromTag, name_addr_tag(msg.from));
        texts.set(Field::FromUser, from);
        texts.set(Field::PaiUser, pai);
        texts.set(Field::RuriUser, ruri);
        texts.set(Field::UserAgent, msg.user_agent);
        let has_sdp = !msg.body.is_empty();
        let origin = if has_sdp {
            let sdp = parse_sdp(msg.body);
            texts.set(Field::SdpOriginUser, sdp.origin_user);
            texts.set(Field::SdpConnAddr, sdp.conn_addr);
            for codec in sdp.codecs.iter() {
                texts.push_codec(codec);
            }
            fingerprint::origin_traits(
                &peer.name,
                msg.user_agent,
                msg.header_order_hash,
                sdp.origin_user,
                sdp.codecs.as_slice(),
            )
        } else {
            fingerprint::origin_traits(&peer.name, msg.user_agent, msg.header_order_hash, None, &[])
        };
        Call {
            created,
            invite: seen,
            cseq: msg.cseq.seq,
            peer: peer.clone(),
            texts: texts.build(),
            numbers,
            has_sdp,
            identity_headers: (msg.identity.len() as u16).saturating_add(msg.identity_overflow),
            final_code: None,
            final_ts: None,
            answered_ts: None,
            cancelled: false,
            challenged: false,
            verdict,
            origin,
            announced: false,
        }
    }

    /// The numbers the INVITE presented (verification matches the PASSporT against them).
    pub fn numbers(&self) -> &CallNumbers {
        &self.numbers
    }

    /// The one fingerprint computation of a call: its INVITE's traits and its verdict's signer.
    fn fingerprint(&self) -> u64 {
        fingerprint::of_call(self.origin, self.verdict.result())
    }

    /// Whether the detectors got the call's start.
    pub fn announced(&self) -> bool {
        self.announced
    }

    /// The call's features for the detectors, once: as soon as its verdict is not pending.
    /// None otherwise.
    pub fn detect_start(&mut self, call_id: &[u8]) -> Option<CallStart> {
        if self.announced || matches!(self.verdict, Verdict::Pending) {
            return None;
        }
        self.announced = true;
        let unsigned = ShakenResult {
            identity_headers: self.identity_headers,
            ..ShakenResult::default()
        };
        Some(features::start_from_parts(
            self.invite.ts,
            features::CallIdStr::from_bytes(call_id),
            self.fingerprint(),
            self.peer.name.clone(),
            self.peer.ocn.clone(),
            self.numbers.orig,
            self.numbers.dest(),
            self.verdict.result().unwrap_or(&unsigned),
        ))
    }

    pub fn set_verdict(&mut self, result: ShakenResult) {
        self.verdict = Verdict::Done(Box::new(result));
    }

    pub fn cseq(&self) -> u32 {
        self.cseq
    }

    /// A new INVITE without To tag on this Call-ID: the authenticated retry of a challenged
    /// INVITE (higher CSeq) continues this call. Returns false for a plain retransmission.
    pub fn retry(&mut self, msg: &SipMessage<'_>) -> bool {
        if msg.cseq.seq <= self.cseq {
            return false;
        }
        self.cseq = msg.cseq.seq;
        self.final_code = None;
        self.final_ts = None;
        self.challenged = false;
        true
    }

    /// Advances the call; returns who ended it when this message ends it.
    pub fn on_message(&mut self, msg: &SipMessage<'_>, seen: Seen) -> Option<EndedBy> {
        match &msg.start {
            StartLine::Response { code, .. } => {
                let code = *code;
                if !matches!(msg.cseq.method, Method::Invite) || msg.cseq.seq != self.cseq {
                    return None; // responses to re-INVITEs, BYE, CANCEL, PRACK...
                }
                if code < 200 || self.final_code.is_some() {
                    return None;
                }
                self.final_code = Some(code);
                self.final_ts = Some(seen.ts);
                if code < 300 {
                    self.answered_ts = Some(seen.ts);
                    None
                } else if (code == 401 || code == 407) && !self.cancelled {
                    self.challenged = true;
                    None
                } else if self.cancelled {
                    Some(EndedBy::Caller)
                } else {
                    Some(EndedBy::Callee)
                }
            }
            StartLine::Request { method, .. } => match method {
                Method::Cancel if self.final_code.is_none() => {
                    self.cancelled = true;
                    None
                }
                Method::Bye => {
                    // The caller's BYE carries the INVITE's From tag; the callee's has it in To.
                    let by_caller = match (self.texts.get(Field::FromTag), name_addr_tag(msg.from))
                    {
                        (Some(ours), Some(theirs)) => ours == theirs,
                        _ => seen.src == self.invite.src,
                    };
                    if self.answered_ts.is_none() && self.final_code.is_none() {
                        // BYE before any final response seen (lost 200): treat as answered then.
                        self.final_ts = Some(seen.ts);
                    }
                    Some(if by_caller {
                        EndedBy::Caller
                    } else {
                        EndedBy::Callee
                    })
                }
                _ => None,
            },
        }
    }

    /// When this call times out if nothing more is seen.
    pub fn deadline(&self, invite_timeout_s: u64, max_call_s: u64) -> Timestamp {
        match (self.final_code, self.answered_ts) {
            (_, Some(answered)) => answered.saturating_add_secs(max_call_s),
            // A person typing a password can take most of a minute to retry after a 401/407.
            (Some(_), None) if self.challenged => self
                .final_ts
                .unwrap_or(self.invite.ts)
                .saturating_add_secs(invite_timeout_s),
            (None, None) => self.invite.ts.saturating_add_secs(invite_timeout_s),
            // A failed call is closed when its final response arrives; this is a backstop.
            (Some(_), None) => self.invite.ts.saturating_add_secs(invite_timeout_s),
        }
    }

    pub fn into_record(
        self,
        call_id: &[u8],
        ended_by: EndedBy,
        ended_at: Timestamp,
        sensor_id: &Arc<str>,
    ) -> CallRecord {
        let (ended_by, ended_at) = match ended_by {
            // A call withdrawn by CANCEL that never got its 487 still ended on the caller's side.
            EndedBy::Timeout if self.cancelled && self.answered_ts.is_none() => {
                (EndedBy::Caller, ended_at)
            }
            // A challenge never answered with credentials: the callee's side refused the call.
            EndedBy::Timeout if self.challenged => {
                (EndedBy::Callee, self.final_ts.unwrap_or(ended_at))
            }
            other => (other, ended_at),
        };
        let fingerprint = Some(fingerprint::fingerprint_hex(self.fingerprint()));
        CallRecord {
            schema: record::CALL_SCHEMA,
            record_id: record::record_id(sensor_id, call_id, self.invite.ts, self.invite.src),
            sensor_id: sensor_id.clone(),
            observed_at: self.invite.ts,
            call_id: record::lossy(call_id, 256),
            transport: self.invite.transport.into(),
            src: self.invite.src.into(),
            dst: self.invite.dst.into(),
            upstream: Upstream {
                peer: self.peer.name,
                ocn: self.peer.ocn,
            },
            orig_tn: self.numbers.orig.map(|t| t.to_string()),
            dest_tn: self.numbers.dest().map(|t| t.to_string()),
            from_user: self.texts.string(Field::FromUser),
            pai_user: self.texts.string(Field::PaiUser),
            ruri_user: self.texts.string(Field::RuriUser),
            user_agent: self.texts.string(Field::UserAgent),
            shaken: match self.verdict {
                Verdict::Done(b) => *b,
                Verdict::Unverified | Verdict::Pending => ShakenResult {
                    identity_headers: self.identity_headers,
                    ..ShakenResult::default()
                },
            },
            dialog: DialogOutcome {
                final_code: self.final_code,
                answered: self.answered_ts.is_some(),
                ring_ms: self.final_ts.map(|t| t.millis_since(self.invite.ts)),
                duration_ms: self.answered_ts.map(|a| ended_at.millis_since(a)),
                ended_by,
                cancelled: self.cancelled,
                ended_at,
            },
            sdp: self.has_sdp.then(|| SdpTraits {
                origin_user: self.texts.string(Field::SdpOriginUser),
                conn_addr: self.texts.string(Field::SdpConnAddr),
                codecs: self.texts.codecs(),
            }),
            fingerprint,
            capture_agent: self.invite.agent,
            trace: None,
        }
    }
}

#[cfg(test)]
#[path = "call_tests.rs"]
mod tests;
