//! The compact row format of the traceback store (partition format 2): how a CallRecord becomes
//! typed columns plus one small packed blob, and back, so that a traceback answer is the very
//! record the sensor made.
//!
//! Canonical numbers are INTEGERs when their digits round-trip (TEXT otherwise), the observed
//! time is the row key (µs since the partition's day, times [`SLOTS`]), repeated strings
//! (sensor, peers, addresses, verstat, attest, origid, SPC, x5u, user agents, fingerprints,
//! SDP traits, Call-ID hosts) are ids in the partition's `dict` table, record ids and Call-IDs
//! that are UUIDs or hex are kept as bytes, and the SIP users are kept as "the number, with or
//! without +/country code" when they are. Everything else is kept literally.
//!
//! Every encoding here is lossless by construction: a value that does not fit a compact form is
//! stored as text. It must never guess a field it cannot reconstruct exactly, and never panic
//! or allocate beyond the row's own size on a corrupt row (a typed [`Corrupt`] instead).

use crate::clock::Timestamp;
use crate::record::{
    CallRecord, DialogOutcome, DivResult, EndedBy, Endpoint, SdpTraits, ShakenResult, Transport,
    Upstream, CALL_SCHEMA,
};
use rusqlite::types::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// µs in one partition's day.
pub(crate) const DAY_US: i64 = 86_400_000_000;
/// Row keys per µs: calls observed in the same µs take different slots.
pub(crate) const SLOTS: i64 = 16;
/// Most strings one partition's dictionary holds; later new strings are stored literally (and
/// counted), so the writer's in-memory copy of a dictionary stays bounded.
pub const DICT_MAX: usize = 65_536;
/// Longest string the dictionary takes (longer ones are stored literally).
const DICT_MAX_LEN: usize = 512;

/// The schema of a format-2 partition. `call` holds the rows keyed by time slot; `call_x`
/// the rare rows that have no slot (all [`SLOTS`] of their µs taken, or a time outside the
/// partition's day), keyed by their exact µs.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS dict (id INTEGER PRIMARY KEY, v NOT NULL);
CREATE TABLE IF NOT EXISTS call (
    k INTEGER PRIMARY KEY, dest, orig, rid NOT NULL, cid NOT NULL, peer NOT NULL,
    verstat, attest, origid, spc, x5u, fp, rest BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS call_dest ON call (dest);
CREATE TABLE IF NOT EXISTS call_x (
    k INTEGER NOT NULL, dest, orig, rid NOT NULL UNIQUE, cid NOT NULL, peer NOT NULL,
    verstat, attest, origid, spc, x5u, fp, rest BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS call_x_dest ON call_x (dest, k);
";

/// The columns after `k`, in schema order.
pub(crate) const COLUMNS: &str =
    "dest, orig, rid, cid, peer, verstat, attest, origid, spc, x5u, fp, rest";

/// A row that does not decode: which part, for the error message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt row: {0}")]
pub struct Corrupt(pub &'static str);

/// A number column's value: INTEGER when the canonical digits round-trip, TEXT otherwise.
pub fn tn_value(tn: &str) -> Value {
    let b = tn.as_bytes();
    let digits = !b.is_empty() && b.len() <= 18 && b.iter().all(u8::is_ascii_digit);
    match tn.parse::<i64>() {
        Ok(n) if digits && (b[0] != b'0' || b.len() == 1) => Value::Integer(n),
        _ => Value::Text(tn.to_string()),
    }
}

fn tn_text(v: Value) -> Result<Option<String>, Corrupt> {
    match v {
        Value::Null => Ok(None),
        Value::Integer(n) => Ok(Some(n.to_string())),
        Value::Text(s) => Ok(Some(s)),
        _ => Err(Corrupt("number column")),
    }
}

/// The partition dictionary as the writer keeps it: value -> id, bounded by [`DICT_MAX`].
/// Values are strings (TEXT) or call profiles (BLOB, see [`encode`]); a profile's key starts
/// with 0xFF, a byte no UTF-8 string has. New entries are written in the caller's transaction;
/// after a failed transaction the caller must drop this copy and reload it ([`Dict::load`]).
#[derive(Default)]
pub(crate) struct Dict {
    ids: HashMap<Box<[u8]>, i64>,
    next: i64,
    /// Entries added since the last [`Dict::take_new`].
    new: Vec<(i64, Value)>,
    /// Values stored literally because the dictionary was full.
    pub full: u64,
}

const BLOB_KEY: u8 = 0xFF;

impl Dict {
    pub(crate) fn load(conn: &rusqlite::Connection) -> rusqlite::Result<Dict> {
        let mut d = Dict {
            next: 1,
            ..Dict::default()
        };
        let mut stmt = conn.prepare("SELECT id, v FROM dict")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Value>(1)?)))?;
        for row in rows {
            let (id, v) = row?;
            let key: Box<[u8]> = match stored_entry(v) {
                Ok(Entry::Str(s)) => s.into_bytes().into(),
                Ok(Entry::Profile(b)) => [&[BLOB_KEY][..], &b].concat().into(),
                // A corrupt entry is never matched; rows naming it fail to decode, one by one.
                Err(_) => continue,
            };
            d.next = d.next.max(id + 1);
            d.ids.insert(key, id);
        }
        Ok(d)
    }

    fn intern(&mut self, key: &[u8], value: impl FnOnce() -> Value) -> Option<i64> {
        if let Some(&id) = self.ids.get(key) {
            return Some(id);
        }
        if self.ids.len() >= DICT_MAX || key.len() > DICT_MAX_LEN {
            self.full += u64::from(self.ids.len() >= DICT_MAX);
            return None;
        }
        let id = self.next;
        self.next += 1;
        self.ids.insert(key.into(), id);
        self.new.push((id, value()));
        Some(id)
    }

    /// The id of a string, adding it when there is room.
    fn id(&mut self, s: &str) -> Option<i64> {
        self.intern(s.as_bytes(), || {
            if let Some(n) = hex16(s) {
                Value::Integer(n)
            } else if let Some(u) = uuid_bytes(s) {
                Value::Blob([&[ENTRY_UUID][..], &u].concat())
            } else {
                Value::Text(s.to_string())
            }
        })
    }

    /// The id of a call profile, adding it when there is room.
    fn blob_id(&mut self, b: &[u8]) -> Option<i64> {
        let key = [&[BLOB_KEY][..], b].concat();
        self.intern(&key, || Value::Blob([&[ENTRY_PROFILE][..], b].concat()))
    }

    pub(crate) fn take_new(&mut self) -> Vec<(i64, Value)> {
        std::mem::take(&mut self.new)
    }
}

/// How a dictionary entry is stored: TEXT for a string, INTEGER for a string of exactly 16
/// lowercase hex digits (fingerprints), a BLOB tagged [`ENTRY_UUID`] for a lowercase UUID
/// (origids), a BLOB tagged [`ENTRY_PROFILE`] for a call profile.
const ENTRY_PROFILE: u8 = 0;
const ENTRY_UUID: u8 = 1;

pub(crate) enum Entry {
    Str(String),
    Profile(Vec<u8>),
}

/// A dictionary entry as stored, decoded.
pub(crate) fn stored_entry(v: Value) -> Result<Entry, Corrupt> {
    match v {
        Value::Text(s) => Ok(Entry::Str(s)),
        Value::Integer(n) => Ok(Entry::Str(format!("{:016x}", n as u64))),
        Value::Blob(mut b) => match b.first() {
            Some(&ENTRY_PROFILE) => {
                b.remove(0);
                Ok(Entry::Profile(b))
            }
            Some(&ENTRY_UUID) if b.len() == 17 => Ok(Entry::Str(uuid_text(&b[1..]))),
            _ => Err(Corrupt("dictionary entry")),
        },
        _ => Err(Corrupt("dictionary entry")),
    }
}

/// Exactly 16 lowercase hex digits as the bits of an i64.
fn hex16(s: &str) -> Option<i64> {
    let b = hex_bytes(s).filter(|b| b.len() == 8)?;
    Some(i64::from_be_bytes(b.try_into().ok()?))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Encodes one record's fields into row values, interning through the dictionary.
struct Enc<'a> {
    dict: &'a mut Dict,
    rest: Vec<u8>,
}

impl Enc<'_> {
    /// A string column: the dictionary id (INTEGER) or the text itself.
    fn col(&mut self, s: Option<&str>) -> Value {
        match s {
            None => Value::Null,
            Some(s) => match self.dict.id(s) {
                Some(id) => Value::Integer(id),
                None => Value::Text(s.to_string()),
            },
        }
    }

    fn varint(&mut self, v: u64) {
        put_varint(&mut self.rest, v);
    }

    /// 0 = None, else v + 1.
    fn opt(&mut self, v: Option<u64>) {
        self.varint(v.map_or(0, |v| v.saturating_add(1)));
    }

    /// A string in the blob: 0 = None, 2·id = a dictionary entry, 2·len + 1 = literal bytes.
    fn str(&mut self, s: Option<&str>, intern: bool) {
        let Some(s) = s else {
            return self.varint(0);
        };
        match intern.then(|| self.dict.id(s)).flatten() {
            Some(id) => self.varint((id as u64) << 1),
            None => {
                self.varint(((s.len() as u64) << 1) | 1);
                self.rest.extend_from_slice(s.as_bytes());
            }
        }
    }
}

const LITERAL: u64 = 4;

/// A SIP user relative to the canonical number it gave: 0 = none, 1 = the number, 2 = "+"
/// and the number, 3 = the number without its leading 1, [`LITERAL`] = kept as is.
fn user_form(user: Option<&str>, tn: Option<&str>) -> u64 {
    match (user, tn) {
        (None, _) => 0,
        (Some(u), Some(t)) if u == t => 1,
        (Some(u), Some(t)) if u.strip_prefix('+') == Some(t) => 2,
        (Some(u), Some(t)) if t.strip_prefix('1') == Some(u) && !u.is_empty() => 3,
        (Some(_), _) => LITERAL,
    }
}

/// A lowercase canonical UUID as its 16 bytes.
fn uuid_bytes(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let mut out = [0u8; 16];
    let mut n = 0;
    let mut i = 0;
    while i < 36 {
        if b[i] == b'-' {
            i += 1;
            continue;
        }
        out[n] = nibble(b[i])? << 4 | nibble(b[i + 1])?;
        n += 1;
        i += 2;
    }
    Some(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
}

fn uuid_text(b: &[u8]) -> String {
    let mut s = String::with_capacity(36);
    for (i, chunk) in [&b[0..4], &b[4..6], &b[6..8], &b[8..10], &b[10..16]]
        .iter()
        .enumerate()
    {
        if i > 0 {
            s.push('-');
        }
        push_hex(&mut s, chunk);
    }
    s
}

/// Lowercase hex of even length as bytes.
fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() % 2 != 0 {
        return None;
    }
    b.chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

/// The Call-ID column: a UUID as 16 bytes; `hex@host` as the host's dictionary id and the hex
/// bytes (never 16 bytes long); anything else as text.
fn cid_value(call_id: &str, dict: &mut Dict) -> Value {
    if let Some(u) = uuid_bytes(call_id) {
        return Value::Blob(u.to_vec());
    }
    if let Some((hex, host)) = call_id.split_once('@') {
        if let Some(bytes) = hex_bytes(hex).filter(|b| b.len() <= 64) {
            if let Some(id) = dict.id(host) {
                let mut out = Vec::with_capacity(bytes.len() + 3);
                put_varint(&mut out, id as u64);
                out.extend_from_slice(&bytes);
                if out.len() != 16 {
                    return Value::Blob(out);
                }
            }
        }
    }
    Value::Text(call_id.to_string())
}

/// The record id column: `sensor:uuid` as the UUID's 16 bytes, anything else as text.
fn rid_value(record_id: &str, sensor: &str) -> Value {
    match record_id
        .strip_prefix(sensor)
        .and_then(|r| r.strip_prefix(':'))
        .and_then(uuid_bytes)
    {
        Some(u) => Value::Blob(u.to_vec()),
        None => Value::Text(record_id.to_string()),
    }
}

/// The blob's first varint: identity header count (3 = more, given later), flags, ended_by.
const IDH_MASK: u64 = 3;
const ANSWERED: u64 = 4;
const CANCELLED: u64 = 8;
const REPLAYED: u64 = 16;
/// Verification code, reason or diversion results follow.
const EXTRAS: u64 = 32;
const ENDED_SHIFT: u32 = 6;
/// The profile's first varint.
const TCP: u64 = 1;
const SDP: u64 = 2;
/// The call came over HEP: its capture agent id follows the SDP traits.
const AGENT: u64 = 4;

fn ended_code(e: EndedBy) -> u64 {
    match e {
        EndedBy::Caller => 0,
        EndedBy::Callee => 1,
        EndedBy::Timeout => 2,
        EndedBy::Evicted => 3,
        EndedBy::Shutdown => 4,
    }
}

fn ended_from(c: u64) -> Result<EndedBy, Corrupt> {
    Ok(match c {
        0 => EndedBy::Caller,
        1 => EndedBy::Callee,
        2 => EndedBy::Timeout,
        3 => EndedBy::Evicted,
        4 => EndedBy::Shutdown,
        _ => return Err(Corrupt("ended_by")),
    })
}

/// `ended_at` minus what ring and call time account for: a few ms at most for a real call.
fn ended_residual(r: &CallRecord) -> i64 {
    let d = &r.dialog;
    let ms = d
        .ring_ms
        .unwrap_or(0)
        .wrapping_add(d.duration_ms.unwrap_or(0)) as i64;
    d.ended_at
        .0
        .wrapping_sub(r.observed_at.0)
        .wrapping_sub(ms.wrapping_mul(1000))
}

/// One record as the values of [`COLUMNS`] (without the key).
///
/// The blob holds, in order: flags; the call's profile (what its peer's calls share:
/// transport, sensor, addresses, OCN, user agent, SDP traits), interned as a whole; the three
/// SIP user forms; iat (relative to the observed second); the verification extras when any;
/// final code, ring and call time, and the end time's residual.
pub(crate) fn encode(r: &CallRecord, dict: &mut Dict) -> [Value; 12] {
    let s = &r.shaken;
    let d = &r.dialog;
    let extras = s.code.is_some() || s.reason.is_some() || !s.div.is_empty();
    let flags = u64::from(s.identity_headers.min(3))
        | if d.answered { ANSWERED } else { 0 }
        | if d.cancelled { CANCELLED } else { 0 }
        | if s.replayed { REPLAYED } else { 0 }
        | if extras { EXTRAS } else { 0 }
        | ended_code(d.ended_by) << ENDED_SHIFT;
    let profile = {
        let mut p = Enc {
            dict: &mut *dict,
            rest: Vec::with_capacity(32),
        };
        let pflags = (if r.transport == Transport::Tcp {
            TCP
        } else {
            0
        }) | if r.sdp.is_some() { SDP } else { 0 }
            | if r.capture_agent.is_some() { AGENT } else { 0 };
        p.varint(pflags);
        p.str(Some(&r.sensor_id), true);
        let src_ip = r.src.ip.to_string();
        p.str(Some(&src_ip), true);
        p.varint(u64::from(r.src.port));
        p.str(Some(&r.dst.ip.to_string()), true);
        p.varint(u64::from(r.dst.port));
        p.str(r.upstream.ocn.as_deref(), true);
        p.str(r.user_agent.as_deref(), true);
        if let Some(sdp) = &r.sdp {
            p.str(sdp.origin_user.as_deref(), true);
            match sdp.conn_addr.as_deref() {
                None => p.varint(0),
                Some(c) if c == src_ip => p.varint(1),
                Some(c) => {
                    p.varint(2);
                    p.str(Some(c), true);
                }
            }
            p.varint(sdp.codecs.len() as u64);
            for c in &sdp.codecs {
                p.str(Some(c), true);
            }
        }
        if let Some(agent) = r.capture_agent {
            p.varint(u64::from(agent));
        }
        p.rest
    };
    let mut e = Enc {
        dict,
        rest: Vec::with_capacity(24),
    };
    e.varint(flags);
    match e.dict.blob_id(&profile) {
        Some(id) => e.varint((id as u64) << 1),
        None => {
            e.varint(((profile.len() as u64) << 1) | 1);
            e.rest.extend_from_slice(&profile);
        }
    }
    let orig = r.orig_tn.as_deref();
    let dest = r.dest_tn.as_deref();
    let forms = [
        user_form(r.from_user.as_deref(), orig),
        user_form(r.pai_user.as_deref(), orig),
        user_form(r.ruri_user.as_deref(), dest),
    ];
    e.varint(forms[0] + 5 * forms[1] + 25 * forms[2]);
    for (form, user) in forms.iter().zip([&r.from_user, &r.pai_user, &r.ruri_user]) {
        if *form == LITERAL {
            e.str(user.as_deref(), false);
        }
    }
    e.opt(
        s.iat
            .map(|iat| zigzag(iat.wrapping_sub(r.observed_at.as_secs()))),
    );
    if s.identity_headers >= 3 {
        e.varint(u64::from(s.identity_headers));
    }
    if extras {
        e.opt(s.code.map(u64::from));
        e.str(s.reason.as_deref(), true);
        e.varint(s.div.len() as u64);
        for div in &s.div {
            e.str(Some(&div.verstat), true);
            e.opt(div.code.map(u64::from));
            e.str(div.reason.as_deref(), true);
            e.str(div.orig.as_deref(), false);
            e.varint(div.dest.len() as u64);
            for dest in &div.dest {
                e.str(Some(dest), false);
            }
            e.str(div.div.as_deref(), false);
            e.str(div.x5u.as_deref(), true);
        }
    }
    e.opt(d.final_code.map(u64::from));
    e.opt(d.ring_ms);
    e.opt(d.duration_ms);
    e.varint(zigzag(ended_residual(r)));
    let peer = e.col(Some(&r.upstream.peer));
    let verstat = e.col(s.verstat.as_deref());
    let attest = e.col(s.attest.as_deref());
    let origid = e.col(s.origid.as_deref());
    let spc = e.col(s.spc.as_deref());
    let x5u = e.col(s.x5u.as_deref());
    let fp = e.col(r.fingerprint.as_deref());
    let rest = e.rest;
    let cid = cid_value(&r.call_id, dict);
    [
        dest.map_or(Value::Null, tn_value),
        orig.map_or(Value::Null, tn_value),
        rid_value(&r.record_id, &r.sensor_id),
        cid,
        peer,
        verstat,
        attest,
        origid,
        spc,
        x5u,
        fp,
        Value::Blob(rest),
    ]
}

/// Dictionary lookups of the read side, cached for one query.
pub(crate) trait Lookup {
    /// A string entry.
    fn get(&mut self, id: i64) -> Result<Arc<str>, Corrupt>;
    /// A profile entry.
    fn blob(&mut self, id: i64) -> Result<Arc<[u8]>, Corrupt>;
}

struct Dec<'a, L: Lookup> {
    b: &'a [u8],
    dict: &'a mut L,
}

impl<L: Lookup> Dec<'_, L> {
    fn varint(&mut self) -> Result<u64, Corrupt> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.b.split_first().ok_or(Corrupt("short blob"))?;
            self.b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Corrupt("varint"))
    }

    fn opt(&mut self) -> Result<Option<u64>, Corrupt> {
        Ok(self.varint()?.checked_sub(1))
    }

    fn u16(&mut self) -> Result<Option<u16>, Corrupt> {
        self.opt()?
            .map(|v| u16::try_from(v).map_err(|_| Corrupt("u16")))
            .transpose()
    }

    fn arc(&mut self) -> Result<Option<Arc<str>>, Corrupt> {
        let n = self.varint()?;
        if n == 0 {
            return Ok(None);
        }
        if n & 1 == 0 {
            let id = i64::try_from(n >> 1).map_err(|_| Corrupt("dict id"))?;
            return self.dict.get(id).map(Some);
        }
        let s = self.take(n >> 1)?;
        let s = std::str::from_utf8(s).map_err(|_| Corrupt("utf-8"))?;
        Ok(Some(Arc::from(s)))
    }

    fn take(&mut self, len: u64) -> Result<&[u8], Corrupt> {
        let len = usize::try_from(len).map_err(|_| Corrupt("length"))?;
        if len > self.b.len() {
            return Err(Corrupt("short blob"));
        }
        let (s, rest) = self.b.split_at(len);
        self.b = rest;
        Ok(s)
    }

    fn str(&mut self) -> Result<Option<String>, Corrupt> {
        Ok(self.arc()?.map(|s| s.to_string()))
    }

    fn must(&mut self) -> Result<Arc<str>, Corrupt> {
        self.arc()?.ok_or(Corrupt("missing string"))
    }

    fn user(&mut self, code: u64, tn: Option<&str>) -> Result<Option<String>, Corrupt> {
        let tn = || tn.ok_or(Corrupt("user without number"));
        Ok(match code {
            0 => None,
            1 => Some(tn()?.to_string()),
            2 => Some(format!("+{}", tn()?)),
            3 => Some(tn()?.get(1..).ok_or(Corrupt("user"))?.to_string()),
            4 => Some(self.str()?.ok_or(Corrupt("user"))?),
            _ => return Err(Corrupt("user form")),
        })
    }

    fn ip(&mut self) -> Result<std::net::IpAddr, Corrupt> {
        self.must()?.parse().map_err(|_| Corrupt("address"))
    }
}

fn col_str<L: Lookup>(v: Value, dict: &mut L) -> Result<Option<String>, Corrupt> {
    col_arc(v, dict).map(|o| o.map(|s| s.to_string()))
}

fn col_arc<L: Lookup>(v: Value, dict: &mut L) -> Result<Option<Arc<str>>, Corrupt> {
    match v {
        Value::Null => Ok(None),
        Value::Integer(id) => dict.get(id).map(Some),
        Value::Text(s) => Ok(Some(Arc::from(s))),
        _ => Err(Corrupt("string column")),
    }
}

/// What [`encode`] puts in a call profile.
struct Profile {
    tcp: bool,
    sensor_id: Arc<str>,
    src: Endpoint,
    dst: Endpoint,
    ocn: Option<Arc<str>>,
    user_agent: Option<String>,
    sdp: Option<SdpTraits>,
    capture_agent: Option<u32>,
}

fn decode_profile<L: Lookup>(b: &[u8], dict: &mut L) -> Result<Profile, Corrupt> {
    let mut d = Dec { b, dict };
    let pflags = d.varint()?;
    let sensor_id = d.must()?;
    let src = Endpoint {
        ip: d.ip()?,
        port: u16::try_from(d.varint()?).map_err(|_| Corrupt("port"))?,
    };
    let dst = Endpoint {
        ip: d.ip()?,
        port: u16::try_from(d.varint()?).map_err(|_| Corrupt("port"))?,
    };
    let ocn = d.arc()?;
    let user_agent = d.str()?;
    let sdp = if pflags & SDP != 0 {
        let origin_user = d.str()?;
        let conn_addr = match d.varint()? {
            0 => None,
            1 => Some(src.ip.to_string()),
            2 => d.str()?,
            _ => return Err(Corrupt("sdp address")),
        };
        let n = d.varint()?;
        let mut codecs = Vec::new();
        for _ in 0..n {
            codecs.push(d.str()?.ok_or(Corrupt("codec"))?);
        }
        Some(SdpTraits {
            origin_user,
            conn_addr,
            codecs,
        })
    } else {
        None
    };
    let capture_agent = if pflags & AGENT != 0 {
        Some(u32::try_from(d.varint()?).map_err(|_| Corrupt("capture agent"))?)
    } else {
        None
    };
    if !d.b.is_empty() {
        return Err(Corrupt("trailing profile bytes"));
    }
    Ok(Profile {
        tcp: pflags & TCP != 0,
        sensor_id,
        src,
        dst,
        ocn,
        user_agent,
        sdp,
        capture_agent,
    })
}

/// A record from the values of [`COLUMNS`] and its observed time.
pub(crate) fn decode<L: Lookup>(
    observed_at: Timestamp,
    cols: [Value; 12],
    dict: &mut L,
) -> Result<CallRecord, Corrupt> {
    let [dest, orig, rid, cid, peer, verstat, attest, origid, spc, x5u, fp, rest] = cols;
    let Value::Blob(rest) = rest else {
        return Err(Corrupt("rest"));
    };
    let orig_tn = tn_text(orig)?;
    let dest_tn = tn_text(dest)?;
    let mut d = Dec {
        b: &rest,
        dict: &mut *dict,
    };
    let flags = d.varint()?;
    let pref = d.varint()?;
    let profile = if pref & 1 == 0 {
        let id = i64::try_from(pref >> 1).map_err(|_| Corrupt("profile id"))?;
        let b = d.dict.blob(id)?;
        decode_profile(&b, d.dict)?
    } else {
        let b = d.take(pref >> 1)?.to_vec();
        decode_profile(&b, d.dict)?
    };
    let mut forms = d.varint()?;
    let mut users = [None, None, None];
    for (i, user) in users.iter_mut().enumerate() {
        let tn = if i == 2 { &dest_tn } else { &orig_tn };
        *user = d.user(forms % 5, tn.as_deref())?;
        forms /= 5;
    }
    if forms != 0 {
        return Err(Corrupt("user forms"));
    }
    let [from_user, pai_user, ruri_user] = users;
    let iat = d
        .opt()?
        .map(|z| unzigzag(z).wrapping_add(observed_at.as_secs()));
    let identity_headers = match flags & IDH_MASK {
        3 => u16::try_from(d.varint()?).map_err(|_| Corrupt("identity"))?,
        n => n as u16,
    };
    let (mut code, mut reason, mut div) = (None, None, Vec::new());
    if flags & EXTRAS != 0 {
        code = d.u16()?;
        reason = d.str()?;
        let ndiv = d.varint()?;
        for _ in 0..ndiv {
            let verstat = d.str()?.ok_or(Corrupt("div verstat"))?;
            let code = d.u16()?;
            let reason = d.str()?;
            let orig = d.str()?;
            let ndest = d.varint()?;
            let mut dests = Vec::new();
            for _ in 0..ndest {
                dests.push(d.str()?.ok_or(Corrupt("div dest"))?);
            }
            div.push(DivResult {
                verstat,
                code,
                reason,
                orig,
                dest: dests,
                div: d.str()?,
                x5u: d.str()?,
            });
        }
    }
    let final_code = d.u16()?;
    let ring_ms = d.opt()?;
    let duration_ms = d.opt()?;
    let ms = ring_ms.unwrap_or(0).wrapping_add(duration_ms.unwrap_or(0)) as i64;
    let ended_at = Timestamp(
        observed_at
            .0
            .wrapping_add(ms.wrapping_mul(1000))
            .wrapping_add(unzigzag(d.varint()?)),
    );
    if !d.b.is_empty() {
        return Err(Corrupt("trailing bytes"));
    }
    let sensor_id = profile.sensor_id;
    let record_id = match rid {
        Value::Blob(b) if b.len() == 16 => format!("{sensor_id}:{}", uuid_text(&b)),
        Value::Text(s) => s,
        _ => return Err(Corrupt("record id")),
    };
    let call_id = match cid {
        Value::Blob(b) if b.len() == 16 => uuid_text(&b),
        Value::Blob(b) => {
            let mut c = Dec {
                b: &b,
                dict: &mut *dict,
            };
            let id = i64::try_from(c.varint()?).map_err(|_| Corrupt("cid"))?;
            let host = c.dict.get(id)?;
            let mut s = String::with_capacity(c.b.len() * 2 + 1 + host.len());
            push_hex(&mut s, c.b);
            s.push('@');
            s.push_str(&host);
            s
        }
        Value::Text(s) => s,
        _ => return Err(Corrupt("call id")),
    };
    Ok(CallRecord {
        schema: CALL_SCHEMA,
        record_id,
        sensor_id,
        observed_at,
        call_id,
        transport: if profile.tcp {
            Transport::Tcp
        } else {
            Transport::Udp
        },
        src: profile.src,
        dst: profile.dst,
        upstream: Upstream {
            peer: col_arc(peer, dict)?.ok_or(Corrupt("peer"))?,
            ocn: profile.ocn,
        },
        orig_tn,
        dest_tn,
        from_user,
        pai_user,
        ruri_user,
        user_agent: profile.user_agent,
        shaken: ShakenResult {
            verstat: col_str(verstat, dict)?,
            attest: col_str(attest, dict)?,
            origid: col_str(origid, dict)?,
            spc: col_str(spc, dict)?,
            x5u: col_str(x5u, dict)?,
            iat,
            code,
            reason,
            replayed: flags & REPLAYED != 0,
            div,
            identity_headers,
        },
        dialog: DialogOutcome {
            final_code,
            answered: flags & ANSWERED != 0,
            ring_ms,
            duration_ms,
            ended_by: ended_from((flags >> ENDED_SHIFT) & 7)?,
            cancelled: flags & CANCELLED != 0,
            ended_at,
        },
        sdp: profile.sdp,
        capture_agent: profile.capture_agent,
        fingerprint: col_str(fp, dict)?,
        trace: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Lookup for Dict {
        fn get(&mut self, id: i64) -> Result<Arc<str>, Corrupt> {
            let k = self.key(id)?;
            std::str::from_utf8(&k)
                .map(Arc::from)
                .map_err(|_| Corrupt("not a string"))
        }
        fn blob(&mut self, id: i64) -> Result<Arc<[u8]>, Corrupt> {
            let k = self.key(id)?;
            match k.split_first() {
                Some((&BLOB_KEY, b)) => Ok(Arc::from(b)),
                _ => Err(Corrupt("not a profile")),
            }
        }
    }

    impl Dict {
        fn key(&self, id: i64) -> Result<Box<[u8]>, Corrupt> {
            self.ids
                .iter()
                .find(|(_, &v)| v == id)
                .map(|(k, _)| k.clone())
                .ok_or(Corrupt("dict id"))
        }
    }

    #[test]
    fn numbers_are_integers_only_when_they_round_trip() {
        assert_eq!(tn_value("13035550177"), Value::Integer(13_035_550_177));
        assert_eq!(tn_value("0"), Value::Integer(0));
        for text in ["0044201234", "*67", "12#", "", "1234567890123456789"] {
            assert_eq!(tn_value(text), Value::Text(text.into()), "{text}");
            assert_eq!(tn_text(tn_value(text)), Ok(Some(text.to_string())));
        }
    }

    #[test]
    fn call_ids_and_record_ids_round_trip_in_every_form() {
        let mut dict = Dict {
            next: 1,
            ..Dict::default()
        };
        for cid in [
            "c6f8d2c6-c992-4a9c-8cf3-fc1107ec101a",
            "C6F8D2C6-C992-4A9C-8CF3-FC1107EC101A",
            "c6adc47cc1522586@198.18.4.11",
            "00112233445566778899aabbccddee@h",
            "abc@h",
            "@",
            "a@b@c",
            "x",
            "",
        ] {
            let v = cid_value(cid, &mut dict);
            let mut r = crate::record::CallRecord {
                call_id: cid.into(),
                ..sample()
            };
            r.record_id = "s:c6f8d2c6-c992-4a9c-8cf3-fc1107ec101a".into();
            let cols = encode(&r, &mut dict);
            assert_eq!(cols[3], v);
            let back = decode(r.observed_at, cols, &mut dict).expect("decodes");
            assert_eq!(back, r, "{cid}");
        }
    }

    fn sample() -> CallRecord {
        CallRecord {
            schema: CALL_SCHEMA,
            record_id: "other-sensor:1".into(),
            sensor_id: Arc::from("s"),
            observed_at: Timestamp(1_795_000_000_123_456),
            call_id: "x".into(),
            transport: Transport::Tcp,
            src: Endpoint {
                ip: "2001:db8::1".parse().expect("ip"),
                port: 5061,
            },
            dst: Endpoint {
                ip: "192.0.2.1".parse().expect("ip"),
                port: 5060,
            },
            upstream: Upstream {
                peer: Arc::from("p"),
                ocn: None,
            },
            orig_tn: Some("0044123".into()),
            dest_tn: Some("13035550177".into()),
            from_user: Some("44123".into()),
            pai_user: Some("+0044123".into()),
            ruri_user: Some("3035550177".into()),
            user_agent: None,
            shaken: ShakenResult {
                verstat: Some("TN-Validation-Failed".into()),
                iat: Some(1_795_000_000 - 400_000),
                code: Some(438),
                reason: Some("bad signature ü".into()),
                replayed: true,
                div: vec![DivResult {
                    verstat: "TN-Validation-Passed".into(),
                    code: None,
                    reason: None,
                    orig: Some("1".into()),
                    dest: vec!["2".into(), "3".into()],
                    div: Some("4".into()),
                    x5u: Some("https://x/y.pem".into()),
                }],
                identity_headers: 3,
                ..ShakenResult::default()
            },
            dialog: DialogOutcome {
                final_code: None,
                answered: false,
                ring_ms: Some(0),
                duration_ms: None,
                ended_by: EndedBy::Evicted,
                cancelled: true,
                ended_at: Timestamp(1_795_000_000_123_456 - 5),
            },
            sdp: Some(SdpTraits {
                origin_user: Some("-".into()),
                conn_addr: Some("10.0.0.1".into()),
                codecs: vec![],
            }),
            fingerprint: Some("ef6bcf54f6c74f9d".into()),
            capture_agent: Some(2001),
            trace: None,
        }
    }

    #[test]
    fn unusual_records_round_trip_and_corrupt_blobs_are_errors() {
        let mut dict = Dict {
            next: 1,
            ..Dict::default()
        };
        let r = sample();
        let cols = encode(&r, &mut dict);
        let back = decode(r.observed_at, cols.clone(), &mut dict).expect("decodes");
        assert_eq!(back, r);
        let Value::Blob(rest) = &cols[11] else {
            panic!("rest is a blob")
        };
        for cut in 0..rest.len() {
            let mut c = cols.clone();
            c[11] = Value::Blob(rest[..cut].to_vec());
            assert!(decode(r.observed_at, c, &mut dict).is_err(), "cut at {cut}");
        }
        let mut c = cols.clone();
        c[11] = Value::Blob(vec![0xff; 11]);
        assert!(decode(r.observed_at, c, &mut dict).is_err());
    }
}
