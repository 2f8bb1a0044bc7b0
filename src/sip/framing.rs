//! SIP message framing (RFC 3261 §18.3): where one message ends inside a datagram or a byte
//! stream, found in one pass over the header block that also locates the Call-ID, which the
//! pipeline shards on. It never copies and never trusts a length it has not bounded.

use memchr::memchr;

/// Whether the bytes are a whole datagram or a stream that may hold part of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameMode {
    Datagram,
    Stream,
}

/// One message found at the start of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Bytes of the message (start line, headers, body) from the start of the buffer.
    pub len: usize,
    /// Offsets of the Call-ID value within the buffer, when the header is present.
    pub call_id: Option<(usize, usize)>,
    /// The datagram ended before Content-Length said it would; the body is cut short.
    pub truncated_body: bool,
    /// Datagram only: Content-Length was not a number, so the datagram's end ended the message.
    pub bad_content_length: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameOutcome {
    Complete(Frame),
    /// Stream mode: the message continues in bytes not received yet.
    Incomplete,
    /// The buffer does not start with a SIP request or status line.
    NotSip,
    Invalid(FramingError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("header block exceeds the message size limit")]
    HeadersTooLong,
    #[error("Content-Length is not a number")]
    BadContentLength,
    #[error("Content-Length exceeds the message size limit")]
    BodyTooLarge,
}

impl FramingError {
    /// Stable label for metrics.
    pub fn kind(self) -> &'static str {
        match self {
            FramingError::HeadersTooLong => "sip_headers_too_long",
            FramingError::BadContentLength => "sip_bad_content_length",
            FramingError::BodyTooLarge => "sip_body_too_large",
        }
    }
}

const METHODS: &[&[u8]] = &[
    b"INVITE",
    b"ACK",
    b"BYE",
    b"CANCEL",
    b"OPTIONS",
    b"REGISTER",
    b"PRACK",
    b"UPDATE",
    b"INFO",
    b"REFER",
    b"NOTIFY",
    b"SUBSCRIBE",
    b"MESSAGE",
    b"PUBLISH",
];

/// True when `buf` starts with a SIP status line or a request line of a known method with a
/// sip:, sips: or tel: Request-URI. Unknown methods are rejected here on purpose: this test also
/// decides what "SIP" is on non-SIP ports and where to resynchronise inside a TCP stream.
pub fn looks_like_sip_start(buf: &[u8]) -> bool {
    if buf.starts_with(b"SIP/2.0 ") {
        return buf.len() >= 11 && buf[8..11].iter().all(u8::is_ascii_digit);
    }
    METHODS.iter().any(|m| {
        buf.len() > m.len() + 1
            && buf.starts_with(m)
            && buf[m.len()] == b' '
            && starts_with_ignore_case(&buf[m.len() + 1..], &[b"sip:", b"sips:", b"tel:"])
    })
}

fn starts_with_ignore_case(buf: &[u8], prefixes: &[&[u8]]) -> bool {
    prefixes
        .iter()
        .any(|p| buf.len() >= p.len() && buf[..p.len()].eq_ignore_ascii_case(p))
}

/// Offset of the first line start (0 or just after a `\n`) where a SIP message begins: used to
/// pick up a TCP stream mid-message or after a gap.
pub fn find_message_start(buf: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        if looks_like_sip_start(&buf[pos..]) {
            return Some(pos);
        }
        pos += memchr(b'\n', &buf[pos..])? + 1;
    }
}

/// Leading CRLF keep-alives (RFC 5626 §3.5.1) before a message.
pub fn keepalive_len(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// Finds the end of the message at the start of `buf`.
pub fn frame(buf: &[u8], mode: FrameMode, max_message: usize) -> FrameOutcome {
    if !looks_like_sip_start(buf) {
        if mode == FrameMode::Stream && buf.len() < 16 && !buf.contains(&b'\n') {
            return FrameOutcome::Incomplete;
        }
        return FrameOutcome::NotSip;
    }
    let limit = buf.len().min(max_message);
    let mut call_id = None;
    let mut content_length: Option<usize> = None;
    let mut bad_content_length = false;
    // Skip the start line.
    let Some(nl) = memchr(b'\n', &buf[..limit]) else {
        return incomplete_or_too_long(buf, mode, max_message);
    };
    let mut pos = nl + 1;
    let header_end = loop {
        let Some(nl) = memchr(b'\n', &buf[pos..limit]) else {
            return incomplete_or_too_long(buf, mode, max_message);
        };
        let line_end = pos + nl;
        let line = trim_cr(&buf[pos..line_end]);
        if line.is_empty() {
            break line_end + 1;
        }
        if let Some(colon) = memchr(b':', line) {
            let name = trim_ws(&line[..colon]);
            let value_start = pos + colon + 1;
            let value = &buf[value_start..pos + line.len()];
            let lead = value.len() - trim_ws_start(value).len();
            let value = trim_ws(value);
            if is_header(name, b"call-id", b'i') && call_id.is_none() {
                call_id = Some((value_start + lead, value_start + lead + value.len()));
            } else if is_header(name, b"content-length", b'l') {
                match (parse_decimal(value), mode) {
                    (Some(n), _) if n <= max_message => content_length = Some(n),
                    (Some(_), _) => return FrameOutcome::Invalid(FramingError::BodyTooLarge),
                    // A datagram's own end still bounds the message: keep it, flagged, as a
                    // mature dissector does; a stream cannot be framed without the length.
                    (None, FrameMode::Datagram) => bad_content_length = true,
                    (None, FrameMode::Stream) => {
                        return FrameOutcome::Invalid(FramingError::BadContentLength)
                    }
                }
            }
        }
        pos = line_end + 1;
    };
    let available = buf.len() - header_end;
    let (body, truncated_body) = match (mode, content_length) {
        (FrameMode::Datagram, None) => (available, false),
        (FrameMode::Datagram, Some(n)) => (n.min(available), n > available),
        (FrameMode::Stream, n) => {
            let n = n.unwrap_or(0);
            // Headers and body are each under the limit; together they must be too, whether
            // or not the body has arrived yet (found by fuzzing: decode-tcp-message-over-max).
            if header_end + n > max_message {
                return FrameOutcome::Invalid(FramingError::BodyTooLarge);
            }
            if n > available {
                return FrameOutcome::Incomplete;
            }
            (n, false)
        }
    };
    FrameOutcome::Complete(Frame {
        len: header_end + body,
        call_id,
        truncated_body,
        bad_content_length,
    })
}

fn incomplete_or_too_long(buf: &[u8], mode: FrameMode, max_message: usize) -> FrameOutcome {
    if buf.len() >= max_message || mode == FrameMode::Datagram {
        // A datagram is all there is: headers that never end are as bad as ones too long.
        FrameOutcome::Invalid(FramingError::HeadersTooLong)
    } else {
        FrameOutcome::Incomplete
    }
}

fn is_header(name: &[u8], long: &[u8], compact: u8) -> bool {
    name.eq_ignore_ascii_case(long) || (name.len() == 1 && name[0].eq_ignore_ascii_case(&compact))
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim_ws_start(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(v.len());
    &v[start..]
}

fn trim_ws(v: &[u8]) -> &[u8] {
    let v = trim_ws_start(v);
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r'))
        .map_or(0, |p| p + 1);
    &v[..end]
}

/// A non-empty run of ASCII digits that fits in usize.
pub fn parse_decimal(v: &[u8]) -> Option<usize> {
    if v.is_empty() || v.len() > 12 {
        return None;
    }
    v.iter().try_fold(0usize, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + usize::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:+13035550177@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.10\r\ni: abc@host\r\nl: 4\r\n\r\nv=0\r\n";

    #[test]
    fn frames_datagram_with_compact_headers() {
        let FrameOutcome::Complete(f) = frame(INVITE, FrameMode::Datagram, 65535) else {
            panic!()
        };
        assert_eq!(f.len, INVITE.len() - 1);
        let (s, e) = f.call_id.unwrap();
        assert_eq!(&INVITE[s..e], b"abc@host");
    }

    #[test]
    fn stream_waits_for_body_and_splits_back_to_back_messages() {
        let cut = INVITE.len() - 4;
        assert_eq!(
            frame(&INVITE[..cut], FrameMode::Stream, 65535),
            FrameOutcome::Incomplete
        );
        let resp = b"SIP/2.0 200 OK\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n";
        let mut two = resp.to_vec();
        two.extend_from_slice(resp);
        let FrameOutcome::Complete(f) = frame(&two, FrameMode::Stream, 65535) else {
            panic!()
        };
        assert_eq!(f.len, resp.len());
    }

    #[test]
    fn rejects_hostile_lengths() {
        let big = b"SIP/2.0 200 OK\r\nContent-Length: 99999999\r\n\r\n";
        assert_eq!(
            frame(big, FrameMode::Stream, 65535),
            FrameOutcome::Invalid(FramingError::BodyTooLarge)
        );
        let bad = b"SIP/2.0 200 OK\r\nContent-Length: 1x\r\n\r\n";
        assert_eq!(
            frame(bad, FrameMode::Stream, 65535),
            FrameOutcome::Invalid(FramingError::BadContentLength)
        );
        let FrameOutcome::Complete(f) = frame(bad, FrameMode::Datagram, 65535) else {
            panic!()
        };
        assert!(f.bad_content_length && f.len == bad.len());
        let endless = b"SIP/2.0 200 OK\r\nX: 1\r\n";
        assert_eq!(
            frame(endless, FrameMode::Datagram, 65535),
            FrameOutcome::Invalid(FramingError::HeadersTooLong)
        );
        assert_eq!(
            frame(b"\x16\x03\x01garbage", FrameMode::Datagram, 65535),
            FrameOutcome::NotSip
        );
    }

    #[test]
    fn stream_message_over_the_limit_is_refused_even_when_all_there() {
        // Headers (50 bytes) and body (60) each fit in 100, together they do not.
        let mut m = b"SIP/2.0 200 OK\r\nCall-ID: c\r\nContent-Length: 60\r\n\r\n".to_vec();
        m.extend_from_slice(&[b'x'; 60]);
        assert_eq!(
            frame(&m, FrameMode::Stream, 100),
            FrameOutcome::Invalid(FramingError::BodyTooLarge)
        );
        assert_eq!(
            frame(&m[..60], FrameMode::Stream, 100),
            FrameOutcome::Invalid(FramingError::BodyTooLarge)
        );
        let FrameOutcome::Complete(f) = frame(&m, FrameMode::Stream, m.len()) else {
            panic!()
        };
        assert_eq!(f.len, m.len());
    }

    #[test]
    fn datagram_with_short_body_is_flagged_not_dropped() {
        let m = b"INVITE sip:1@h SIP/2.0\r\nCall-ID: c\r\nContent-Length: 100\r\n\r\nv=0\r\n";
        let FrameOutcome::Complete(f) = frame(m, FrameMode::Datagram, 65535) else {
            panic!()
        };
        assert!(f.truncated_body);
        assert_eq!(f.len, m.len());
    }

    #[test]
    fn resynchronises_on_a_line_start() {
        let junk = b"tail of an old body\r\nBYE sip:1@h SIP/2.0\r\n";
        assert_eq!(find_message_start(junk), Some(21));
        assert_eq!(find_message_start(b"no sip here"), None);
    }
}
