//! THE telephone-number canonicalizer of the project (RFC 8224 §8.3): every comparison of a
//! PASSporT `orig.tn`/`dest.tn` with a SIP header, every per-number key and record field uses
//! [`canonicalize`] and nothing else.
//!
//! Rules: user-params after `;` are cut; `%xx` is decoded; digits, `*` and `#` are kept; the
//! visual separators `-` `.` `(` `)` and spaces and one leading `+` are dropped; anything else
//! (letters, as in `alice` or `anonymous`) means "not a telephone number"; more than 20 kept
//! characters or none at all likewise; a 10-digit NANP number (first digit 2-9) written
//! without `+` gets its leading `1`. With a `+` the number is already E.164 and keeps its
//! digits: `+2025550143` is country code 20, and must never match `+12025550143`.
//! A canonical TN is therefore E.164 digits: read back it must get its `+`
//! (`canonicalize("+" + tn) == tn`); without it, a 10-digit one starting 2-9 would be taken
//! for NANP (found by fuzzing, tests/fuzz_regressions.rs). It must never allocate (a [`Tn`] is
//! inline and `Copy`) and never panic.

use std::fmt;

use super::uri::{Scheme, Uri};

/// Most characters a canonical TN holds (E.164 allows 15 digits; `*`/`#` service codes more).
pub const MAX_TN_LEN: usize = 20;

/// A canonical telephone number: only `[0-9*#]`, 1 to [`MAX_TN_LEN`] characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tn {
    // Bytes past `len` are always zero, so the derived traits compare only the number.
    buf: [u8; MAX_TN_LEN],
    len: u8,
}

impl Tn {
    pub fn as_str(&self) -> &str {
        // Only ASCII digits, `*` and `#` are ever stored.
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// NPA-NXX (6 digits) of an 11-digit NANP number `1NXXNXXXXXX` (N = 2-9).
    pub fn npa_nxx(&self) -> Option<&str> {
        let b = self.as_bytes();
        let nanp = b.len() == 11
            && b[0] == b'1'
            && b.iter().all(u8::is_ascii_digit)
            && (b'2'..=b'9').contains(&b[1])
            && (b'2'..=b'9').contains(&b[4]);
        nanp.then(|| self.as_str().get(1..7)).flatten()
    }
}

impl fmt::Display for Tn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Tn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tn({})", self.as_str())
    }
}

/// Canonical form of a telephone number as found in a URI user part, a tel: URI or a
/// PASSporT claim; `None` when it is not a telephone number (see the module doc).
pub fn canonicalize(user: &[u8]) -> Option<Tn> {
    let user = user.split(|&b| b == b';').next().unwrap_or(user);
    let mut tn = Tn {
        buf: [0; MAX_TN_LEN],
        len: 0,
    };
    let mut n = 0usize;
    let mut plus_allowed = true;
    let mut international = false;
    let mut i = 0;
    while i < user.len() {
        let mut b = user[i];
        i += 1;
        if b == b'%' {
            let hi = hex(*user.get(i)?)?;
            let lo = hex(*user.get(i + 1)?)?;
            b = hi << 4 | lo;
            i += 2;
        }
        match b {
            b'0'..=b'9' | b'*' | b'#' => {
                *tn.buf.get_mut(n)? = b;
                n += 1;
                plus_allowed = false;
            }
            b'-' | b'.' | b'(' | b')' | b' ' => {}
            b'+' if plus_allowed => {
                plus_allowed = false;
                international = true;
            }
            _ => return None,
        }
    }
    if n == 0 {
        return None;
    }
    if n == 10
        && !international
        && (b'2'..=b'9').contains(&tn.buf[0])
        && tn.buf[..10].iter().all(u8::is_ascii_digit)
    {
        tn.buf.copy_within(0..10, 1);
        tn.buf[0] = b'1';
        n = 11;
    }
    tn.len = u8::try_from(n).ok()?;
    Some(tn)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The canonical TN a URI names: the number of a tel: URI, or the user part (user-params cut)
/// of a sip:/sips: URI when it is a telephone number (`user=phone`, or simply numeric).
pub fn canonical_tn_of(uri: &Uri) -> Option<Tn> {
    match uri.scheme {
        Scheme::Tel => canonicalize(uri.user?),
        Scheme::Sip | Scheme::Sips => canonicalize(uri.user_number()?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_means_e164_so_no_nanp_one_is_added() {
        assert_eq!(canonicalize(b"+2025550143").unwrap().as_str(), "2025550143");
        assert_eq!(canonicalize(b"2025550143").unwrap().as_str(), "12025550143");
        assert_eq!(
            canonicalize(b"+1-202-555-0143").unwrap().as_str(),
            "12025550143"
        );
        assert_ne!(canonicalize(b"+2025550143"), canonicalize(b"+12025550143"));
    }
    use crate::sip::uri::parse_uri;
    use proptest::prelude::*;

    fn c(v: &str) -> Option<String> {
        canonicalize(v.as_bytes()).map(|t| t.to_string())
    }

    #[test]
    fn canonical_forms() {
        for (input, want) in [
            ("+12025550143", "12025550143"),
            ("12025550143", "12025550143"),
            ("2025550143", "12025550143"),
            ("+1-202-555-0143", "12025550143"),
            ("(202) 555.0143", "12025550143"),
            ("%2B1%20202%20555%200143", "12025550143"),
            ("%2b1202555014%33", "12025550143"),
            ("+12025550143;npdi;rn=+12025551000", "12025550143"),
            ("+442079460958", "442079460958"),
            ("1025550143", "1025550143"),
            ("*67", "*67"),
            ("#31#2025550143", "#31#2025550143"),
            ("911", "911"),
            ("+2025550143", "2025550143"),
            ("12345678901234567890", "12345678901234567890"),
        ] {
            assert_eq!(c(input).as_deref(), Some(want), "{input}");
        }
        for bad in [
            "",
            "+",
            "-",
            "()",
            "alice",
            "anonymous",
            "+1202555014x",
            "12025550143a",
            "123456789012345678901",
            "1+202",
            "++1202",
            "%",
            "%2",
            "%zz1",
            "%41",
            "1\u{0}2",
            ";npdi",
            "2025550143,",
            "\u{e9}",
        ] {
            assert_eq!(c(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn npa_nxx_only_for_nanp() {
        let t = canonicalize(b"+1 (202) 555-0143").unwrap();
        assert_eq!(t.npa_nxx(), Some("202555"));
        assert_eq!(t.as_str(), "12025550143");
        assert_eq!(format!("{t:?}"), "Tn(12025550143)");
        for other in [
            "442079460958",
            "11025550143",
            "12021550143",
            "*67",
            "1202555014#",
        ] {
            assert_eq!(
                canonicalize(other.as_bytes()).unwrap().npa_nxx(),
                None,
                "{other}"
            );
        }
    }

    #[test]
    fn tn_of_uris() {
        let tn =
            |s: &str| canonical_tn_of(&parse_uri(s.as_bytes()).unwrap()).map(|t| t.to_string());
        assert_eq!(
            tn("tel:+1-202-555-0143;phone-context=x").as_deref(),
            Some("12025550143")
        );
        assert_eq!(
            tn("sip:+12025550143;npdi@h;user=phone").as_deref(),
            Some("12025550143")
        );
        assert_eq!(tn("sip:2025550143@h").as_deref(), Some("12025550143"));
        assert_eq!(tn("sips:alice@h"), None);
        assert_eq!(tn("sip:anonymous@anonymous.invalid"), None);
        assert_eq!(tn("sip:h"), None);
    }

    fn separators() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![Just('-'), Just('.'), Just('('), Just(')'), Just(' ')],
            0..3,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #[test]
        fn idempotent_and_clean(s in "[0-9*#+().\\- a-z%;]{0,30}") {
            if let Some(t) = canonicalize(s.as_bytes()) {
                prop_assert!(t.as_bytes().iter().all(|b| b.is_ascii_digit() || *b == b'*' || *b == b'#'));
                prop_assert!(!t.as_str().is_empty() && t.as_str().len() <= MAX_TN_LEN);
                let e164 = format!("+{}", t.as_str());
                prop_assert_eq!(canonicalize(e164.as_bytes()), Some(t));
            }
        }

        #[test]
        fn separators_do_not_matter(
            digits in "[0-9]{1,22}",
            seps in proptest::collection::vec(separators(), 23),
        ) {
            let plain = canonicalize(digits.as_bytes());
            let mut sepd = String::new();
            for (i, d) in digits.chars().enumerate() {
                sepd.push_str(&seps[i]);
                sepd.push(d);
            }
            sepd.push_str(&seps[22]);
            prop_assert_eq!(canonicalize(sepd.as_bytes()), plain);
        }

        #[test]
        fn leading_plus_does_not_matter_for_full_numbers(digits in "[0-9*#]{0,22}") {
            // Only the NANP shorthand (10 digits, no country code) differs with and without '+'.
            prop_assume!(digits.len() != 10);
            let plus = format!("+{digits}");
            prop_assert_eq!(canonicalize(plus.as_bytes()), canonicalize(digits.as_bytes()));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Some(t) = canonicalize(&bytes) {
                let e164 = format!("+{}", t.as_str());
                prop_assert_eq!(canonicalize(e164.as_bytes()), Some(t));
            }
        }
    }
}
