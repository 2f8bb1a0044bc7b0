//! Fuzz target: Identity header parsing (RFC 8224) and PASSporT decoding (RFC 8225/8588):
//! the input is an Identity header value; its token is split as a compact JWS and decoded.
//! The input is also tried directly as a compact JWS under a minimal header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shaken_sensor::shaken::identity::{parse_identity, IdentityHeader};
use shaken_sensor::shaken::passport::{decode, split_jws};

fuzz_target!(|data: &[u8]| {
    if let Ok(id) = parse_identity(data) {
        assert!(id.token.len() <= data.len());
        if let Ok(jws) = split_jws(id.token) {
            if let Ok(p) = decode(&jws, &id) {
                assert!(!p.x5u.is_empty());
            }
        }
    }
    if let Ok(jws) = split_jws(data) {
        assert_eq!(
            jws.signing_input.len() + 1 + jws.signature.len(),
            data.len()
        );
        let id = IdentityHeader {
            token: data,
            info: None,
            alg: None,
            ppt: None,
        };
        let _ = decode(&jws, &id);
    }
});
