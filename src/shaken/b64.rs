//! The project's one base64url decoder (RFC 4648 §5, no padding, as JWS uses it). Everything
//! that decodes a PASSporT part goes through here, with a size cap checked first.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum B64Error {
    #[error("base64url input longer than {0} bytes")]
    TooLong(usize),
    #[error("not base64url (RFC 4648 §5, unpadded)")]
    Invalid,
}

/// Decodes unpadded base64url of at most `max_input` bytes. Padding, '+', '/' and white space
/// are refused: a JWS that carries them was not produced by a conforming signer.
pub fn decode(input: &[u8], max_input: usize) -> Result<Vec<u8>, B64Error> {
    if input.len() > max_input {
        return Err(B64Error::TooLong(max_input));
    }
    URL_SAFE_NO_PAD.decode(input).map_err(|_| B64Error::Invalid)
}

/// Encodes without padding (tests and tools that build tokens).
pub fn encode(input: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        assert_eq!(
            decode(encode(b"{\"a\":1}").as_bytes(), 100).unwrap(),
            b"{\"a\":1}"
        );
        assert_eq!(decode(b"eyJ9", 100).unwrap(), b"{\"}");
        assert_eq!(decode(b"eyJ9==", 100), Err(B64Error::Invalid));
        assert_eq!(decode(b"ab+/", 100), Err(B64Error::Invalid));
        assert_eq!(decode(b"ab cd", 100), Err(B64Error::Invalid));
        assert_eq!(decode(b"abcd", 3), Err(B64Error::TooLong(3)));
    }
}
