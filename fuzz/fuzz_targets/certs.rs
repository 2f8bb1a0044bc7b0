//! Fuzz target: certificate and TNAuthList parsing. The first byte picks the entry point: one
//! DER certificate, an x5u body (PEM bundle or DER), a TNAuthList extension value, or a full
//! chain validation against a fixed test root (fuzz/anchor.pem, a public certificate only).
//! The harness is `harness::certs` (shared with tests/fuzz_regressions.rs).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::certs(data));
