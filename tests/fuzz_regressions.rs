//! Every crash the fuzzers found, replayed through the very harness the fuzzer ran
//! (fuzz/harness.rs) with the exact crashing input committed under fuzz/regressions/.
//! Each test is named after the finding; its doc says what broke and where it was fixed.
//! These tests must never reach outside the repository.

#[path = "../fuzz/harness.rs"]
mod harness;

fn input(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// TCP framing delivered a message longer than max_message_bytes when its whole body had
/// already arrived: the header block and the Content-Length were each under the limit, their
/// sum was not checked (src/sip/framing.rs `frame`, stream mode).
#[test]
fn decode_crash_tcp_message_over_max_message() {
    harness::decode(&input("decode-tcp-message-over-max-message.bin"));
}
