//! The built-in NANP numbering-plan table for caller-ID validity, and the neighbour test.
//! Input is a canonical [`Tn`] (src/sip/tn.rs is the one canonicalizer). A number that is not
//! NANP (another country code) or not a number at all (`anonymous`) is never "invalid" here:
//! only a number that claims NANP (leading country code 1) and breaks its rules is.

use crate::sip::tn::Tn;

/// Why a calling number cannot be a real NANP number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Country code 1 but not 11 digits.
    Length,
    /// NPA starting with 0 or 1.
    NpaFirstDigit,
    /// NPA of the form N11 (service codes, never area codes).
    NpaN11,
    /// NPA N9X: reserved for numbering-plan expansion.
    NpaN9x,
    /// NPA 37X or 96X: reserved.
    NpaReserved,
    /// NXX starting with 0 or 1.
    NxxFirstDigit,
    /// NXX of the form N11 (211 ... 911 are never exchanges).
    NxxN11,
    /// 555-0100 to 555-0199: fictitious numbers.
    Fictitious,
    /// Toll-free NPA (800, 833, 844, 855, 866, 877, 888): terminating-only, not a caller.
    TollFree,
}

impl Invalid {
    pub fn as_str(self) -> &'static str {
        match self {
            Invalid::Length => "length",
            Invalid::NpaFirstDigit => "npa_first_digit",
            Invalid::NpaN11 => "npa_n11",
            Invalid::NpaN9x => "npa_n9x",
            Invalid::NpaReserved => "npa_reserved",
            Invalid::NxxFirstDigit => "nxx_first_digit",
            Invalid::NxxN11 => "nxx_n11",
            Invalid::Fictitious => "fictitious_555_01xx",
            Invalid::TollFree => "toll_free_caller",
        }
    }
}

const TOLL_FREE: [&[u8; 3]; 7] = [b"800", b"833", b"844", b"855", b"866", b"877", b"888"];

/// Whether a calling number breaks the NANP rules (see [`Invalid`]).
pub fn invalid_caller(tn: &Tn) -> Option<Invalid> {
    let b = tn.as_bytes();
    if b.first() != Some(&b'1') {
        return None; // another country, or a service code: not ours to judge
    }
    if b.len() != 11 || !b.iter().all(u8::is_ascii_digit) {
        return Some(Invalid::Length);
    }
    let npa = &b[1..4];
    let nxx = &b[4..7];
    let line = &b[7..11];
    if npa[0] < b'2' {
        return Some(Invalid::NpaFirstDigit);
    }
    if npa[1] == b'1' && npa[2] == b'1' {
        return Some(Invalid::NpaN11);
    }
    if npa[1] == b'9' {
        return Some(Invalid::NpaN9x);
    }
    if (npa[0] == b'3' && npa[1] == b'7') || (npa[0] == b'9' && npa[1] == b'6') {
        return Some(Invalid::NpaReserved);
    }
    if TOLL_FREE.iter().any(|t| &t[..] == npa) {
        return Some(Invalid::TollFree);
    }
    if nxx[0] < b'2' {
        return Some(Invalid::NxxFirstDigit);
    }
    if nxx[1] == b'1' && nxx[2] == b'1' {
        return Some(Invalid::NxxN11);
    }
    if nxx == b"555" && line[0] == b'0' && line[1] == b'1' {
        return Some(Invalid::Fictitious);
    }
    None
}

/// Caller and callee share their NPA-NXX, or the caller is the callee.
pub fn neighbour(orig: &Tn, dest: &Tn) -> bool {
    orig == dest || matches!((orig.npa_nxx(), dest.npa_nxx()), (Some(a), Some(b)) if a == b)
}

/// The number as an integer, for sequential-dialling steps (None when not all digits).
pub fn numeric(tn: &Tn) -> Option<u64> {
    let b = tn.as_bytes();
    if b.is_empty() || b.len() > 19 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::tn::canonicalize;

    fn tn(s: &str) -> Tn {
        canonicalize(s.as_bytes()).unwrap()
    }

    #[test]
    fn the_table() {
        let cases = [
            ("+12025550243", None),
            ("2025550243", None),
            ("+12025550143", Some(Invalid::Fictitious)),
            ("+442071234567", None),
            ("+1202555024", Some(Invalid::Length)),
            ("+11025550243", Some(Invalid::NpaFirstDigit)),
            ("+10125550243", Some(Invalid::NpaFirstDigit)),
            ("+14115550243", Some(Invalid::NpaN11)),
            ("+19115550243", Some(Invalid::NpaN11)),
            ("+12935550243", Some(Invalid::NpaN9x)),
            ("+13725550243", Some(Invalid::NpaReserved)),
            ("+19655550243", Some(Invalid::NpaReserved)),
            ("+18005550243", Some(Invalid::TollFree)),
            ("+18885550243", Some(Invalid::TollFree)),
            ("+12020550143", Some(Invalid::NxxFirstDigit)),
            ("+12021550143", Some(Invalid::NxxFirstDigit)),
            ("+12029110143", Some(Invalid::NxxN11)),
            ("+12025550100", Some(Invalid::Fictitious)),
            ("+12025550199", Some(Invalid::Fictitious)),
            ("+12025550200", None),
            ("+12025551212", None),
        ];
        for (s, want) in cases {
            assert_eq!(invalid_caller(&tn(s)), want, "{s}");
        }
    }

    #[test]
    fn neighbours_and_numbers() {
        assert!(neighbour(&tn("+13035550143"), &tn("+13035559999")));
        assert!(!neighbour(&tn("+13035550143"), &tn("+13035560143")));
        assert!(neighbour(&tn("+442071234567"), &tn("+442071234567")));
        assert!(!neighbour(&tn("+442071234567"), &tn("+442071234568")));
        assert_eq!(numeric(&tn("+13035550143")), Some(13_035_550_143));
        assert_eq!(numeric(&tn("*67")), None);
    }
}
