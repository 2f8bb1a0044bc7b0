//! Fuzz target: Identity header parsing (RFC 8224) and PASSporT decoding (RFC 8225/8588):
//! the input is an Identity header value; its token is split as a compact JWS and decoded.
//! The input is also tried directly as a compact JWS under a minimal header.
//! The harness is `harness::identity` (shared with tests/fuzz_regressions.rs).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::identity(data));
