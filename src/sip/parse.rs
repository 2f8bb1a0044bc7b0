//! The SIP message parser: one pass over a framed message (start line, header fields, body)
//! producing a [`SipMessage`] of borrowed views (RFC 3261 §7).
//!
//! It must never allocate, never panic, and never read more than `limits` allow before giving
//! up: every line search is bounded by `max_header_line`, every field is counted against
//! `max_headers`. Malformed input is a typed [`SipError`], not a guess.

use memchr::{memchr, memchr3};

use super::error::SipError;
use super::framing::{keepalive_len, parse_decimal};
use super::header::{hash_header_name, is_token_char, split_list, trim, HeaderName, FNV_OFFSET};
use super::message::{BoundedVec, CSeq, Method, ParseLimits, SipMessage, StartLine};

/// Parses one framed SIP message. Leading CRLF keep-alives are skipped; `raw` is all of `buf`.
/// Headers end at the first empty line (CRLF or bare LF) or at the end of `buf`; the body is
/// whatever follows the empty line, whatever Content-Length says.
pub fn parse<'a>(buf: &'a [u8], limits: &ParseLimits) -> Result<SipMessage<'a>, SipError> {
    let mut pos = keepalive_len(buf);
    if pos >= buf.len() {
        return Err(SipError::Empty);
    }
    let line_end = find_line_end(buf, pos, limits.max_header_line)?;
    let start = parse_start_line(strip_cr(&buf[pos..line_end]))?;
    pos = (line_end + 1).min(buf.len());

    let head_start = pos;
    let mut st = Fields::default();
    let (head_end, body_start) = loop {
        let rest = &buf[pos..];
        match rest {
            [] => break (pos, pos),
            [b'\n', ..] => break (pos, pos + 1),
            [b'\r', b'\n', ..] => break (pos, pos + 2),
            // A continuation line with no header before it.
            [b' ' | b'\t', ..] => return Err(SipError::BadHeaderLine),
            _ => {}
        }
        let field_start = pos;
        let field_end = loop {
            let end = find_line_end(buf, pos, limits.max_header_line)?;
            pos = (end + 1).min(buf.len());
            if !matches!(buf.get(pos), Some(b' ' | b'\t')) {
                break end;
            }
        };
        let field = strip_cr(&buf[field_start..field_end]);
        if field.len() > limits.max_header_line {
            return Err(SipError::HeaderLineTooLong);
        }
        st.header_count += 1;
        if st.header_count > limits.max_headers {
            return Err(SipError::TooManyHeaders);
        }
        st.field(field)?;
    };

    let call_id = st.call_id.ok_or(SipError::MissingCallId)?;
    let from = st.from.ok_or(SipError::MissingFrom)?;
    let to = st.to.ok_or(SipError::MissingTo)?;
    let cseq = st.cseq.ok_or(SipError::MissingCSeq)?;
    let user_agent = match start {
        StartLine::Request { .. } => st.user_agent.or(st.server),
        StartLine::Response { .. } => st.server.or(st.user_agent),
    };
    Ok(SipMessage {
        start,
        call_id,
        from,
        to,
        cseq,
        via_count: st.via_count,
        pai: st.pai,
        user_agent,
        contact: st.contact,
        content_type: st.content_type,
        content_length: st.content_length,
        identity: st.identity,
        identity_overflow: st.identity_overflow,
        header_count: u16::try_from(st.header_count).unwrap_or(u16::MAX),
        header_order_hash: st.hash,
        head: &buf[head_start..head_end],
        body: &buf[body_start..],
        raw: buf,
    })
}

/// What the header loop has collected so far.
struct Fields<'a> {
    call_id: Option<&'a [u8]>,
    from: Option<&'a [u8]>,
    to: Option<&'a [u8]>,
    cseq: Option<CSeq<'a>>,
    via_count: u16,
    pai: Option<&'a [u8]>,
    user_agent: Option<&'a [u8]>,
    server: Option<&'a [u8]>,
    contact: Option<&'a [u8]>,
    content_type: Option<&'a [u8]>,
    content_length: Option<usize>,
    identity: BoundedVec<&'a [u8], 8>,
    identity_overflow: u16,
    header_count: usize,
    hash: u64,
}

impl Default for Fields<'_> {
    fn default() -> Self {
        Fields {
            call_id: None,
            from: None,
            to: None,
            cseq: None,
            via_count: 0,
            pai: None,
            user_agent: None,
            server: None,
            contact: None,
            content_type: None,
            content_length: None,
            identity: BoundedVec::new(),
            identity_overflow: 0,
            header_count: 0,
            hash: FNV_OFFSET,
        }
    }
}

impl<'a> Fields<'a> {
    /// One header field (continuation lines included, final CR stripped).
    fn field(&mut self, field: &'a [u8]) -> Result<(), SipError> {
        let colon = memchr(b':', field).ok_or(SipError::BadHeaderLine)?;
        let name = trim(&field[..colon]);
        if name.is_empty() || !name.iter().all(|&b| is_token_char(b)) {
            return Err(SipError::BadHeaderLine);
        }
        let value = trim(&field[colon + 1..]);
        let kind = HeaderName::from_bytes(name);
        self.hash = hash_header_name(self.hash, kind, name);
        let first = |slot: &mut Option<&'a [u8]>| {
            if slot.is_none() && !value.is_empty() {
                *slot = Some(value);
            }
        };
        match kind {
            HeaderName::CallId => first(&mut self.call_id),
            HeaderName::From => first(&mut self.from),
            HeaderName::To => first(&mut self.to),
            HeaderName::CSeq if self.cseq.is_none() => self.cseq = Some(parse_cseq(value)?),
            HeaderName::Via => {
                // Fast path: one entry unless there is a comma (or a quote/angle to honour).
                let n = if memchr3(b',', b'"', b'<', value).is_none() {
                    usize::from(!value.is_empty())
                } else {
                    split_list(value).count()
                };
                let n = u16::try_from(n).unwrap_or(u16::MAX);
                self.via_count = self.via_count.saturating_add(n);
            }
            HeaderName::PAssertedIdentity => first(&mut self.pai),
            HeaderName::UserAgent => first(&mut self.user_agent),
            HeaderName::Server => first(&mut self.server),
            HeaderName::Contact => first(&mut self.contact),
            HeaderName::ContentType => first(&mut self.content_type),
            HeaderName::ContentLength if self.content_length.is_none() => {
                // Framing has already bounded the message and counted a bad length; the rest of
                // the message is still worth reading (a malformed INVITE is still a call).
                self.content_length = parse_decimal(value);
            }
            HeaderName::Identity if self.identity.push(value).is_err() => {
                self.identity_overflow = self.identity_overflow.saturating_add(1);
            }
            _ => {}
        }
        Ok(())
    }
}

/// Index of the `\n` ending the line that starts at `pos` (or `buf.len()` for a last line
/// without one), searching at most `max` bytes plus the line ending.
fn find_line_end(buf: &[u8], pos: usize, max: usize) -> Result<usize, SipError> {
    let window_end = buf.len().min(pos.saturating_add(max).saturating_add(2));
    match memchr(b'\n', &buf[pos..window_end]) {
        Some(nl) if strip_cr(&buf[pos..pos + nl]).len() <= max => Ok(pos + nl),
        Some(_) => Err(SipError::HeaderLineTooLong),
        None if window_end == buf.len() && buf.len() - pos <= max => Ok(buf.len()),
        None => Err(SipError::HeaderLineTooLong),
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Request-Line (`METHOD SP Request-URI SP SIP/2.0`) or Status-Line (`SIP/2.0 SP code SP reason`).
pub fn parse_start_line(line: &[u8]) -> Result<StartLine<'_>, SipError> {
    if line.is_empty() {
        return Err(SipError::BadStartLine);
    }
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        return parse_status_line(line);
    }
    let sp = memchr(b' ', line).ok_or(SipError::BadStartLine)?;
    let method = &line[..sp];
    if method.is_empty() || !method.iter().all(|&b| is_token_char(b)) {
        return Err(SipError::BadMethod);
    }
    let rest = &line[sp + 1..];
    let sp = memchr(b' ', rest).ok_or(SipError::BadStartLine)?;
    let (uri, version) = (&rest[..sp], &rest[sp + 1..]);
    if uri.is_empty() || uri.iter().any(|&b| b.is_ascii_control()) {
        return Err(SipError::BadStartLine);
    }
    if !version.eq_ignore_ascii_case(b"SIP/2.0") {
        return Err(SipError::BadVersion);
    }
    Ok(StartLine::Request {
        method: Method::from_bytes(method),
        uri,
    })
}

fn parse_status_line(line: &[u8]) -> Result<StartLine<'_>, SipError> {
    let rest = match line.get(..8) {
        Some(v) if v.eq_ignore_ascii_case(b"SIP/2.0 ") => &line[8..],
        _ => return Err(SipError::BadVersion),
    };
    let code = match rest {
        [a, b, c, tail @ ..] if matches!(tail.first(), None | Some(b' ')) => [*a, *b, *c],
        _ => return Err(SipError::BadStatus),
    };
    if !code.iter().all(u8::is_ascii_digit) {
        return Err(SipError::BadStatus);
    }
    let code = code
        .iter()
        .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'));
    if !(100..=699).contains(&code) {
        return Err(SipError::BadStatus);
    }
    let reason = rest.get(4..).unwrap_or(&[]);
    Ok(StartLine::Response { code, reason })
}

/// CSeq value: `1*DIGIT LWS Method` (RFC 3261 §20.16), the number below 2**32.
pub fn parse_cseq(value: &[u8]) -> Result<CSeq<'_>, SipError> {
    let value = trim(value);
    let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 10 {
        return Err(SipError::BadCSeq);
    }
    let seq = value[..digits]
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
    let seq = u32::try_from(seq).map_err(|_| SipError::BadCSeq)?;
    let rest = &value[digits..];
    let method = trim(rest);
    if method.len() == rest.len() || method.is_empty() || !method.iter().all(|&b| is_token_char(b))
    {
        return Err(SipError::BadCSeq);
    }
    Ok(CSeq {
        seq,
        method: Method::from_bytes(method),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::header::HeaderName;
    use proptest::prelude::*;

    const INVITE: &[u8] = b"INVITE sip:+13035550177@192.0.2.1;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK776asdhds, SIP/2.0/UDP 10.0.0.1\r\n\
v: SIP/2.0/TCP 10.0.0.2;branch=z9hG4bKx\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:+12025550143@198.51.100.10>;tag=1928301774\r\n\
To: <sip:+13035550177@192.0.2.1>\r\n\
Call-ID: a84b4c76e66710@198.51.100.10\r\n\
CSeq: 314159 INVITE\r\n\
P-Asserted-Identity: <sip:+12025550143@198.51.100.10>, <tel:+12025550143>\r\n\
Identity: eyJ.a.b;info=<https://cert.example/a.pem>;alg=ES256;ppt=shaken\r\n\
y: eyJ.c.d;info=<https://cert.example/b.pem>;ppt=div\r\n\
User-Agent: Sonus SBC\r\n\
Contact: <sip:+12025550143@198.51.100.10:5060>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 10\r\n\
\r\n\
v=0\r\no=- 1\r\n";

    fn p(buf: &[u8]) -> Result<SipMessage<'_>, SipError> {
        parse(buf, &ParseLimits::default())
    }

    #[test]
    fn parses_invite() {
        let m = p(INVITE).unwrap();
        assert!(m.is_request());
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(m.status(), None);
        assert_eq!(
            m.request_uri(),
            Some(&b"sip:+13035550177@192.0.2.1;user=phone"[..])
        );
        assert_eq!(m.call_id, b"a84b4c76e66710@198.51.100.10");
        assert_eq!(
            m.from,
            &b"\"Alice\" <sip:+12025550143@198.51.100.10>;tag=1928301774"[..]
        );
        assert_eq!(m.to, b"<sip:+13035550177@192.0.2.1>");
        assert_eq!(
            m.cseq,
            CSeq {
                seq: 314159,
                method: Method::Invite
            }
        );
        assert_eq!(m.via_count, 3);
        assert_eq!(
            m.pai,
            Some(&b"<sip:+12025550143@198.51.100.10>, <tel:+12025550143>"[..])
        );
        assert_eq!(m.identity.len(), 2);
        assert!(m.identity[1].starts_with(b"eyJ.c.d"));
        assert_eq!(m.identity_overflow, 0);
        assert_eq!(m.user_agent, Some(&b"Sonus SBC"[..]));
        assert_eq!(m.content_type, Some(&b"application/sdp"[..]));
        assert_eq!(m.content_length, Some(10));
        assert_eq!(m.header_count, 14);
        assert_eq!(m.body, b"v=0\r\no=- 1\r\n");
        assert_eq!(m.raw, INVITE);
        assert_eq!(m.header(HeaderName::MaxForwards), Some(&b"70"[..]));
        assert_eq!(
            m.header(HeaderName::Via),
            Some(
                &b"SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK776asdhds, SIP/2.0/UDP 10.0.0.1"[..]
            )
        );
        assert_eq!(m.header(HeaderName::Other), None);
        assert_eq!(m.header_by_name(b"max-forwards"), Some(&b"70"[..]));
        let names: Vec<_> = m.headers().map(|h| h.kind).collect();
        assert_eq!(names.len(), 14);
        assert_eq!(names[1], HeaderName::Via);
    }

    #[test]
    fn parses_responses() {
        let r = b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h\r\nf: <sip:a@b>;tag=1\r\nt: <sip:c@d>;tag=2\r\ni: x\r\nCSeq: 1 INVITE\r\nServer: Acme/1\r\nl: 0\r\n\r\n";
        let m = p(r).unwrap();
        assert_eq!(m.status(), Some(180));
        assert_eq!(
            m.start,
            StartLine::Response {
                code: 180,
                reason: b"Ringing"
            }
        );
        assert_eq!(m.user_agent, Some(&b"Acme/1"[..]));
        assert_eq!(m.call_id, b"x");
        assert!(m.body.is_empty());
        let no_reason = b"SIP/2.0 487\r\ni: x\r\nf: a\r\nt: b\r\nCSeq: 1 INVITE\r\n\r\n";
        assert_eq!(
            p(no_reason).unwrap().start,
            StartLine::Response {
                code: 487,
                reason: b""
            }
        );
    }

    #[test]
    fn bare_lf_folding_and_compact_forms() {
        let m = b"BYE sip:b@h SIP/2.0\nv: SIP/2.0/UDP a,\n SIP/2.0/UDP b\nf:\n  <sip:a@h>;tag=1\nt: <sip:b@h>\ni: c\n\tid\nCSEQ: 2   BYE\n\nbody";
        let m = p(m).unwrap();
        assert_eq!(m.via_count, 2);
        assert_eq!(m.from, b"<sip:a@h>;tag=1");
        assert_eq!(m.call_id, b"c\n\tid");
        assert_eq!(
            m.cseq,
            CSeq {
                seq: 2,
                method: Method::Bye
            }
        );
        assert_eq!(m.body, b"body");
        assert_eq!(m.header_count, 5);
    }

    #[test]
    fn header_order_hash_is_a_trait_of_order_not_form() {
        let a = b"ACK sip:b@h SIP/2.0\r\nCall-ID: 1\r\nFrom: a\r\nTo: b\r\nCSeq: 1 ACK\r\n\r\n";
        let b = b"ACK sip:b@h SIP/2.0\r\ni: 2\r\nf: x\r\nTO: y\r\ncseq: 9 ACK\r\n\r\n";
        let c = b"ACK sip:b@h SIP/2.0\r\nFrom: a\r\nCall-ID: 1\r\nTo: b\r\nCSeq: 1 ACK\r\n\r\n";
        let (a, b, c) = (p(a).unwrap(), p(b).unwrap(), p(c).unwrap());
        assert_eq!(a.header_order_hash, b.header_order_hash);
        assert_ne!(a.header_order_hash, c.header_order_hash);
    }

    #[test]
    fn missing_required_headers_are_named() {
        let base = "OPTIONS sip:h SIP/2.0\r\n";
        let hs = [
            "Call-ID: 1\r\n",
            "From: a\r\n",
            "To: b\r\n",
            "CSeq: 1 OPTIONS\r\n",
        ];
        let errs = [
            SipError::MissingCallId,
            SipError::MissingFrom,
            SipError::MissingTo,
            SipError::MissingCSeq,
        ];
        for (skip, err) in errs.iter().enumerate() {
            let mut m = base.to_string();
            for (i, h) in hs.iter().enumerate() {
                if i != skip {
                    m.push_str(h);
                }
            }
            m.push_str("\r\n");
            assert_eq!(p(m.as_bytes()).unwrap_err(), *err);
        }
        // An empty Call-ID is a missing one.
        let m =
            b"OPTIONS sip:h SIP/2.0\r\nCall-ID:  \r\nFrom: a\r\nTo: b\r\nCSeq: 1 OPTIONS\r\n\r\n";
        assert_eq!(p(m).unwrap_err(), SipError::MissingCallId);
    }

    #[test]
    fn bad_start_lines() {
        let tail = "\r\ni: 1\r\nf: a\r\nt: b\r\nCSeq: 1 INVITE\r\n\r\n";
        for (line, err) in [
            ("SIP/2.0 999 Nope", SipError::BadStatus),
            ("SIP/2.0 099 Nope", SipError::BadStatus),
            ("SIP/2.0 20 OK", SipError::BadStatus),
            ("SIP/2.0 2000 OK", SipError::BadStatus),
            ("SIP/2.0 2x0 OK", SipError::BadStatus),
            ("SIP/3.0 200 OK", SipError::BadVersion),
            ("HTTP/1.1 200 OK", SipError::BadMethod),
            ("INVITE sip:a@b SIP/3.0", SipError::BadVersion),
            ("INVITE sip:a@b", SipError::BadStartLine),
            ("INVITE  SIP/2.0", SipError::BadStartLine),
            ("INV(TE sip:a@b SIP/2.0", SipError::BadMethod),
            ("INVITE", SipError::BadStartLine),
        ] {
            let m = format!("{line}{tail}");
            assert_eq!(p(m.as_bytes()).unwrap_err(), err, "{line}");
        }
        let ok = format!("sip/2.0 200 OK{tail}");
        assert_eq!(p(ok.as_bytes()).unwrap().status(), Some(200));
        let ext = format!("FOO-BAR sip:a@b SIP/2.0{tail}");
        assert_eq!(
            p(ext.as_bytes()).unwrap().method(),
            Some(&Method::Other(b"FOO-BAR"))
        );
    }

    #[test]
    fn bad_cseq_and_content_length() {
        for v in [
            "",
            "INVITE",
            "1",
            "1INVITE",
            "x INVITE",
            "4294967296 INVITE",
            "1 INV@ITE",
            "-1 BYE",
        ] {
            assert_eq!(
                parse_cseq(v.as_bytes()).unwrap_err(),
                SipError::BadCSeq,
                "{v}"
            );
        }
        assert_eq!(parse_cseq(b"4294967295 FOO").unwrap().seq, u32::MAX);
        let m = b"BYE sip:a SIP/2.0\r\ni: 1\r\nf: a\r\nt: b\r\nCSeq: one BYE\r\n\r\n";
        assert_eq!(p(m).unwrap_err(), SipError::BadCSeq);
        let m = b"BYE sip:a SIP/2.0\r\ni: 1\r\nf: a\r\nt: b\r\nCSeq: 1 BYE\r\nl: 12z\r\n\r\n";
        assert_eq!(p(m).unwrap().content_length, None);
    }

    #[test]
    fn hostile_input() {
        assert_eq!(p(b"").unwrap_err(), SipError::Empty);
        assert_eq!(p(b"\r\n\r\n").unwrap_err(), SipError::Empty);
        assert_eq!(p(b"\0\0\0").unwrap_err(), SipError::BadStartLine);
        assert_eq!(p(b"INVITE\r\n").unwrap_err(), SipError::BadStartLine);
        // 1 MB header line.
        let mut big = b"INVITE sip:a@b SIP/2.0\r\nX-Big: ".to_vec();
        big.resize(big.len() + (1 << 20), b'a');
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(p(&big).unwrap_err(), SipError::HeaderLineTooLong);
        // 1 MB start line.
        let mut big = b"INVITE sip:".to_vec();
        big.resize(1 << 20, b'a');
        assert_eq!(p(&big).unwrap_err(), SipError::HeaderLineTooLong);
        // Folding does not get around the line limit.
        let mut folded = b"INVITE sip:a@b SIP/2.0\r\nX: a".to_vec();
        for _ in 0..2000 {
            folded.extend_from_slice(b"\r\n aaaa");
        }
        assert_eq!(p(&folded).unwrap_err(), SipError::HeaderLineTooLong);
        // 10k headers.
        let mut many = b"INVITE sip:a@b SIP/2.0\r\n".to_vec();
        for _ in 0..10_000 {
            many.extend_from_slice(b"X: y\r\n");
        }
        assert_eq!(p(&many).unwrap_err(), SipError::TooManyHeaders);
        // Junk lines, NUL bytes, a continuation with nothing to continue.
        let m = b"BYE sip:a SIP/2.0\r\nno colon here\r\n\r\n";
        assert_eq!(p(m).unwrap_err(), SipError::BadHeaderLine);
        let m = b"BYE sip:a SIP/2.0\r\n continued: x\r\n\r\n";
        assert_eq!(p(m).unwrap_err(), SipError::BadHeaderLine);
        let m = b"BYE sip:a SIP/2.0\r\nX\0Y: 1\r\n\r\n";
        assert_eq!(p(m).unwrap_err(), SipError::BadHeaderLine);
        let m = b"BYE sip:a SIP/2.0\r\ni: \0\xff\r\nf: a\r\nt: b\r\nCSeq: 1 BYE\r\n\r\n\0\0";
        let m = p(m).unwrap();
        assert_eq!(m.call_id, b"\0\xff");
        assert_eq!(m.body, b"\0\0");
        // Headers that never end are taken as ending at the end of the buffer.
        let m = b"BYE sip:a SIP/2.0\r\ni: 1\r\nf: a\r\nt: b\r\nCSeq: 1 BYE";
        assert_eq!(p(m).unwrap().cseq.seq, 1);
    }

    #[test]
    fn identity_overflow_is_counted() {
        let mut m =
            b"INVITE sip:a@b SIP/2.0\r\ni: 1\r\nf: a\r\nt: b\r\nCSeq: 1 INVITE\r\n".to_vec();
        for i in 0..11 {
            m.extend_from_slice(format!("Identity: t{i}\r\n").as_bytes());
        }
        m.extend_from_slice(b"\r\n");
        let m = p(&m).unwrap();
        assert_eq!(m.identity.len(), 8);
        assert_eq!(m.identity[7], b"t7");
        assert_eq!(m.identity_overflow, 3);
    }

    #[test]
    fn limits_are_configurable() {
        let limits = ParseLimits {
            max_headers: 3,
            max_header_line: 64,
        };
        let m = b"BYE sip:a SIP/2.0\r\ni: 1\r\nf: a\r\nt: b\r\nCSeq: 1 BYE\r\n\r\n";
        assert_eq!(parse(m, &limits).unwrap_err(), SipError::TooManyHeaders);
        // The start line (17 bytes) is the longest line.
        let limits = ParseLimits {
            max_headers: 4,
            max_header_line: 17,
        };
        assert!(parse(m, &limits).is_ok());
        let limits = ParseLimits {
            max_headers: 4,
            max_header_line: 16,
        };
        assert_eq!(parse(m, &limits).unwrap_err(), SipError::HeaderLineTooLong);
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(buf in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = p(&buf);
        }

        #[test]
        fn never_panics_on_mutated_messages(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..16),
            cut in any::<usize>(),
        ) {
            let mut buf = INVITE.to_vec();
            for (at, byte, op) in edits {
                let at = at % (buf.len() + 1);
                match op {
                    0 => buf.insert(at, byte),
                    1 if at < buf.len() => buf[at] = byte,
                    _ if at < buf.len() => { buf.remove(at); }
                    _ => {}
                }
            }
            buf.truncate(cut % (buf.len() + 1));
            if let Ok(m) = p(&buf) {
                // Lazy re-scan agrees with the single pass.
                prop_assert_eq!(m.headers().count(), usize::from(m.header_count));
            }
        }
    }
}
