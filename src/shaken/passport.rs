//! PASSporT decoding (RFC 8225, RFC 8588 `shaken`, RFC 8946 `div`): the JWS compact form, its
//! protected header and claims, checked for the types and values SHAKEN requires. Decoded JSON
//! is size-capped before parsing and nesting depth is bounded by the parser; every failure
//! names the exact field.

use super::b64;
use super::identity::IdentityHeader;
use serde_json::Value;

/// Largest decoded header or claims object accepted.
const MAX_PART: usize = 4096;

/// The three base64url parts of a compact JWS, borrowed from the Identity header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Jws<'a> {
    /// `header.payload` exactly as received: what the signature covers.
    pub signing_input: &'a [u8],
    pub header: &'a [u8],
    pub payload: &'a [u8],
    pub signature: &'a [u8],
}

/// What a verifier needs from a decoded PASSporT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Passport {
    pub ppt: String,
    pub x5u: String,
    /// A, B or C (shaken); None for div.
    pub attest: Option<String>,
    pub orig_tn: String,
    pub dest_tns: Vec<String>,
    pub iat: i64,
    pub origid: Option<String>,
    /// The diverting number of a `div` PASSporT.
    pub div_tn: Option<String>,
    /// ES256 signature, raw r‖s.
    pub signature: [u8; 64],
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PassportError {
    #[error("token is not a JWS in compact form (three '.'-separated parts)")]
    NotCompact,
    #[error("JWS {0} is not base64url")]
    Base64(&'static str),
    #[error("JWS {0} is not a JSON object")]
    NotJson(&'static str),
    #[error("PASSporT header: {0}")]
    Header(String),
    #[error("PASSporT claims: {0}")]
    Claims(String),
    #[error("signature is not 64 bytes of ES256 r||s (got {0})")]
    SignatureLength(usize),
}

impl PassportError {
    pub fn kind(&self) -> &'static str {
        match self {
            PassportError::NotCompact => "jws_not_compact",
            PassportError::Base64(_) => "jws_base64",
            PassportError::NotJson(_) => "jws_json",
            PassportError::Header(_) => "passport_header",
            PassportError::Claims(_) => "passport_claims",
            PassportError::SignatureLength(_) => "jws_signature_length",
        }
    }
}

pub fn split_jws(token: &[u8]) -> Result<Jws<'_>, PassportError> {
    let mut dots = token
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'.')
        .map(|(i, _)| i);
    let (Some(a), Some(b), None) = (dots.next(), dots.next(), dots.next()) else {
        return Err(PassportError::NotCompact);
    };
    let jws = Jws {
        signing_input: &token[..b],
        header: &token[..a],
        payload: &token[a + 1..b],
        signature: &token[b + 1..],
    };
    if jws.header.is_empty() || jws.payload.is_empty() || jws.signature.is_empty() {
        return Err(PassportError::NotCompact);
    }
    Ok(jws)
}

fn json_object(
    part: &[u8],
    label: &'static str,
) -> Result<serde_json::Map<String, Value>, PassportError> {
    // base64 grows by 4/3: a part whose text exceeds this cannot decode under MAX_PART.
    let bytes =
        b64::decode(part, MAX_PART * 4 / 3 + 4).map_err(|_| PassportError::Base64(label))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(PassportError::NotJson(label)),
    }
}

fn string_field<'v>(map: &'v serde_json::Map<String, Value>, key: &str) -> Option<&'v str> {
    map.get(key).and_then(Value::as_str)
}

/// Accepts the canonical 8-4-4-4-12 hex form of a UUID (either case).
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn tn_claim(claims: &serde_json::Map<String, Value>, key: &str) -> Result<Value, PassportError> {
    match claims.get(key) {
        Some(Value::Object(o)) => Ok(o.get("tn").cloned().unwrap_or(Value::Null)),
        Some(_) => Err(PassportError::Claims(format!("{key} is not an object"))),
        None => Err(PassportError::Claims(format!("{key} is missing"))),
    }
}

/// RFC 7515 §4.1.11: `crit` lists header parameters the recipient must understand, or reject
/// the JWS. SHAKEN, div and RFC 8225 define none, so any listed name is one this verifier does
/// not understand; an empty or malformed list is invalid. Checked before any x5u is fetched.
fn check_crit(header: &serde_json::Map<String, Value>) -> Result<(), PassportError> {
    let h = |m: String| Err(PassportError::Header(m));
    match header.get("crit") {
        None => Ok(()),
        Some(Value::Array(names)) if names.is_empty() => h("crit is an empty list".into()),
        Some(Value::Array(names)) => match names.iter().find(|n| !n.is_string()) {
            Some(n) => h(format!("crit holds a non-string {n}")),
            None => h(format!(
                "crit names header parameters this verifier does not understand: {}",
                Value::Array(names.clone())
            )),
        },
        Some(other) => h(format!("crit is {other}, not a list")),
    }
}

/// Decodes and checks a PASSporT against the Identity header that carried it.
pub fn decode(jws: &Jws<'_>, identity: &IdentityHeader<'_>) -> Result<Passport, PassportError> {
    let header = json_object(jws.header, "header")?;
    let claims = json_object(jws.payload, "payload")?;
    let h = |m: String| PassportError::Header(m);
    // The algorithm first: an RS256 signature is longer than ES256's, and its failure must
    // say "unsupported alg", not a decoding problem of the signature.
    match string_field(&header, "alg") {
        Some("ES256") => {}
        Some(other) => return Err(h(format!("unsupported alg {other:?} (only ES256)"))),
        None => return Err(h("alg is missing".into())),
    }
    check_crit(&header)?;
    // Room for any algorithm's signature (RSA-4096 is 512 bytes), so a length problem is
    // reported as one.
    let sig = b64::decode(jws.signature, 1024).map_err(|_| PassportError::Base64("signature"))?;
    let signature: [u8; 64] = sig
        .as_slice()
        .try_into()
        .map_err(|_| PassportError::SignatureLength(sig.len()))?;

    if let Some(alg) = identity.alg {
        if alg != b"ES256" {
            return Err(h(format!(
                "Identity alg parameter is {:?}, not ES256",
                String::from_utf8_lossy(alg)
            )));
        }
    }
    match header.get("typ") {
        Some(Value::String(t)) if t == "passport" => {}
        Some(t) => return Err(h(format!("typ is {t}, not \"passport\""))),
        None => return Err(h("typ is missing".into())),
    }
    let ppt = match (header.get("ppt"), identity.ppt) {
        (Some(Value::String(p)), param) => {
            if let Some(param) = param {
                if param != p.as_bytes() {
                    return Err(h(format!(
                        "ppt {p:?} differs from the Identity ppt parameter {:?}",
                        String::from_utf8_lossy(param)
                    )));
                }
            }
            p.clone()
        }
        (Some(other), _) => return Err(h(format!("ppt is {other}, not a string"))),
        // RFC 8225 base PASSporTs carry no ppt; SHAKEN and div ones must.
        (None, _) => return Err(h("ppt is missing".into())),
    };
    let x5u = match string_field(&header, "x5u") {
        Some(u) if !u.is_empty() => u.to_string(),
        _ => return Err(h("x5u is missing or not a string".into())),
    };
    if let Some(info) = identity.info {
        if info != x5u.as_bytes() {
            return Err(h(format!(
                "x5u {x5u:?} differs from the Identity info parameter {:?}",
                String::from_utf8_lossy(info)
            )));
        }
    }

    let c = |m: String| PassportError::Claims(m);
    let iat = match claims.get("iat") {
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| c(format!("iat {n} is not an integer")))?,
        Some(other) => return Err(c(format!("iat is {other}, not an integer"))),
        None => return Err(c("iat is missing".into())),
    };
    let orig_tn = match tn_claim(&claims, "orig")? {
        Value::String(s) => s,
        _ => return Err(c("orig.tn is missing or not a string".into())),
    };
    let dest_tns = match tn_claim(&claims, "dest")? {
        Value::Array(items) if !items.is_empty() => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(c(format!("dest.tn holds {other}, not a string"))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => {
            return Err(c(
                "dest.tn is missing or not a non-empty array of strings".into()
            ))
        }
    };
    let mut passport = Passport {
        ppt,
        x5u,
        attest: None,
        orig_tn,
        dest_tns,
        iat,
        origid: None,
        div_tn: None,
        signature,
    };
    match passport.ppt.as_str() {
        "shaken" => {
            passport.attest = match string_field(&claims, "attest") {
                Some(a @ ("A" | "B" | "C")) => Some(a.to_string()),
                Some(a) => return Err(c(format!("attest {a:?} is not A, B or C"))),
                None => return Err(c("attest is missing or not a string".into())),
            };
            passport.origid = match string_field(&claims, "origid") {
                Some(o) if is_uuid(o) => Some(o.to_string()),
                Some(o) => return Err(c(format!("origid {o:?} is not a UUID"))),
                None => return Err(c("origid is missing or not a string".into())),
            };
        }
        "div" => {
            passport.div_tn = match tn_claim(&claims, "div")? {
                Value::String(s) => Some(s),
                _ => return Err(c("div.tn is missing or not a string".into())),
            };
        }
        other => return Err(h(format!("ppt {other:?} is not supported (shaken, div)"))),
    }
    Ok(passport)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shaken::b64::encode;
    use crate::shaken::identity::parse_identity;

    fn token(header: &str, claims: &str, sig_len: usize) -> String {
        format!(
            "{}.{}.{}",
            encode(header.as_bytes()),
            encode(claims.as_bytes()),
            encode(&vec![7u8; sig_len])
        )
    }

    const HDR: &str =
        r#"{"alg":"ES256","typ":"passport","ppt":"shaken","x5u":"https://cert.example/sp.pem"}"#;
    const CLAIMS: &str = r#"{"attest":"A","dest":{"tn":["13035550177","13035550178"]},"iat":1795000000,"orig":{"tn":"12025550143"},"origid":"e32f4189-cb86-460f-bb92-bd3acb89f29c"}"#;

    fn decode_str(value: &str) -> Result<Passport, PassportError> {
        let id = parse_identity(value.as_bytes()).unwrap();
        decode(&split_jws(id.token)?, &id)
    }

    #[test]
    fn valid_shaken_passport() {
        let t = token(HDR, CLAIMS, 64);
        let p = decode_str(&format!(
            "{t};info=<https://cert.example/sp.pem>;alg=ES256;ppt=shaken"
        ))
        .unwrap();
        assert_eq!(p.attest.as_deref(), Some("A"));
        assert_eq!(p.dest_tns, vec!["13035550177", "13035550178"]);
        assert_eq!(p.iat, 1_795_000_000);
        assert_eq!(
            p.origid.as_deref(),
            Some("e32f4189-cb86-460f-bb92-bd3acb89f29c")
        );
        let jws = split_jws(t.as_bytes()).unwrap();
        assert_eq!(jws.signing_input, &t.as_bytes()[..t.rfind('.').unwrap()]);
    }

    #[test]
    fn each_header_and_claim_rule_has_its_reason() {
        let cases: Vec<(String, String, &str)> = vec![
            (
                HDR.replace("ES256", "RS256"),
                CLAIMS.into(),
                "unsupported alg \"RS256\"",
            ),
            (
                HDR.replace("\"typ\"", "\"crit\":[\"exp\"],\"exp\":1,\"typ\""),
                CLAIMS.into(),
                "crit names header parameters this verifier does not understand: [\"exp\"]",
            ),
            (
                HDR.replace("\"typ\"", "\"crit\":[],\"typ\""),
                CLAIMS.into(),
                "crit is an empty list",
            ),
            (
                HDR.replace("\"typ\"", "\"crit\":\"x5u\",\"typ\""),
                CLAIMS.into(),
                "crit is \"x5u\", not a list",
            ),
            (
                HDR.replace("passport", "JWT"),
                CLAIMS.into(),
                "typ is \"JWT\"",
            ),
            (
                HDR.replace("\"ppt\":\"shaken\",", ""),
                CLAIMS.into(),
                "ppt is missing",
            ),
            (
                HDR.replace("\"x5u\":\"https://cert.example/sp.pem\"", "\"x\":1"),
                CLAIMS.into(),
                "x5u is missing",
            ),
            (HDR.into(), CLAIMS.replace("\"A\"", "\"D\""), "attest \"D\""),
            (
                HDR.into(),
                CLAIMS.replace("1795000000", "1795000000.5"),
                "not an integer",
            ),
            (
                HDR.into(),
                CLAIMS.replace("1795000000", "\"1795000000\""),
                "not an integer",
            ),
            (
                HDR.into(),
                CLAIMS.replace("{\"tn\":\"12025550143\"}", "\"12025550143\""),
                "orig is not an object",
            ),
            (
                HDR.into(),
                CLAIMS.replace("[\"13035550177\",\"13035550178\"]", "\"13035550177\""),
                "dest.tn is missing or not",
            ),
            (
                HDR.into(),
                CLAIMS.replace("[\"13035550177\",\"13035550178\"]", "[1]"),
                "dest.tn holds 1",
            ),
            (
                HDR.into(),
                CLAIMS.replace("e32f4189-cb86-460f-bb92-bd3acb89f29c", "not-a-uuid"),
                "origid \"not-a-uuid\"",
            ),
        ];
        for (hdr, claims, want) in cases {
            let t = token(&hdr, &claims, 64);
            let err = decode_str(&t).unwrap_err().to_string();
            assert!(err.contains(want), "{err} lacks {want}");
        }
    }

    #[test]
    fn identity_parameters_must_agree_with_the_passport() {
        let t = token(HDR, CLAIMS, 64);
        let e = decode_str(&format!("{t};ppt=div")).unwrap_err().to_string();
        assert!(e.contains("differs from the Identity ppt parameter"), "{e}");
        let e = decode_str(&format!("{t};info=<https://other.example/x.pem>"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("differs from the Identity info parameter"),
            "{e}"
        );
        let e = decode_str(&format!("{t};alg=ES384"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Identity alg parameter"), "{e}");
    }

    #[test]
    fn div_passport() {
        let hdr = HDR.replace("shaken", "div");
        let claims = r#"{"dest":{"tn":["13035550177"]},"div":{"tn":"13035550100"},"iat":1795000000,"orig":{"tn":"12025550143"}}"#;
        let p = decode_str(&token(&hdr, claims, 64)).unwrap();
        assert_eq!(p.div_tn.as_deref(), Some("13035550100"));
        assert_eq!(p.attest, None);
    }

    #[test]
    fn malformed_tokens() {
        assert_eq!(split_jws(b"a.b"), Err(PassportError::NotCompact));
        assert_eq!(split_jws(b"a.b.c.d"), Err(PassportError::NotCompact));
        assert_eq!(split_jws(b"a..c"), Err(PassportError::NotCompact));
        assert_eq!(
            decode_str(&token(HDR, CLAIMS, 63)),
            Err(PassportError::SignatureLength(63))
        );
        let raw = IdentityHeader {
            token: b"e30.!!!.c2ln",
            info: None,
            alg: None,
            ppt: None,
        };
        assert_eq!(
            decode(&split_jws(raw.token).unwrap(), &raw),
            Err(PassportError::Base64("payload"))
        );
        assert_eq!(
            decode_str(&token("[1]", CLAIMS, 64)),
            Err(PassportError::NotJson("header"))
        );
        let direct = |t: &str| {
            let id = IdentityHeader {
                token: t.as_bytes(),
                info: None,
                alg: None,
                ppt: None,
            };
            decode(&split_jws(id.token)?, &id)
        };
        let deep = format!("{}{}", "[".repeat(1500), "]".repeat(1500));
        assert_eq!(
            direct(&token(HDR, &deep, 64)),
            Err(PassportError::NotJson("payload"))
        );
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(10_000));
        assert_eq!(
            direct(&token(HDR, &big, 64)),
            Err(PassportError::Base64("payload"))
        );
    }
}
