//! Fuzz target: TCP stream reassembly and SIP framing. The input is a sequence of segments:
//! [selector: stream (bits 0-1), reverse direction (bit 2), expire first (bit 3)] [u32 seq]
//! [flags: SYN bit 0, FIN bit 1, RST bit 2] [u16 length][payload]. Checks the stream table and
//! byte bounds after every segment and the framing of every message delivered.
//! The harness is `harness::tcp` (shared with tests/fuzz_regressions.rs).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::tcp(data));
