//! SIP header names: case-insensitive lookup of the headers the sensor knows, including the
//! compact forms of RFC 3261 §7.3.3 and later RFCs (`y` = Identity, RFC 8224), and splitting of
//! comma-separated header values.
//!
//! Lookup and splitting work on borrowed bytes: they must never allocate, never panic, and never
//! look past the slice they are given (an unterminated quote or `<` simply ends the list).

/// A header the sensor knows by name; everything else is [`HeaderName::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HeaderName {
    Accept,
    AcceptContact,
    Allow,
    AllowEvents,
    Authorization,
    CallId,
    CallInfo,
    Contact,
    ContentDisposition,
    ContentEncoding,
    ContentLength,
    ContentType,
    CSeq,
    Date,
    Diversion,
    Event,
    Expires,
    From,
    HistoryInfo,
    Identity,
    MaxForwards,
    MinSe,
    PAccessNetworkInfo,
    PAssertedIdentity,
    PChargingVector,
    PPreferredIdentity,
    Privacy,
    ProxyAuthenticate,
    ProxyAuthorization,
    ProxyRequire,
    RAck,
    Reason,
    RecordRoute,
    ReferTo,
    ReferredBy,
    RejectContact,
    RequestDisposition,
    Require,
    Route,
    RSeq,
    Server,
    SessionExpires,
    Subject,
    Supported,
    To,
    Unsupported,
    UserAgent,
    Via,
    Warning,
    WwwAuthenticate,
    Other,
}

impl HeaderName {
    /// Case-insensitive lookup of a header name as received (long or compact form).
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        use HeaderName::*;
        if name.len() == 1 {
            return match name[0].to_ascii_lowercase() {
                b'i' => CallId,
                b'm' => Contact,
                b'e' => ContentEncoding,
                b'l' => ContentLength,
                b'c' => ContentType,
                b'f' => From,
                b's' => Subject,
                b'k' => Supported,
                b't' => To,
                b'v' => Via,
                b'o' => Event,
                b'u' => AllowEvents,
                b'r' => ReferTo,
                b'b' => ReferredBy,
                b'x' => SessionExpires,
                b'a' => AcceptContact,
                b'j' => RejectContact,
                b'd' => RequestDisposition,
                b'y' => Identity,
                _ => Other,
            };
        }
        let Some(&first) = name.first() else {
            return Other;
        };
        // Dispatch on (length, first letter): one case-insensitive compare for almost every
        // name, no copy.
        match (name.len(), first.to_ascii_lowercase()) {
            (2, b't') if name.eq_ignore_ascii_case(b"to") => To,
            (3, b'v') if name.eq_ignore_ascii_case(b"via") => Via,
            (4, b'c') if name.eq_ignore_ascii_case(b"cseq") => CSeq,
            (4, b'd') if name.eq_ignore_ascii_case(b"date") => Date,
            (4, b'f') if name.eq_ignore_ascii_case(b"from") => From,
            (4, b'r') if name.eq_ignore_ascii_case(b"rack") => RAck,
            (4, b'r') if name.eq_ignore_ascii_case(b"rseq") => RSeq,
            (5, b'a') if name.eq_ignore_ascii_case(b"allow") => Allow,
            (5, b'e') if name.eq_ignore_ascii_case(b"event") => Event,
            (5, b'r') if name.eq_ignore_ascii_case(b"route") => Route,
            (6, b'a') if name.eq_ignore_ascii_case(b"accept") => Accept,
            (6, b'm') if name.eq_ignore_ascii_case(b"min-se") => MinSe,
            (6, b'r') if name.eq_ignore_ascii_case(b"reason") => Reason,
            (6, b's') if name.eq_ignore_ascii_case(b"server") => Server,
            (7, b'c') if name.eq_ignore_ascii_case(b"call-id") => CallId,
            (7, b'c') if name.eq_ignore_ascii_case(b"contact") => Contact,
            (7, b'e') if name.eq_ignore_ascii_case(b"expires") => Expires,
            (7, b'p') if name.eq_ignore_ascii_case(b"privacy") => Privacy,
            (7, b'r') if name.eq_ignore_ascii_case(b"require") => Require,
            (7, b's') if name.eq_ignore_ascii_case(b"subject") => Subject,
            (7, b'w') if name.eq_ignore_ascii_case(b"warning") => Warning,
            (8, b'i') if name.eq_ignore_ascii_case(b"identity") => Identity,
            (8, b'r') if name.eq_ignore_ascii_case(b"refer-to") => ReferTo,
            (9, b'c') if name.eq_ignore_ascii_case(b"call-info") => CallInfo,
            (9, b'd') if name.eq_ignore_ascii_case(b"diversion") => Diversion,
            (9, b's') if name.eq_ignore_ascii_case(b"supported") => Supported,
            (10, b'u') if name.eq_ignore_ascii_case(b"user-agent") => UserAgent,
            (11, b'r') if name.eq_ignore_ascii_case(b"referred-by") => ReferredBy,
            (11, b'u') if name.eq_ignore_ascii_case(b"unsupported") => Unsupported,
            (12, b'a') if name.eq_ignore_ascii_case(b"allow-events") => AllowEvents,
            (12, b'c') if name.eq_ignore_ascii_case(b"content-type") => ContentType,
            (12, b'h') if name.eq_ignore_ascii_case(b"history-info") => HistoryInfo,
            (12, b'm') if name.eq_ignore_ascii_case(b"max-forwards") => MaxForwards,
            (12, b'r') if name.eq_ignore_ascii_case(b"record-route") => RecordRoute,
            (13, b'a') if name.eq_ignore_ascii_case(b"authorization") => Authorization,
            (13, b'p') if name.eq_ignore_ascii_case(b"proxy-require") => ProxyRequire,
            (14, b'a') if name.eq_ignore_ascii_case(b"accept-contact") => AcceptContact,
            (14, b'c') if name.eq_ignore_ascii_case(b"content-length") => ContentLength,
            (14, b'r') if name.eq_ignore_ascii_case(b"reject-contact") => RejectContact,
            (15, b's') if name.eq_ignore_ascii_case(b"session-expires") => SessionExpires,
            (16, b'c') if name.eq_ignore_ascii_case(b"content-encoding") => ContentEncoding,
            (16, b'w') if name.eq_ignore_ascii_case(b"www-authenticate") => WwwAuthenticate,
            (17, b'p') if name.eq_ignore_ascii_case(b"p-charging-vector") => PChargingVector,
            (18, b'p') if name.eq_ignore_ascii_case(b"proxy-authenticate") => ProxyAuthenticate,
            (19, b'c') if name.eq_ignore_ascii_case(b"content-disposition") => ContentDisposition,
            (19, b'p') if name.eq_ignore_ascii_case(b"p-asserted-identity") => PAssertedIdentity,
            (19, b'p') if name.eq_ignore_ascii_case(b"proxy-authorization") => ProxyAuthorization,
            (19, b'r') if name.eq_ignore_ascii_case(b"request-disposition") => RequestDisposition,
            (20, b'p') if name.eq_ignore_ascii_case(b"p-preferred-identity") => PPreferredIdentity,
            (21, b'p') if name.eq_ignore_ascii_case(b"p-access-network-info") => PAccessNetworkInfo,
            _ => Other,
        }
    }

    /// Canonical long name, lower case (`"call-id"`); `""` for [`HeaderName::Other`].
    pub const fn as_str(self) -> &'static str {
        use HeaderName::*;
        match self {
            Accept => "accept",
            AcceptContact => "accept-contact",
            Allow => "allow",
            AllowEvents => "allow-events",
            Authorization => "authorization",
            CallId => "call-id",
            CallInfo => "call-info",
            Contact => "contact",
            ContentDisposition => "content-disposition",
            ContentEncoding => "content-encoding",
            ContentLength => "content-length",
            ContentType => "content-type",
            CSeq => "cseq",
            Date => "date",
            Diversion => "diversion",
            Event => "event",
            Expires => "expires",
            From => "from",
            HistoryInfo => "history-info",
            Identity => "identity",
            MaxForwards => "max-forwards",
            MinSe => "min-se",
            PAccessNetworkInfo => "p-access-network-info",
            PAssertedIdentity => "p-asserted-identity",
            PChargingVector => "p-charging-vector",
            PPreferredIdentity => "p-preferred-identity",
            Privacy => "privacy",
            ProxyAuthenticate => "proxy-authenticate",
            ProxyAuthorization => "proxy-authorization",
            ProxyRequire => "proxy-require",
            RAck => "rack",
            Reason => "reason",
            RecordRoute => "record-route",
            ReferTo => "refer-to",
            ReferredBy => "referred-by",
            RejectContact => "reject-contact",
            RequestDisposition => "request-disposition",
            Require => "require",
            Route => "route",
            RSeq => "rseq",
            Server => "server",
            SessionExpires => "session-expires",
            Subject => "subject",
            Supported => "supported",
            To => "to",
            Unsupported => "unsupported",
            UserAgent => "user-agent",
            Via => "via",
            Warning => "warning",
            WwwAuthenticate => "www-authenticate",
            Other => "",
        }
    }
}

/// FNV-1a 64-bit offset basis; the header-order hash starts here.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 of `s` (lower-cased), from `h`.
const fn fnv1a(mut h: u64, s: &[u8]) -> u64 {
    let mut i = 0;
    while i < s.len() {
        h ^= s[i].to_ascii_lowercase() as u64;
        h = h.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    h
}

const ALL: [HeaderName; 51] = [
    HeaderName::Accept,
    HeaderName::AcceptContact,
    HeaderName::Allow,
    HeaderName::AllowEvents,
    HeaderName::Authorization,
    HeaderName::CallId,
    HeaderName::CallInfo,
    HeaderName::Contact,
    HeaderName::ContentDisposition,
    HeaderName::ContentEncoding,
    HeaderName::ContentLength,
    HeaderName::ContentType,
    HeaderName::CSeq,
    HeaderName::Date,
    HeaderName::Diversion,
    HeaderName::Event,
    HeaderName::Expires,
    HeaderName::From,
    HeaderName::HistoryInfo,
    HeaderName::Identity,
    HeaderName::MaxForwards,
    HeaderName::MinSe,
    HeaderName::PAccessNetworkInfo,
    HeaderName::PAssertedIdentity,
    HeaderName::PChargingVector,
    HeaderName::PPreferredIdentity,
    HeaderName::Privacy,
    HeaderName::ProxyAuthenticate,
    HeaderName::ProxyAuthorization,
    HeaderName::ProxyRequire,
    HeaderName::RAck,
    HeaderName::Reason,
    HeaderName::RecordRoute,
    HeaderName::ReferTo,
    HeaderName::ReferredBy,
    HeaderName::RejectContact,
    HeaderName::RequestDisposition,
    HeaderName::Require,
    HeaderName::Route,
    HeaderName::RSeq,
    HeaderName::Server,
    HeaderName::SessionExpires,
    HeaderName::Subject,
    HeaderName::Supported,
    HeaderName::To,
    HeaderName::Unsupported,
    HeaderName::UserAgent,
    HeaderName::Via,
    HeaderName::Warning,
    HeaderName::WwwAuthenticate,
    HeaderName::Other,
];

/// FNV-1a 64 of each known canonical name, indexed by discriminant.
const NAME_HASHES: [u64; ALL.len()] = {
    let mut t = [0u64; ALL.len()];
    let mut i = 0;
    while i < ALL.len() {
        t[i] = fnv1a(FNV_OFFSET, ALL[i].as_str().as_bytes());
        i += 1;
    }
    t
};

/// Feeds one header name into the running header-order hash: `h = (h ^ n) * FNV_PRIME`,
/// where `n` is the FNV-1a 64 of the canonical long name for a known header, of the received
/// name in lower case otherwise (FNV-1a over 64-bit words). The result does not depend on
/// compact vs long form or on letter case, and is stable across releases.
pub fn hash_header_name(h: u64, kind: HeaderName, received: &[u8]) -> u64 {
    let n = match kind {
        HeaderName::Other => fnv1a(FNV_OFFSET, received),
        known => NAME_HASHES.get(known as usize).copied().unwrap_or(0),
    };
    (h ^ n).wrapping_mul(FNV_PRIME)
}

/// Splits a header value on commas outside double quotes and `<...>`; each item is trimmed of
/// surrounding whitespace (folding included) and empty items are skipped.
pub fn split_list(value: &[u8]) -> SplitList<'_> {
    SplitList { rest: value }
}

/// Iterator returned by [`split_list`].
#[derive(Clone, Debug)]
pub struct SplitList<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for SplitList<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let end = list_item_end(self.rest);
            let item = trim(&self.rest[..end]);
            self.rest = self.rest.get(end + 1..).unwrap_or(&[]);
            if !item.is_empty() {
                return Some(item);
            }
        }
    }
}

/// Index of the first comma outside quotes and angle brackets, or `v.len()`.
fn list_item_end(v: &[u8]) -> usize {
    find_unquoted(v, b',')
}

/// Index of the first `sep` outside double quotes (with `\` escapes) and `<...>`, or `v.len()`.
pub(crate) fn find_unquoted(v: &[u8], sep: u8) -> usize {
    let (mut quoted, mut angle, mut escaped) = (false, false, false);
    for (i, &b) in v.iter().enumerate() {
        if quoted {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => quoted = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' if !angle => quoted = true,
            b'<' => angle = true,
            b'>' => angle = false,
            _ if b == sep && !angle => return i,
            _ => {}
        }
    }
    v.len()
}

/// True for SP, HTAB, CR and LF (linear white space, folding included).
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trims linear white space at both ends.
pub(crate) fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|&b| !is_lws(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|&b| !is_lws(b)).map_or(start, |p| p + 1);
    &v[start..end]
}

/// RFC 3261 `token` characters, as a lookup table.
const TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        b += 1;
    }
    t
};

/// RFC 3261 `token` character.
#[inline]
pub(crate) fn is_token_char(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_and_compact_names_any_case() {
        for (names, want) in [
            (
                &[&b"Call-ID"[..], b"call-id", b"CALL-ID", b"i", b"I"][..],
                HeaderName::CallId,
            ),
            (&[&b"Identity"[..], b"y", b"Y"], HeaderName::Identity),
            (&[&b"Via"[..], b"v"], HeaderName::Via),
            (
                &[&b"P-Asserted-Identity"[..], b"p-asserted-identity"],
                HeaderName::PAssertedIdentity,
            ),
            (&[&b"Content-Length"[..], b"l"], HeaderName::ContentLength),
            (&[&b"Session-Expires"[..], b"x"], HeaderName::SessionExpires),
            (&[&b"Event"[..], b"o"], HeaderName::Event),
        ] {
            for n in names {
                assert_eq!(
                    HeaderName::from_bytes(n),
                    want,
                    "{}",
                    String::from_utf8_lossy(n)
                );
            }
        }
        for other in [&b""[..], b"X-Foo", b"q", b"Via2", b"\xff", &[b'a'; 300]] {
            assert_eq!(HeaderName::from_bytes(other), HeaderName::Other);
        }
    }

    #[test]
    fn name_table_matches_discriminants() {
        assert_eq!(ALL.len(), HeaderName::Other as usize + 1);
        for (i, k) in ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
            assert_eq!(HeaderName::from_bytes(k.as_str().as_bytes()), *k);
            assert_eq!(NAME_HASHES[i], fnv1a(FNV_OFFSET, k.as_str().as_bytes()));
        }
    }

    #[test]
    fn hash_ignores_form_and_case() {
        let a = hash_header_name(FNV_OFFSET, HeaderName::CallId, b"i");
        let b = hash_header_name(FNV_OFFSET, HeaderName::CallId, b"Call-ID");
        assert_eq!(a, b);
        let x = hash_header_name(FNV_OFFSET, HeaderName::Other, b"X-Foo");
        let y = hash_header_name(FNV_OFFSET, HeaderName::Other, b"x-foo");
        assert_eq!(x, y);
        assert_ne!(a, x);
    }

    #[test]
    fn split_respects_quotes_and_angles() {
        let v = br#""Doe, John" <sip:a@b;x=1,2>;tag=1 , <tel:+1>,, sip:c@d "#;
        let items: Vec<_> = split_list(v).collect();
        assert_eq!(
            items,
            vec![
                &br#""Doe, John" <sip:a@b;x=1,2>;tag=1"#[..],
                b"<tel:+1>",
                b"sip:c@d"
            ]
        );
        let via = b"SIP/2.0/UDP a;branch=z9hG4bK1,\r\n SIP/2.0/TCP b";
        assert_eq!(split_list(via).count(), 2);
    }

    #[test]
    fn split_hostile_input() {
        assert_eq!(split_list(b"").count(), 0);
        assert_eq!(split_list(b",,, ,").count(), 0);
        // Unterminated quote / angle: the rest is one item, nothing read past the end.
        assert_eq!(
            split_list(br#""abc, def"#).collect::<Vec<_>>(),
            vec![&br#""abc, def"#[..]]
        );
        assert_eq!(split_list(b"<sip:a, b").count(), 1);
        assert_eq!(split_list(b"a\\").count(), 1);
        assert_eq!(split_list(br#""a\"#).count(), 1);
        assert_eq!(split_list(b"\0,\0").count(), 2);
    }
}
