//! Fuzz target: HEP packets (v1/v2/v3, compressed payloads, auth key and leg filter) through
//! the capture decoder. The harness is `harness::hep` (shared with tests/fuzz_regressions.rs).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::hep(data));
