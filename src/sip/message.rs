//! The parsed SIP message ([`SipMessage`]): borrowed views into the received bytes, plus the small
//! fixed-capacity list type ([`BoundedVec`]) used wherever a message holds a list.
//!
//! Nothing here allocates or copies message bytes; nothing grows past a compile-time capacity;
//! header re-scans ([`SipMessage::headers`]) walk the already-validated header block lazily.

use memchr::memchr;

use super::header::{trim, HeaderName};

/// A list of at most `N` items stored inline: pushes past capacity are refused, never grown.
#[derive(Clone, Copy)]
pub struct BoundedVec<T: Copy + Default, const N: usize> {
    items: [T; N],
    len: usize,
}

impl<T: Copy + Default, const N: usize> BoundedVec<T, N> {
    pub fn new() -> Self {
        BoundedVec {
            items: [T::default(); N],
            len: 0,
        }
    }

    /// Appends `v`, or hands it back when the list is full.
    pub fn push(&mut self, v: T) -> Result<(), T> {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = v;
                self.len += 1;
                Ok(())
            }
            None => Err(v),
        }
    }

    pub fn as_slice(&self) -> &[T] {
        &self.items[..self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.items[..self.len]
    }

    pub fn is_full(&self) -> bool {
        self.len == N
    }

    pub const fn capacity(&self) -> usize {
        N
    }
}

impl<T: Copy + Default, const N: usize> Default for BoundedVec<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy + Default, const N: usize> std::ops::Deref for BoundedVec<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Copy + Default + std::fmt::Debug, const N: usize> std::fmt::Debug for BoundedVec<T, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl<T: Copy + Default + PartialEq, const N: usize> PartialEq for BoundedVec<T, N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Copy + Default + Eq, const N: usize> Eq for BoundedVec<T, N> {}

impl<'s, T: Copy + Default, const N: usize> IntoIterator for &'s BoundedVec<T, N> {
    type Item = &'s T;
    type IntoIter = std::slice::Iter<'s, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

/// A SIP request method; methods are case-sensitive (RFC 3261 §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method<'a> {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Prack,
    Update,
    Info,
    Refer,
    Notify,
    Subscribe,
    Message,
    Publish,
    /// Any other token (already validated as an RFC 3261 token).
    Other(&'a [u8]),
}

impl<'a> Method<'a> {
    /// Maps a method token; unknown tokens become [`Method::Other`].
    pub fn from_bytes(b: &'a [u8]) -> Method<'a> {
        match b {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"REGISTER" => Method::Register,
            b"OPTIONS" => Method::Options,
            b"PRACK" => Method::Prack,
            b"UPDATE" => Method::Update,
            b"INFO" => Method::Info,
            b"REFER" => Method::Refer,
            b"NOTIFY" => Method::Notify,
            b"SUBSCRIBE" => Method::Subscribe,
            b"MESSAGE" => Method::Message,
            b"PUBLISH" => Method::Publish,
            other => Method::Other(other),
        }
    }

    /// The method as on the wire (`"INVITE"`); an `Other` token as received.
    pub fn as_str(&self) -> &'a str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Info => "INFO",
            Method::Refer => "REFER",
            Method::Notify => "NOTIFY",
            Method::Subscribe => "SUBSCRIBE",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            // Tokens are ASCII, so this only falls back on bytes the parser never produces.
            Method::Other(b) => std::str::from_utf8(b).unwrap_or("OTHER"),
        }
    }

    /// Bounded-cardinality metric label: lower-case name, `"other"` for unknown methods.
    pub fn label(&self) -> &'static str {
        match self {
            Method::Invite => "invite",
            Method::Ack => "ack",
            Method::Bye => "bye",
            Method::Cancel => "cancel",
            Method::Register => "register",
            Method::Options => "options",
            Method::Prack => "prack",
            Method::Update => "update",
            Method::Info => "info",
            Method::Refer => "refer",
            Method::Notify => "notify",
            Method::Subscribe => "subscribe",
            Method::Message => "message",
            Method::Publish => "publish",
            Method::Other(_) => "other",
        }
    }
}

/// Request line or status line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartLine<'a> {
    Request { method: Method<'a>, uri: &'a [u8] },
    Response { code: u16, reason: &'a [u8] },
}

/// The CSeq header: sequence number and method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CSeq<'a> {
    pub seq: u32,
    pub method: Method<'a>,
}

/// Bounds the parser enforces on hostile input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseLimits {
    /// Most header fields (a folded header counts once).
    pub max_headers: usize,
    /// Longest header field in bytes, continuation lines included; also bounds the start line.
    pub max_header_line: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_headers: 256,
            max_header_line: 8192,
        }
    }
}

/// Most Identity header values kept per message; more are counted in `identity_overflow`.
pub const MAX_IDENTITY: usize = 8;

/// A parsed SIP message: every field is a view into `raw`. Header values are trimmed of
/// surrounding white space; a folded value keeps its inner CRLF + white space as received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SipMessage<'a> {
    pub start: StartLine<'a>,
    pub call_id: &'a [u8],
    pub from: &'a [u8],
    pub to: &'a [u8],
    pub cseq: CSeq<'a>,
    /// Via entries, comma-separated lists counted per entry (saturating).
    pub via_count: u16,
    /// First P-Asserted-Identity header value (raw; may be a comma list).
    pub pai: Option<&'a [u8]>,
    /// User-Agent for requests, Server for responses; the other one when that is absent.
    pub user_agent: Option<&'a [u8]>,
    pub contact: Option<&'a [u8]>,
    pub content_type: Option<&'a [u8]>,
    /// Content-Length as declared; `body` is what was actually received.
    pub content_length: Option<usize>,
    /// Every Identity header value (long name or compact `y`), in order, up to [`MAX_IDENTITY`].
    pub identity: BoundedVec<&'a [u8], MAX_IDENTITY>,
    /// Identity headers beyond the ones kept (counted, not stored).
    pub identity_overflow: u16,
    pub header_count: u16,
    /// Stable FNV-1a based hash of the canonical lower-case header names in order (see
    /// [`super::header::hash_header_name`]): a fingerprint trait of the sending stack.
    pub header_order_hash: u64,
    /// The header block: from the first header line up to (not including) the blank line.
    pub head: &'a [u8],
    pub body: &'a [u8],
    pub raw: &'a [u8],
}

impl<'a> SipMessage<'a> {
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn method(&self) -> Option<&Method<'a>> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// Request-URI of a request.
    pub fn request_uri(&self) -> Option<&'a [u8]> {
        match self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// Every header in order, re-scanned lazily from `head` without allocation.
    pub fn headers(&self) -> HeaderIter<'a> {
        HeaderIter { rest: self.head }
    }

    /// First value of the header `name` (any form of it); `None` for [`HeaderName::Other`].
    pub fn header(&self, name: HeaderName) -> Option<&'a [u8]> {
        if name == HeaderName::Other {
            return None;
        }
        self.headers().find(|h| h.kind == name).map(|h| h.value)
    }

    /// First value of a header by its name as received (case-insensitive; for unknown headers).
    pub fn header_by_name(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.headers()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

/// One header field as received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// Name as received (`"i"`, `"Call-ID"`, `"X-Foo"`).
    pub name: &'a [u8],
    pub kind: HeaderName,
    /// Value trimmed of surrounding white space; folding kept.
    pub value: &'a [u8],
}

/// Iterator over the header fields of a header block (see [`SipMessage::headers`]).
#[derive(Clone, Debug)]
pub struct HeaderIter<'a> {
    rest: &'a [u8],
}

impl<'a> HeaderIter<'a> {
    /// Iterates the header fields of a raw header block (lines without a colon are skipped).
    pub fn new(head: &'a [u8]) -> Self {
        HeaderIter { rest: head }
    }
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let end = field_end(self.rest);
            let field = &self.rest[..end];
            self.rest = &self.rest[end..];
            let Some(colon) = memchr(b':', field) else {
                continue;
            };
            let name = trim(&field[..colon]);
            if name.is_empty() {
                continue;
            }
            return Some(Header {
                name,
                kind: HeaderName::from_bytes(name),
                value: trim(&field[colon + 1..]),
            });
        }
    }
}

/// End of the header field starting at `v[0]`: after its last line's `\n`, continuation lines
/// (starting with SP or HTAB) included.
fn field_end(v: &[u8]) -> usize {
    let mut pos = 0;
    loop {
        match memchr(b'\n', &v[pos..]) {
            None => return v.len(),
            Some(nl) => {
                pos += nl + 1;
                if !matches!(v.get(pos), Some(b' ' | b'\t')) {
                    return pos;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_vec_refuses_past_capacity() {
        let mut v: BoundedVec<u8, 2> = BoundedVec::new();
        assert!(v.is_empty());
        assert_eq!(v.push(1), Ok(()));
        assert_eq!(v.push(2), Ok(()));
        assert!(v.is_full());
        assert_eq!(v.push(3), Err(3));
        assert_eq!(v.as_slice(), &[1, 2]);
        assert_eq!(v.len(), 2);
        assert_eq!(v.capacity(), 2);
        assert_eq!(format!("{v:?}"), "[1, 2]");
        let mut zero: BoundedVec<u8, 0> = BoundedVec::default();
        assert_eq!(zero.push(1), Err(1));
    }

    #[test]
    fn methods_round_trip() {
        for m in [&b"INVITE"[..], b"ACK", b"BYE", b"PUBLISH", b"MESSAGE"] {
            let method = Method::from_bytes(m);
            assert_eq!(method.as_str().as_bytes(), m);
            assert_ne!(method.label(), "other");
        }
        let x = Method::from_bytes(b"invite");
        assert_eq!(x, Method::Other(b"invite"));
        assert_eq!(x.label(), "other");
        assert_eq!(x.as_str(), "invite");
        assert_eq!(Method::Other(b"\xff").as_str(), "OTHER");
    }

    #[test]
    fn header_iter_keeps_folding_and_skips_junk() {
        let head = b"Via: a\r\n b\r\nno colon\r\n: empty name\r\nX-Foo:\tbar \r\nl:0";
        let hs: Vec<_> = HeaderIter::new(head).collect();
        assert_eq!(hs.len(), 3);
        assert_eq!(hs[0].kind, HeaderName::Via);
        assert_eq!(hs[0].value, b"a\r\n b");
        assert_eq!(hs[1].name, b"X-Foo");
        assert_eq!(hs[1].value, b"bar");
        assert_eq!(hs[2].kind, HeaderName::ContentLength);
        assert_eq!(hs[2].value, b"0");
    }
}
