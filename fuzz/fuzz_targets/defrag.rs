//! Fuzz target: IPv4/IPv6 fragment reassembly. The input is a sequence of fragments:
//! [selector: id (bits 0-2), IPv6 (bit 3), expire first (bit 4)] [u16 offset in 8-byte units,
//! 13 bits] [flags: more (bit 0)] [u16 length][data]. Checks the table bounds after every push.
//! The harness is `harness::defrag` (shared with tests/fuzz_regressions.rs).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::defrag(data));
