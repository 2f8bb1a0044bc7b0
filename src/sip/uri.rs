//! SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966) and name-addr / addr-spec header values
//! (From, To, P-Asserted-Identity, Contact; RFC 3261 §20.10) as borrowed views, plus `;name=value`
//! parameter lookup.
//!
//! Parsing must never allocate, never panic and never read past the value it is given: an
//! unterminated quote or `<` is an error, not a search into the next header. Escapes (`%xx`,
//! `\"`) are kept as received; decoding is the caller's business (see `tn.rs`).

use memchr::memchr;

use super::error::SipError;
use super::header::trim;

/// URI scheme; anything else is [`SipError::UnsupportedScheme`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
}

/// A parsed URI. For `tel:` the number is `user` and `host` is empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uri<'a> {
    pub scheme: Scheme,
    /// User part as received, user-params included (`+12025550143;npdi`), password excluded.
    pub user: Option<&'a [u8]>,
    /// Host without brackets for IPv6 (`2001:db8::1`); empty for tel.
    pub host: &'a [u8],
    pub port: Option<u16>,
    /// URI parameters, with their leading `;` (`;user=phone;transport=udp`); empty if none.
    pub params: &'a [u8],
    /// URI headers after `?`, without the `?`; empty if none.
    pub headers: &'a [u8],
}

impl<'a> Uri<'a> {
    /// The user part without user-params (`+12025550143;npdi` → `+12025550143`).
    pub fn user_number(&self) -> Option<&'a [u8]> {
        let user = self.user?;
        Some(user.split(|&b| b == b';').next().unwrap_or(user))
    }

    /// The `user=` URI parameter says this is a telephone number, or this is a tel: URI.
    pub fn is_phone(&self) -> bool {
        self.scheme == Scheme::Tel
            || param(self.params, b"user").is_some_and(|v| v.eq_ignore_ascii_case(b"phone"))
    }
}

/// Parses a bare URI (`sip:user:pw@host:port;params?headers`, `sips:`, `tel:number;params`).
/// Surrounding white space is ignored; a URI inside `<...>` should be passed without the brackets.
pub fn parse_uri(v: &[u8]) -> Result<Uri<'_>, SipError> {
    let v = trim(v);
    let colon = memchr(b':', v).ok_or(SipError::BadUri)?;
    let scheme = match &v[..colon] {
        s if s.eq_ignore_ascii_case(b"sip") => Scheme::Sip,
        s if s.eq_ignore_ascii_case(b"sips") => Scheme::Sips,
        s if s.eq_ignore_ascii_case(b"tel") => Scheme::Tel,
        _ => return Err(SipError::UnsupportedScheme),
    };
    let rest = &v[colon + 1..];
    if rest
        .iter()
        .any(|&b| b <= b' ' || matches!(b, b'<' | b'>' | b'"' | 0x7f))
    {
        return Err(SipError::BadUri);
    }
    if scheme == Scheme::Tel {
        let end = memchr(b';', rest).unwrap_or(rest.len());
        let number = &rest[..end];
        if number.is_empty() {
            return Err(SipError::BadUri);
        }
        return Ok(Uri {
            scheme,
            user: Some(number),
            host: &[],
            port: None,
            params: &rest[end..],
            headers: &[],
        });
    }
    // The user part may hold `;` and `?` (user-unreserved) but never an unescaped `@`.
    let (user, hostpart) = match memchr(b'@', rest) {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = &userinfo[..memchr(b':', userinfo).unwrap_or(userinfo.len())];
            if user.is_empty() {
                return Err(SipError::BadUri);
            }
            (Some(user), &rest[at + 1..])
        }
        None => (None, rest),
    };
    let (host, port, tail) = parse_hostport(hostpart)?;
    let (params, headers) = match memchr(b'?', tail) {
        Some(q) => (&tail[..q], &tail[q + 1..]),
        None => (tail, &[][..]),
    };
    if !params.is_empty() && params[0] != b';' {
        return Err(SipError::BadUri);
    }
    Ok(Uri {
        scheme,
        user,
        host,
        port,
        params,
        headers,
    })
}

/// Host, port and what follows them (params and headers).
type HostPort<'a> = (&'a [u8], Option<u16>, &'a [u8]);

/// `host [":" port]` at the start of `v`.
fn parse_hostport(v: &[u8]) -> Result<HostPort<'_>, SipError> {
    let (host, after) = if v.first() == Some(&b'[') {
        let close = memchr(b']', v).ok_or(SipError::BadHost)?;
        let host = &v[1..close];
        let ok = host.contains(&b':')
            && host
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !ok {
            return Err(SipError::BadHost);
        }
        (host, &v[close + 1..])
    } else {
        let end = v
            .iter()
            .position(|&b| matches!(b, b':' | b';' | b'?'))
            .unwrap_or(v.len());
        let host = &v[..end];
        let ok = !host.is_empty()
            && host
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !ok {
            return Err(SipError::BadHost);
        }
        (host, &v[end..])
    };
    match after.first() {
        Some(b':') => {
            let digits = after[1..].iter().take_while(|b| b.is_ascii_digit()).count();
            let port = parse_port(&after[1..1 + digits]).ok_or(SipError::BadPort)?;
            let tail = &after[1 + digits..];
            if !matches!(tail.first(), None | Some(b';' | b'?')) {
                return Err(SipError::BadPort);
            }
            Ok((host, Some(port), tail))
        }
        None | Some(b';' | b'?') => Ok((host, None, after)),
        Some(_) => Err(SipError::BadHost),
    }
}

fn parse_port(d: &[u8]) -> Option<u16> {
    if d.is_empty() || d.len() > 5 {
        return None;
    }
    let n = d
        .iter()
        .fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0'));
    u16::try_from(n).ok()
}

/// A name-addr (`"Display" <uri>;params`) or addr-spec (`uri;params`) header value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// A quoted display name without its quotes (escapes kept), or the token sequence before `<`.
    pub display_name: Option<&'a [u8]>,
    pub uri: Uri<'a>,
    /// Header parameters after the URI, with their leading `;` (`;tag=1928301774`).
    pub params: &'a [u8],
}

/// Parses a From/To/P-Asserted-Identity/Contact style value (one entry, not a comma list).
/// In the bare addr-spec form, `;params` after the host belong to the header (RFC 3261 §20.10).
pub fn parse_name_addr(v: &[u8]) -> Result<NameAddr<'_>, SipError> {
    let v = trim(v);
    let (display_name, rest) = if v.first() == Some(&b'"') {
        let close = closing_quote(&v[1..]).ok_or(SipError::UnterminatedQuote)? + 1;
        let rest = trim(&v[close + 1..]);
        if rest.first() == Some(&b'<') {
            (Some(&v[1..close]), rest)
        } else {
            // Sloppy senders: text after the quoted string (`"A"B <sip:..>`). Keep the URI;
            // the display name is everything before the `<`, as received.
            let lt = close + memchr(b'<', &v[close..]).ok_or(SipError::BadUri)?;
            (Some(trim(&v[..lt])), &v[lt..])
        }
    } else if let Some(lt) = memchr(b'<', v) {
        let name = trim(&v[..lt]);
        (Some(name).filter(|n| !n.is_empty()), &v[lt..])
    } else {
        // addr-spec: the URI ends at the first `;` after the user part.
        let from = memchr(b'@', v).unwrap_or(0);
        let end = memchr(b';', &v[from..]).map_or(v.len(), |p| from + p);
        let uri = parse_uri(&v[..end])?;
        return Ok(NameAddr {
            display_name: None,
            uri,
            params: trim(&v[end..]),
        });
    };
    let gt = memchr(b'>', rest).ok_or(SipError::UnterminatedAngle)?;
    let uri = parse_uri(&rest[1..gt])?;
    let params = trim(&rest[gt + 1..]);
    if !params.is_empty() && params[0] != b';' {
        return Err(SipError::BadUri);
    }
    Ok(NameAddr {
        display_name,
        uri,
        params,
    })
}

/// Index of the closing `"` in `v` (which starts just after the opening one), honouring `\`.
fn closing_quote(v: &[u8]) -> Option<usize> {
    let mut escaped = false;
    for (i, &b) in v.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => return Some(i),
            _ => {}
        }
    }
    None
}

/// Case-insensitive lookup of `name` in a `;a=1;b;c="x;y";info=<https://a/b;c>` parameter
/// list (leading `;` optional). A flag parameter yields `Some(b"")`; values are returned as
/// received (quotes and brackets kept), trimmed of white space.
pub fn param<'a>(params: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    params_iter(params).find_map(|(n, v)| n.eq_ignore_ascii_case(name).then_some(v))
}

/// Every `(name, value)` of a parameter list, in order (see [`param`]).
pub fn params_iter(params: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut rest = params;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let end = param_end(rest);
        let item = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or(&[]);
        let item = trim(item);
        if item.is_empty() {
            continue;
        }
        return Some(match memchr(b'=', item) {
            Some(eq) => (trim(&item[..eq]), trim(&item[eq + 1..])),
            None => (item, &item[item.len()..]),
        });
    })
}

/// Index of the first `;` outside quotes and `<...>`, or `v.len()`.
fn param_end(v: &[u8]) -> usize {
    super::header::find_unquoted(v, b';')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(v: &str) -> Uri<'_> {
        parse_uri(v.as_bytes()).unwrap()
    }

    #[test]
    fn sip_uris() {
        let x = u("sip:+12025550143;npdi;rn=+12025551000@198.51.100.10:5060;user=phone;transport=udp?Subject=x");
        assert_eq!(x.scheme, Scheme::Sip);
        assert_eq!(x.user, Some(&b"+12025550143;npdi;rn=+12025551000"[..]));
        assert_eq!(x.user_number(), Some(&b"+12025550143"[..]));
        assert_eq!(x.host, b"198.51.100.10");
        assert_eq!(x.port, Some(5060));
        assert_eq!(x.params, b";user=phone;transport=udp");
        assert_eq!(x.headers, b"Subject=x");
        assert!(x.is_phone());
        let x = u("SIPS:alice:secret@Atlanta.example.com");
        assert_eq!(
            (x.scheme, x.user, x.host),
            (
                Scheme::Sips,
                Some(&b"alice"[..]),
                &b"Atlanta.example.com"[..]
            )
        );
        assert!(!x.is_phone());
        let x = u("sip:192.0.2.1");
        assert_eq!((x.user, x.host, x.port), (None, &b"192.0.2.1"[..], None));
        let x = u("sip:%2B1202555@h;lr");
        assert_eq!(x.user, Some(&b"%2B1202555"[..]));
        assert_eq!(param(x.params, b"LR"), Some(&b""[..]));
    }

    #[test]
    fn ipv6_hosts() {
        let x = u("sip:bob@[2001:db8::1]:5070;transport=tcp");
        assert_eq!((x.host, x.port), (&b"2001:db8::1"[..], Some(5070)));
        let x = u("sip:[::ffff:192.0.2.1]");
        assert_eq!((x.host, x.port), (&b"::ffff:192.0.2.1"[..], None));
        for bad in [
            "sip:a@[2001:db8::1",
            "sip:a@[]",
            "sip:a@[zz::1]",
            "sip:a@[::1]x",
        ] {
            assert!(parse_uri(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn tel_uris() {
        let x = u("tel:+1-202-555-0143;phone-context=example.com");
        assert_eq!(x.scheme, Scheme::Tel);
        assert_eq!(x.user, Some(&b"+1-202-555-0143"[..]));
        assert_eq!(x.host, b"");
        assert_eq!(param(x.params, b"phone-context"), Some(&b"example.com"[..]));
        assert!(x.is_phone());
        assert_eq!(x.user_number(), x.user);
        assert_eq!(parse_uri(b"tel:;x=1").unwrap_err(), SipError::BadUri);
    }

    #[test]
    fn bad_uris() {
        for (bad, err) in [
            ("", SipError::BadUri),
            ("alice", SipError::BadUri),
            ("http://x", SipError::UnsupportedScheme),
            ("sip:", SipError::BadHost),
            ("sip:@h", SipError::BadUri),
            ("sip:a@", SipError::BadHost),
            ("sip:a@h:", SipError::BadPort),
            ("sip:a@h:65536", SipError::BadPort),
            ("sip:a@h:99999999999999999999", SipError::BadPort),
            ("sip:a@h:50x", SipError::BadPort),
            ("sip:a@h/x", SipError::BadHost),
            ("sip:a b@h", SipError::BadUri),
            ("sip:a@h\0", SipError::BadUri),
            ("sip:a@h<", SipError::BadUri),
        ] {
            assert_eq!(parse_uri(bad.as_bytes()).unwrap_err(), err, "{bad}");
        }
        assert_eq!(u("sip:a@h:65535").port, Some(65535));
        assert_eq!(u("sip:a@h:0").port, Some(0));
    }

    #[test]
    fn name_addrs() {
        let n = parse_name_addr(br#" "Doe, \"JD\" <x>" <sip:+12025550143@h;user=phone>;tag=abc "#)
            .unwrap();
        assert_eq!(n.display_name, Some(&br#"Doe, \"JD\" <x>"#[..]));
        assert_eq!(n.uri.user, Some(&b"+12025550143"[..]));
        assert_eq!(n.uri.params, b";user=phone");
        assert_eq!(n.params, b";tag=abc");
        assert_eq!(param(n.params, b"tag"), Some(&b"abc"[..]));

        let n = parse_name_addr(br#""A"B C" <sip:a@h>"#).unwrap();
        assert_eq!(n.display_name, Some(&br#""A"B C""#[..]));
        assert_eq!(n.uri.host, b"h");

        let n = parse_name_addr(b"Alice Smith<tel:+1-202-555-0143>").unwrap();
        assert_eq!(n.display_name, Some(&b"Alice Smith"[..]));
        assert_eq!(n.uri.scheme, Scheme::Tel);
        assert_eq!(n.params, b"");

        let n = parse_name_addr(b"<sip:anonymous@anonymous.invalid>;tag=1").unwrap();
        assert_eq!(n.display_name, None);
        assert_eq!(n.uri.host, b"anonymous.invalid");

        // addr-spec: params after the URI belong to the header.
        let n = parse_name_addr(b"sip:alice@atlanta.example.com;tag=88sja8x").unwrap();
        assert_eq!(n.uri.params, b"");
        assert_eq!(n.params, b";tag=88sja8x");
        let n = parse_name_addr(b"sip:+1;npdi@h;tag=1").unwrap();
        assert_eq!(n.uri.user, Some(&b"+1;npdi"[..]));
        assert_eq!(n.params, b";tag=1");
        let n = parse_name_addr(b"tel:+12025550143;tag=x").unwrap();
        assert_eq!(n.uri.user, Some(&b"+12025550143"[..]));
        assert_eq!(n.params, b";tag=x");
    }

    #[test]
    fn hostile_name_addrs() {
        for (bad, err) in [
            (
                &br#""unterminated <sip:a@b>"#[..],
                SipError::UnterminatedQuote,
            ),
            (br#""ends in escape\"#, SipError::UnterminatedQuote),
            (b"<sip:a@b", SipError::UnterminatedAngle),
            (b"Bob <", SipError::UnterminatedAngle),
            (br#""x" sip:a@b"#, SipError::BadUri),
            (b"<sip:a@b> junk", SipError::BadUri),
            (b"<>", SipError::BadUri),
            (b"", SipError::BadUri),
            (b"\0\0", SipError::BadUri),
            (b"<sip:a@b:123456>", SipError::BadPort),
        ] {
            assert_eq!(
                parse_name_addr(bad).unwrap_err(),
                err,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn params_with_quotes_and_brackets() {
        let p = br#"info=<https://cert.example/a;b.pem>;alg=ES256; PPT = "shaken;x" ;flag"#;
        assert_eq!(
            param(p, b"info"),
            Some(&b"<https://cert.example/a;b.pem>"[..])
        );
        assert_eq!(param(p, b"ppt"), Some(&br#""shaken;x""#[..]));
        assert_eq!(param(p, b"flag"), Some(&b""[..]));
        assert_eq!(param(p, b"missing"), None);
        assert_eq!(params_iter(p).count(), 4);
        assert_eq!(param(b";;;", b"x"), None);
        assert_eq!(param(br#";a="unterminated;b=1"#, b"b"), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(v in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = parse_uri(&v);
            if let Ok(n) = parse_name_addr(&v) {
                let _ = param(n.params, b"tag");
                let _ = n.uri.user_number();
            }
            let _ = params_iter(&v).count();
        }

        #[test]
        fn never_panics_on_uri_like(v in "[\"<>;:@?\\[\\] a-c0-9%=.,\\\\]{0,64}") {
            for prefix in ["sip:", "<sip:", "\"a\" <tel:", ""] {
                let s = format!("{prefix}{v}");
                let _ = parse_name_addr(s.as_bytes());
                let _ = parse_uri(s.as_bytes());
            }
        }
    }
}
