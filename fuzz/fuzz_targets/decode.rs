//! Fuzz target: packet decode (link layer -> IP -> UDP/TCP -> framed SIP), stateful across
//! frames so fragments and TCP segments of one input meet in the same tables.
//! Input: [link type selector] then records [u16 length][frame bytes].
//! The harness is `harness::decode` (shared with tests/fuzz_regressions.rs).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::decode(data));
