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

/// `Contact: <sip:+70)35550177@...>`: the canonical TN of a 10-digit E.164 number starting
/// 2-9 (`7035550177`) is not a fixed point of the canonicalizer when read back without its
/// `+` (it is taken for a NANP number and becomes `17035550177`), which the harness (and the
/// unit property `idempotent_and_clean`) assumed. The contract is now stated and checked as
/// "canonical TNs are E.164 digits: `canonicalize("+" + tn) == tn`" (src/sip/tn.rs).
#[test]
fn sip_crash_short_e164_tn_not_a_fixed_point() {
    let data = input("sip-short-e164-tn-not-a-fixed-point.bin");
    harness::sip(&data);
    use shaken_sensor::sip::tn::canonicalize;
    let tn = canonicalize(b"+70)35550177").unwrap();
    assert_eq!(tn.as_str(), "7035550177");
    assert_eq!(canonicalize(b"+7035550177"), Some(tn));
    assert_eq!(canonicalize(b"7035550177").unwrap().as_str(), "17035550177");
}

/// The HEP harness on its committed seeds (fuzz/corpus/hep): each yields SIP or a counted error
/// without tripping the harness's invariants.
#[test]
fn hep_harness_runs_its_seed_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/hep");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        harness::hep(&std::fs::read(entry.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= 4);
}
