//! The TNAuthList certificate extension (RFC 8226 §9, ATIS-1000080): which Service Provider
//! Codes, telephone-number ranges and single numbers an STI certificate speaks for, decoded by
//! hand from DER with a small bounds-checked reader (one-byte tags, definite lengths up to four
//! length octets, a nesting limit, capped entry counts).
//!
//! This module must never panic, index out of bounds, recurse without a limit or allocate in
//! proportion to a length field it has not checked against the bytes actually present.
//!
//! ```text
//! TNAuthorizationList ::= SEQUENCE SIZE (1..MAX) OF TNEntry
//! TNEntry ::= CHOICE { spc [0] ServiceProviderCode, range [1] TelephoneNumberRange,
//!                      one [2] TelephoneNumber }          -- EXPLICIT TAGS
//! ServiceProviderCode ::= IA5String
//! TelephoneNumberRange ::= SEQUENCE { start TelephoneNumber, count INTEGER (2..MAX), ... }
//! TelephoneNumber ::= IA5String (SIZE (1..15)) (FROM ("0123456789#*"))
//! ```
//!
//! Leniency, on purpose: the `[0]`/`[1]`/`[2]` tags are accepted both EXPLICIT (as the RFC
//! module says and the deployed PKI encodes them) and IMPLICIT; a range count of 1 is accepted;
//! entries with another tag, and the legacy form written by libstirshaken's test CA (a bare
//! IA5String holding a URI instead of the SEQUENCE), are kept as raw DER in
//! [`TnAuthList::unknown`] instead of failing the certificate. Whoever needs an SPC must look
//! at [`TnAuthList::spcs`], which is then empty.

use super::certs::CertError;

/// OID of the TNAuthList extension (id-pe-TNAuthList).
pub const TN_AUTH_LIST_OID: &str = "1.3.6.1.5.5.7.1.26";
/// The same OID, DER-encoded content octets.
pub(crate) const TN_AUTH_LIST_OID_DER: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1a];

/// Most entries a TNAuthList may hold (the extension is itself bounded by the cert size cap).
pub const MAX_TN_ENTRIES: usize = 4096;
/// Longest Service Provider Code accepted (real ones are 4 characters).
pub const MAX_SPC_LEN: usize = 64;
/// Deepest nesting accepted when checking an unknown entry for well-formedness.
pub const MAX_DER_DEPTH: usize = 8;

/// What a certificate's TNAuthList authorizes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TnAuthList {
    /// Service Provider Codes (`spc [0]`), in certificate order.
    pub spcs: Vec<String>,
    /// Telephone-number ranges (`range [1]`): start TN and count.
    pub ranges: Vec<(String, u32)>,
    /// Single telephone numbers (`one [2]`).
    pub tns: Vec<String>,
    /// Entries of an unknown kind, raw DER TLVs: other CHOICE tags, and the legacy bare
    /// IA5String form (libstirshaken's test CA puts a URI there). Never an authorization.
    pub unknown: Vec<Vec<u8>>,
}

impl TnAuthList {
    /// The first Service Provider Code, if any.
    pub fn spc(&self) -> Option<&str> {
        self.spcs.first().map(String::as_str)
    }

    /// True when no SPC, range or TN was found (only unknown entries).
    pub fn authorizes_nothing(&self) -> bool {
        self.spcs.is_empty() && self.ranges.is_empty() && self.tns.is_empty()
    }

    /// Unknown entries shown as text where they are printable strings (for logs and
    /// `inspect`), else as hex; control characters never come out.
    pub fn unknown_text(&self) -> Vec<String> {
        self.unknown
            .iter()
            .map(|raw| {
                let mut r = DerReader::new(raw);
                match r.read() {
                    Ok(Some(t))
                        if matches!(t.tag, TAG_IA5 | TAG_UTF8 | TAG_PRINTABLE)
                            && t.value.iter().all(|b| (0x20..0x7f).contains(b)) =>
                    {
                        String::from_utf8_lossy(t.value).into_owned()
                    }
                    _ => hex(raw),
                }
            })
            .collect()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Decodes the extension value (the content of the extension's OCTET STRING).
pub fn parse_tn_auth_list(ext_value: &[u8]) -> Result<TnAuthList, CertError> {
    let bad = |m: &str| CertError::BadTnAuthList(m.to_string());
    let mut top = DerReader::new(ext_value);
    let list = top
        .read()
        .map_err(|e| bad(e.0))?
        .ok_or_else(|| bad("empty extension value"))?;
    if !top.is_empty() {
        return Err(bad("trailing bytes after the TNAuthList"));
    }
    let mut out = TnAuthList::default();
    match list.tag {
        TAG_SEQUENCE => {}
        TAG_IA5 => {
            // Legacy libstirshaken form: a bare IA5String (a URI), not the RFC 8226 SEQUENCE.
            ia5_visible(list.value, 2048).map_err(|m| bad(&format!("legacy string form: {m}")))?;
            out.unknown.push(list.raw.to_vec());
            return Ok(out);
        }
        t => return Err(bad(&format!("expected a SEQUENCE, found tag 0x{t:02x}"))),
    }
    let mut entries = DerReader::new(list.value);
    let mut n = 0usize;
    while let Some(entry) = entries.read().map_err(|e| bad(e.0))? {
        n += 1;
        if n > MAX_TN_ENTRIES {
            return Err(bad(&format!("more than {MAX_TN_ENTRIES} entries")));
        }
        match entry.tag {
            // spc [0]: EXPLICIT (A0 { IA5String }) or IMPLICIT (80)
            0xa0 => {
                let s =
                    single_inner(entry.value, TAG_IA5).map_err(|m| bad(&format!("spc: {m}")))?;
                out.spcs
                    .push(spc(s).map_err(|m| bad(&format!("spc: {m}")))?);
            }
            0x80 => out
                .spcs
                .push(spc(entry.value).map_err(|m| bad(&format!("spc: {m}")))?),
            // range [1]: EXPLICIT (A1 { SEQUENCE {..} }) or IMPLICIT (A1 { start, count })
            0xa1 => {
                let mut r = DerReader::new(entry.value);
                let first = r
                    .read()
                    .map_err(|e| bad(&format!("range: {}", e.0)))?
                    .ok_or_else(|| bad("range: empty"))?;
                let body = if first.tag == TAG_SEQUENCE {
                    if !r.is_empty() {
                        return Err(bad("range: trailing bytes"));
                    }
                    first.value
                } else {
                    entry.value
                };
                out.ranges
                    .push(range(body).map_err(|m| bad(&format!("range: {m}")))?);
            }
            // one [2]: EXPLICIT (A2 { IA5String }) or IMPLICIT (82)
            0xa2 => {
                let s =
                    single_inner(entry.value, TAG_IA5).map_err(|m| bad(&format!("one: {m}")))?;
                out.tns.push(tn(s).map_err(|m| bad(&format!("one: {m}")))?);
            }
            0x82 => out
                .tns
                .push(tn(entry.value).map_err(|m| bad(&format!("one: {m}")))?),
            _ => {
                check_well_formed(entry.raw, MAX_DER_DEPTH)
                    .map_err(|e| bad(&format!("unknown entry: {}", e.0)))?;
                out.unknown.push(entry.raw.to_vec());
            }
        }
    }
    if n == 0 {
        return Err(bad("empty SEQUENCE (SIZE (1..MAX) required)"));
    }
    Ok(out)
}

/// The one TLV inside an EXPLICIT tag, which must carry `tag`.
fn single_inner(value: &[u8], tag: u8) -> Result<&[u8], String> {
    let mut r = DerReader::new(value);
    let t = r.read().map_err(|e| e.0.to_string())?.ok_or("empty")?;
    if t.tag != tag {
        return Err(format!("expected tag 0x{tag:02x}, found 0x{:02x}", t.tag));
    }
    if !r.is_empty() {
        return Err("trailing bytes".into());
    }
    Ok(t.value)
}

fn ia5_visible(v: &[u8], max: usize) -> Result<String, String> {
    if v.is_empty() || v.len() > max {
        return Err(format!("length {} outside 1..={max}", v.len()));
    }
    if !v.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err("not printable ASCII".into());
    }
    // All bytes are ASCII, so this is lossless.
    Ok(String::from_utf8_lossy(v).into_owned())
}

fn spc(v: &[u8]) -> Result<String, String> {
    ia5_visible(v, MAX_SPC_LEN)
}

fn tn(v: &[u8]) -> Result<String, String> {
    if v.is_empty() || v.len() > 15 {
        return Err(format!(
            "telephone number length {} outside 1..=15",
            v.len()
        ));
    }
    if !v
        .iter()
        .all(|b| b.is_ascii_digit() || *b == b'#' || *b == b'*')
    {
        return Err("telephone number has characters outside 0-9 # *".into());
    }
    Ok(String::from_utf8_lossy(v).into_owned())
}

fn range(body: &[u8]) -> Result<(String, u32), String> {
    let mut r = DerReader::new(body);
    let start = r
        .read()
        .map_err(|e| e.0.to_string())?
        .ok_or("missing start")?;
    if start.tag != TAG_IA5 {
        return Err(format!(
            "start: expected IA5String, found tag 0x{:02x}",
            start.tag
        ));
    }
    let start = tn(start.value)?;
    let count = r
        .read()
        .map_err(|e| e.0.to_string())?
        .ok_or("missing count")?;
    if count.tag != TAG_INTEGER {
        return Err(format!(
            "count: expected INTEGER, found tag 0x{:02x}",
            count.tag
        ));
    }
    let count = der_u32(count.value)?;
    if count == 0 {
        return Err("count is 0".into());
    }
    // The type has an extension marker: later fields may follow; they must be well formed.
    while let Some(extra) = r.read().map_err(|e| e.0.to_string())? {
        check_well_formed(extra.raw, MAX_DER_DEPTH).map_err(|e| e.0.to_string())?;
    }
    Ok((start, count))
}

/// A non-negative DER INTEGER that fits in u32 (minimal encoding required).
fn der_u32(v: &[u8]) -> Result<u32, String> {
    match v {
        [] => Err("empty INTEGER".into()),
        [first, ..] if first & 0x80 != 0 => Err("negative INTEGER".into()),
        [0, second, ..] if second & 0x80 == 0 => Err("INTEGER not minimally encoded".into()),
        _ => {
            let digits = if v[0] == 0 { &v[1..] } else { v };
            if digits.len() > 4 {
                return Err("INTEGER larger than 2^32-1".into());
            }
            Ok(digits
                .iter()
                .fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
        }
    }
}

pub(crate) const TAG_INTEGER: u8 = 0x02;
pub(crate) const TAG_UTF8: u8 = 0x0c;
pub(crate) const TAG_PRINTABLE: u8 = 0x13;
pub(crate) const TAG_IA5: u8 = 0x16;
pub(crate) const TAG_SEQUENCE: u8 = 0x30;

/// A DER decoding error (static text: position-independent, cheap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DerError(pub &'static str);

/// One tag-length-value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    pub value: &'a [u8],
    /// The whole encoding: tag, length and value.
    pub raw: &'a [u8],
}

/// Reads consecutive TLVs from a slice. One-byte tags only (the high-tag-number form is
/// refused), definite lengths only, at most four length octets, minimal length encoding.
pub(crate) struct DerReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> DerReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        DerReader { buf, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// The next TLV, `None` at the end of the input.
    pub fn read(&mut self) -> Result<Option<Tlv<'a>>, DerError> {
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        if rest.is_empty() {
            return Ok(None);
        }
        let (tag, len, header) = header(rest)?;
        let total = header.checked_add(len).ok_or(DerError("length overflow"))?;
        let raw = rest.get(..total).ok_or(DerError("truncated value"))?;
        let value = raw.get(header..).ok_or(DerError("truncated value"))?;
        self.pos = self.pos.saturating_add(total);
        Ok(Some(Tlv { tag, value, raw }))
    }
}

/// Tag, content length and header length of the TLV at the start of `b`.
fn header(b: &[u8]) -> Result<(u8, usize, usize), DerError> {
    let tag = *b.first().ok_or(DerError("missing tag"))?;
    if tag & 0x1f == 0x1f {
        return Err(DerError("high-tag-number form not supported"));
    }
    let l0 = *b.get(1).ok_or(DerError("truncated length"))?;
    if l0 < 0x80 {
        return Ok((tag, usize::from(l0), 2));
    }
    let n = usize::from(l0 & 0x7f);
    if n == 0 {
        return Err(DerError("indefinite length not allowed in DER"));
    }
    if n > 4 {
        return Err(DerError("length field longer than 4 octets"));
    }
    let octets = b.get(2..2 + n).ok_or(DerError("truncated length"))?;
    if octets.first() == Some(&0) {
        return Err(DerError("length not minimally encoded"));
    }
    let len = octets
        .iter()
        .fold(0usize, |acc, o| (acc << 8) | usize::from(*o));
    if len < 0x80 {
        return Err(DerError("long-form length below 128"));
    }
    Ok((tag, len, 2 + n))
}

/// Checks that `b` is exactly one well-formed TLV whose constructed contents nest at most
/// `max_depth` levels. Recursion is bounded by `max_depth`.
pub(crate) fn check_well_formed(b: &[u8], max_depth: usize) -> Result<(), DerError> {
    let mut r = DerReader::new(b);
    let t = r.read()?.ok_or(DerError("empty"))?;
    if !r.is_empty() {
        return Err(DerError("trailing bytes"));
    }
    check_contents(t, max_depth)
}

fn check_contents(t: Tlv<'_>, depth_left: usize) -> Result<(), DerError> {
    if t.tag & 0x20 == 0 {
        return Ok(());
    }
    if depth_left == 0 {
        return Err(DerError("nesting too deep"));
    }
    let mut r = DerReader::new(t.value);
    while let Some(inner) = r.read()? {
        check_contents(inner, depth_left - 1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        let n = value.len();
        if n < 0x80 {
            v.push(n as u8);
        } else if n < 0x100 {
            v.extend_from_slice(&[0x81, n as u8]);
        } else {
            v.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
        }
        v.extend_from_slice(value);
        v
    }

    fn spc_entry(s: &str) -> Vec<u8> {
        tlv(0xa0, &tlv(0x16, s.as_bytes()))
    }

    fn range_entry(start: &str, count: &[u8]) -> Vec<u8> {
        let seq = [tlv(0x16, start.as_bytes()), tlv(0x02, count)].concat();
        tlv(0xa1, &tlv(0x30, &seq))
    }

    fn one_entry(t: &str) -> Vec<u8> {
        tlv(0xa2, &tlv(0x16, t.as_bytes()))
    }

    fn list(entries: &[Vec<u8>]) -> Vec<u8> {
        tlv(0x30, &entries.concat())
    }

    fn err(v: &[u8]) -> String {
        match parse_tn_auth_list(v) {
            Err(CertError::BadTnAuthList(m)) => m,
            other => panic!("expected BadTnAuthList, got {other:?}"),
        }
    }

    #[test]
    fn spc_as_in_the_asterisk_and_comcast_certs() {
        let t = parse_tn_auth_list(&[0x30, 0x05, 0xa0, 0x03, 0x16, 0x01, 0x31]).unwrap();
        assert_eq!(t.spcs, vec!["1"]);
        assert_eq!(t.spc(), Some("1"));
        let t = parse_tn_auth_list(&[0x30, 0x08, 0xa0, 0x06, 0x16, 0x04, b'3', b'1', b'8', b'J'])
            .unwrap();
        assert_eq!(t.spc(), Some("318J"));
        assert!(t.ranges.is_empty() && t.tns.is_empty() && t.unknown.is_empty());
    }

    #[test]
    fn range_and_one() {
        let v = list(&[
            range_entry("12155550000", &[0x27, 0x10]),
            one_entry("12155551234"),
        ]);
        let t = parse_tn_auth_list(&v).unwrap();
        assert_eq!(t.ranges, vec![("12155550000".to_string(), 10_000)]);
        assert_eq!(t.tns, vec!["12155551234"]);
        assert_eq!(t.spc(), None);
        assert!(!t.authorizes_nothing());
    }

    #[test]
    fn implicit_tags_are_accepted() {
        let range_implicit = tlv(0xa1, &[tlv(0x16, b"1215555"), tlv(0x02, &[0x02])].concat());
        let v = list(&[tlv(0x80, b"ABCD"), range_implicit, tlv(0x82, b"*67#")]);
        let t = parse_tn_auth_list(&v).unwrap();
        assert_eq!(t.spcs, vec!["ABCD"]);
        assert_eq!(t.ranges, vec![("1215555".to_string(), 2)]);
        assert_eq!(t.tns, vec!["*67#"]);
    }

    #[test]
    fn multiple_entries_keep_order() {
        let v = list(&[
            spc_entry("318J"),
            spc_entry("0123"),
            one_entry("15551230000"),
            range_entry("1555", &[0x00, 0x80]),
        ]);
        let t = parse_tn_auth_list(&v).unwrap();
        assert_eq!(t.spcs, vec!["318J", "0123"]);
        assert_eq!(t.spc(), Some("318J"));
        assert_eq!(t.tns, vec!["15551230000"]);
        assert_eq!(t.ranges, vec![("1555".to_string(), 128)]);
    }

    #[test]
    fn long_form_lengths() {
        // 200 SPC entries: the outer SEQUENCE needs a two-octet long-form length.
        let entries: Vec<Vec<u8>> = (0..200).map(|i| spc_entry(&format!("S{i:03}"))).collect();
        let v = list(&entries);
        assert_eq!(v[1], 0x82);
        let t = parse_tn_auth_list(&v).unwrap();
        assert_eq!(t.spcs.len(), 200);
        assert_eq!(t.spcs[199], "S199");
        // A 0x81 length on a short value is not DER.
        assert!(err(&[0x30, 0x81, 0x05, 0xa0, 0x03, 0x16, 0x01, 0x31]).contains("below 128"));
        // Leading zero length octet.
        assert!(err(&[0x30, 0x82, 0x00, 0x05, 0xa0, 0x03, 0x16, 0x01, 0x31]).contains("minimal"));
        // Indefinite length, 5-octet lengths, huge lengths.
        assert!(err(&[0x30, 0x80, 0xa0, 0x03, 0x16, 0x01, 0x31, 0, 0]).contains("indefinite"));
        assert!(err(&[0x30, 0x85, 1, 0, 0, 0, 0]).contains("4 octets"));
        assert!(err(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0xa0]).contains("truncated"));
    }

    #[test]
    fn truncated_inputs_fail_cleanly() {
        let good = list(&[
            spc_entry("318J"),
            range_entry("1555", &[0x10]),
            one_entry("15551230000"),
        ]);
        for cut in 0..good.len() {
            assert!(
                parse_tn_auth_list(&good[..cut]).is_err(),
                "prefix of {cut} bytes accepted"
            );
        }
        assert!(parse_tn_auth_list(&good).is_ok());
    }

    #[test]
    fn trailing_garbage_is_refused() {
        let mut v = list(&[spc_entry("1")]);
        v.push(0x00);
        assert!(err(&v).contains("trailing"));
        // Trailing bytes inside an EXPLICIT spc wrapper.
        let inner = [tlv(0x16, b"1"), vec![0x05, 0x00]].concat();
        assert!(err(&list(&[tlv(0xa0, &inner)])).contains("trailing"));
    }

    #[test]
    fn nesting_bombs_are_bounded() {
        // 10,000 nested unknown constructed tags: refused with an error, no stack overflow.
        let mut v = tlv(0x16, b"x");
        for _ in 0..10_000 {
            if v.len() > 60_000 {
                break;
            }
            v = tlv(0xa5, &v);
        }
        let v = list(&[v]);
        let m = err(&v);
        assert!(m.contains("too deep") || m.contains("length"), "{m}");
        // Deep nesting in a known slot is a type error, not recursion.
        let mut v = tlv(0x16, b"1");
        for _ in 0..200 {
            v = tlv(0xa0, &v);
        }
        assert!(parse_tn_auth_list(&list(&[v])).is_err());
        // A shallow unknown entry is kept raw.
        let unknown = tlv(0xa3, &tlv(0x30, &tlv(0x16, b"x")));
        let t = parse_tn_auth_list(&list(&[spc_entry("1"), unknown.clone()])).unwrap();
        assert_eq!(t.unknown, vec![unknown]);
        assert_eq!(t.spc(), Some("1"));
    }

    #[test]
    fn legacy_bare_string_is_kept_as_unknown() {
        let s = b"ca.shaken.signalwire.cloud/sti-ca/acme/TNAuthList";
        let v = tlv(0x16, s);
        let t = parse_tn_auth_list(&v).unwrap();
        assert!(t.authorizes_nothing());
        assert_eq!(t.spc(), None);
        assert_eq!(t.unknown, vec![v]);
        assert_eq!(
            t.unknown_text(),
            vec![String::from_utf8_lossy(s).into_owned()]
        );
    }

    #[test]
    fn content_rules() {
        assert!(err(&[0x30, 0x00]).contains("empty"));
        assert!(err(&[]).contains("empty"));
        assert!(err(&[0x04, 0x01, 0x00]).contains("SEQUENCE"));
        assert!(err(&list(&[spc_entry("")])).contains("length 0"));
        assert!(err(&list(&[spc_entry("a\nb")])).contains("printable"));
        assert!(err(&list(&[spc_entry(&"x".repeat(65))])).contains("length 65"));
        assert!(err(&list(&[one_entry("1215555123412345")])).contains("length 16"));
        assert!(err(&list(&[one_entry("+12155551234")])).contains("0-9"));
        assert!(err(&list(&[range_entry("1555", &[0x00])])).contains("count is 0"));
        assert!(err(&list(&[range_entry("1555", &[0xff])])).contains("negative"));
        assert!(err(&list(&[range_entry("1555", &[0x00, 0x01])])).contains("minimal"));
        assert!(err(&list(&[range_entry("1555", &[1, 0, 0, 0, 0])])).contains("2^32"));
        assert!(err(&[0x30, 0x03, 0xbf, 0x1f, 0x00]).contains("high-tag"));
        let too_many: Vec<Vec<u8>> = (0..=MAX_TN_ENTRIES)
            .map(|_| vec![0x82, 0x01, b'1'])
            .collect();
        assert!(err(&list(&too_many)).contains("more than"));
    }

    #[test]
    fn reader_never_panics_on_short_random_inputs() {
        // A cheap deterministic fuzz: every 1..3 byte input and a pseudo-random corpus.
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let _ = parse_tn_auth_list(&[a, b]);
                let _ = parse_tn_auth_list(&[0x30, a, b]);
                let _ = parse_tn_auth_list(&[0x30, 0x04, 0xa0, 0x02, a, b]);
                let _ = check_well_formed(&[a, b, a], 4);
            }
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut v = Vec::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 24) as usize;
            for i in 0..len {
                v.push((x >> ((i % 8) * 8)) as u8);
            }
            let _ = parse_tn_auth_list(&v);
        }
    }
}
