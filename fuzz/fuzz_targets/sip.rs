//! Fuzz target: SIP framing (stream and datagram) and parsing of every framed message, down to
//! URIs, name-addrs, TN canonicalization, SDP and the header re-scan. The input is one TCP byte
//! stream (keep-alives allowed) and, at the same time, one UDP datagram.
//! The harness is `harness::sip` (shared with tests/fuzz_regressions.rs).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::sip(data));
