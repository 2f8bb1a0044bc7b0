//! The Identity header field (RFC 8224 §4.1): `token;info=<URI>;alg=ES256;ppt=shaken`.
//! Parameters are optional and may come in any order, quoted or not, with white space around
//! `;` and `=`. Returns borrowed views; never allocates, never panics, refuses oversized input
//! before looking at it.

/// A signed-identity-digest longer than this is refused (real tokens are under 1 KB).
pub const MAX_TOKEN: usize = 8 * 1024;
/// More parameters than this is an attack, not a header.
const MAX_PARAMS: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentityHeader<'a> {
    /// The compact JWS, exactly as received.
    pub token: &'a [u8],
    /// The `info` URI without its angle brackets or quotes.
    pub info: Option<&'a [u8]>,
    pub alg: Option<&'a [u8]>,
    pub ppt: Option<&'a [u8]>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("Identity header is empty")]
    Empty,
    #[error("Identity token longer than {MAX_TOKEN} bytes")]
    TooLong,
    #[error("Identity token has a character outside base64url and '.'")]
    BadTokenChar,
    #[error("Identity header parameter malformed: {0}")]
    BadParam(String),
    #[error("Identity header has more than {MAX_PARAMS} parameters")]
    TooManyParams,
    #[error("Identity header repeats the parameter {0}")]
    DuplicateParam(&'static str),
}

impl IdentityError {
    pub fn kind(&self) -> &'static str {
        match self {
            IdentityError::Empty => "identity_empty",
            IdentityError::TooLong => "identity_too_long",
            IdentityError::BadTokenChar => "identity_bad_token",
            IdentityError::BadParam(_) => "identity_bad_param",
            IdentityError::TooManyParams => "identity_too_many_params",
            IdentityError::DuplicateParam(_) => "identity_duplicate_param",
        }
    }
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &v[start..end.max(start)]
}

/// Strips one pair of `<>` or `""` around a parameter value.
fn unwrap_value(v: &[u8]) -> Result<&[u8], IdentityError> {
    let v = trim(v);
    let inner = match (v.first(), v.last()) {
        (Some(b'<'), Some(b'>')) | (Some(b'"'), Some(b'"')) if v.len() >= 2 => &v[1..v.len() - 1],
        (Some(b'<' | b'"'), _) | (_, Some(b'>' | b'"')) => {
            return Err(IdentityError::BadParam("unbalanced <> or quotes".into()))
        }
        _ => v,
    };
    Ok(trim(inner))
}

pub fn parse_identity(value: &[u8]) -> Result<IdentityHeader<'_>, IdentityError> {
    let value = trim(value);
    if value.is_empty() {
        return Err(IdentityError::Empty);
    }
    if value.len() > MAX_TOKEN + 4096 {
        return Err(IdentityError::TooLong);
    }
    // The token never contains ';' (base64url and '.'), and an info URI inside <> could.
    let token_end = value.iter().position(|&b| b == b';').unwrap_or(value.len());
    let token = unwrap_value(&value[..token_end])?;
    if token.is_empty() {
        return Err(IdentityError::Empty);
    }
    if token.len() > MAX_TOKEN {
        return Err(IdentityError::TooLong);
    }
    if !token
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(IdentityError::BadTokenChar);
    }
    let mut h = IdentityHeader {
        token,
        info: None,
        alg: None,
        ppt: None,
    };
    let mut rest = value.get(token_end + 1..).unwrap_or(&[]);
    let mut count = 0;
    while !trim(rest).is_empty() {
        count += 1;
        if count > MAX_PARAMS {
            return Err(IdentityError::TooManyParams);
        }
        let end = crate::sip::header::find_unquoted(rest, b';');
        let param = trim(&rest[..end]);
        rest = rest.get(end + 1..).unwrap_or(&[]);
        if param.is_empty() {
            continue;
        }
        let (name, val) = match param.iter().position(|&b| b == b'=') {
            Some(eq) => (trim(&param[..eq]), Some(unwrap_value(&param[eq + 1..])?)),
            None => (param, None),
        };
        let slot = if name.eq_ignore_ascii_case(b"info") {
            Some((&mut h.info, "info"))
        } else if name.eq_ignore_ascii_case(b"alg") {
            Some((&mut h.alg, "alg"))
        } else if name.eq_ignore_ascii_case(b"ppt") {
            Some((&mut h.ppt, "ppt"))
        } else {
            None // extension parameters are allowed and ignored
        };
        if let Some((slot, label)) = slot {
            let Some(v) = val.filter(|v| !v.is_empty()) else {
                return Err(IdentityError::BadParam(format!("{label} has no value")));
            };
            if slot.replace(v).is_some() {
                return Err(IdentityError::DuplicateParam(label));
            }
        }
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpYXQiOjF9.c2ln";

    #[test]
    fn full_header_any_order_quoted_or_not() {
        for v in [
            format!("{TOKEN};info=<https://cert.example/sp.pem>;alg=ES256;ppt=shaken"),
            format!(
                "{TOKEN} ; ppt=\"shaken\" ; alg = ES256 ; info = <https://cert.example/sp.pem>"
            ),
            format!("{TOKEN};INFO=\"https://cert.example/sp.pem\";Alg=ES256;PPT=shaken;x-ext=1"),
        ] {
            let h = parse_identity(v.as_bytes()).unwrap();
            assert_eq!(h.token, TOKEN.as_bytes(), "{v}");
            assert_eq!(h.info, Some(&b"https://cert.example/sp.pem"[..]), "{v}");
            assert_eq!(h.alg, Some(&b"ES256"[..]));
            assert_eq!(h.ppt, Some(&b"shaken"[..]));
        }
    }

    #[test]
    fn params_are_optional() {
        let h = parse_identity(TOKEN.as_bytes()).unwrap();
        assert_eq!((h.info, h.alg, h.ppt), (None, None, None));
        let v = format!("{TOKEN};");
        let h = parse_identity(v.as_bytes()).unwrap();
        assert_eq!(h.token, TOKEN.as_bytes());
    }

    #[test]
    fn info_uri_may_contain_semicolons_inside_brackets() {
        let v = format!("{TOKEN};info=<https://c.example/a;b=1>;ppt=div");
        let h = parse_identity(v.as_bytes()).unwrap();
        assert_eq!(h.info, Some(&b"https://c.example/a;b=1"[..]));
        assert_eq!(h.ppt, Some(&b"div"[..]));
    }

    #[test]
    fn hostile_headers_are_typed_errors() {
        assert_eq!(parse_identity(b""), Err(IdentityError::Empty));
        assert_eq!(parse_identity(b"  ;info=<x>"), Err(IdentityError::Empty));
        assert_eq!(parse_identity(b"abc def"), Err(IdentityError::BadTokenChar));
        assert_eq!(parse_identity(b"ab\xffc"), Err(IdentityError::BadTokenChar));
        assert_eq!(
            parse_identity(&vec![b'a'; MAX_TOKEN + 1]),
            Err(IdentityError::TooLong)
        );
        assert_eq!(
            parse_identity(&vec![b'a'; 1 << 20]),
            Err(IdentityError::TooLong)
        );
        assert!(matches!(
            parse_identity(b"abc;info=<https://x"),
            Err(IdentityError::BadParam(_))
        ));
        assert!(matches!(
            parse_identity(b"abc;info="),
            Err(IdentityError::BadParam(_))
        ));
        assert_eq!(
            parse_identity(b"abc;ppt=a;ppt=b"),
            Err(IdentityError::DuplicateParam("ppt"))
        );
        let many = format!("abc{}", ";x=1".repeat(40));
        assert_eq!(
            parse_identity(many.as_bytes()),
            Err(IdentityError::TooManyParams)
        );
        // GHSA-mrq5-74j5-f5cr: a header without ';' must not crash anything.
        assert!(parse_identity(b"eyJ").is_ok());
    }
}
