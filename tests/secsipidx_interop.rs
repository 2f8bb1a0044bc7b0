//! Interop with an independent signer: PASSporTs made by `secsipidx` (the Debian package of
//! the library behind Kamailio's secsipid module) with the key of a test STI certificate that
//! openssl makes at test time, checked by `shaken-sensor verify`. Genuine tokens pass with their
//! attestation; tampered payloads and signatures, mismatched orig/dest, a wrong key, an
//! untrusted certificate and a stale iat get the codes of DESIGN §3. SKIPPED without secsipidx.

mod common;
mod common_pki;

use common_pki::{Leaf, TestPki};
use serde_json::Value;
use shaken_sensor::shaken::b64::{decode, encode};
use std::path::{Path, PathBuf};
use std::process::Command;

const X5U: &str = "https://certs.test.invalid/sp.pem";
/// secsipidx `-sign` takes the header and payload JSON as given, so iat is ours to choose;
/// verify runs `--now` a few seconds later.
const IAT: i64 = 1_795_000_000;
const ORIGID: &str = "de305d54-75b4-431b-adb2-eb6b9e546014";

fn header() -> String {
    format!(r#"{{"alg":"ES256","ppt":"shaken","typ":"passport","x5u":"{X5U}"}}"#)
}

fn payload(attest: &str, orig: &str, dest: &str, iat: i64) -> String {
    format!(
        r#"{{"attest":"{attest}","dest":{{"tn":["{dest}"]}},"iat":{iat},"orig":{{"tn":"{orig}"}},"origid":"{ORIGID}"}}"#
    )
}

fn secsipidx(args: &[&str]) -> String {
    let out = Command::new("secsipidx").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "secsipidx {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A compact JWS signed by secsipidx over exactly this header and payload.
fn sign(key: &Path, payload: &str) -> String {
    let key = key.display().to_string();
    secsipidx(&[
        "-sign",
        "-header",
        &header(),
        "-payload",
        payload,
        "-k",
        &key,
    ])
}

fn identity(jws: &str) -> String {
    format!("{jws};info=<{X5U}>;alg=ES256;ppt=shaken")
}

fn invite(call_id: &str, identity: &str) -> Vec<u8> {
    format!(
        "INVITE sip:+13035550177@192.0.2.1;user=phone SIP/2.0\r\n\
         Via: SIP/2.0/UDP 198.51.100.10;branch=z9hG4bK-{call_id}\r\n\
         From: <sip:+12025550143@198.51.100.10;user=phone>;tag=a\r\n\
         To: <sip:+13035550177@192.0.2.1;user=phone>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nIdentity: {identity}\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Runs `shaken-sensor verify` over the INVITEs (certificate seeded, anchors configured).
fn verify(
    dir: &Path,
    p: &TestPki,
    cert: &Leaf,
    now: Option<i64>,
    invites: &[Vec<u8>],
) -> Vec<Value> {
    let files: Vec<PathBuf> = invites
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let f = dir.join(format!("invite-{i}.sip"));
            std::fs::write(&f, m).unwrap();
            f
        })
        .collect();
    let mut cmd = Command::new(common::bin());
    cmd.arg("verify")
        .arg("--trust-anchors")
        .arg(&p.root_path)
        .arg("--cert")
        .arg(format!("{X5U}={}", cert.bundle_path.display()));
    if let Some(t) = now {
        cmd.arg("--now").arg(t.to_string());
    }
    common::json_lines("verify", cmd.args(&files).output().unwrap())
}

fn key_file(dir: &Path, leaf: &Leaf) -> PathBuf {
    let f = dir.join(format!("{}-key.pem", leaf.name));
    std::fs::write(&f, &leaf.key_pkcs8_pem).unwrap();
    f
}

fn setup() -> Option<(&'static TestPki, tempfile::TempDir)> {
    if !common::have("secsipidx") {
        eprintln!("SKIPPED: secsipidx is not installed (apt-get install secsipidx)");
        return None;
    }
    Some((common_pki::shared()?, tempfile::tempdir().unwrap()))
}

#[test]
fn secsipidx_tokens_pass_with_their_attestation() {
    let Some((p, dir)) = setup() else { return };
    let d = dir.path();
    let key = key_file(d, &p.valid);
    let invites: Vec<Vec<u8>> = ["A", "B", "C"]
        .iter()
        .map(|a| {
            let jws = sign(&key, &payload(a, "12025550143", "13035550177", IAT));
            invite(&format!("attest-{a}"), &identity(&jws))
        })
        .collect();
    let out = verify(d, p, &p.valid, Some(IAT + 5), &invites);
    assert_eq!(out.len(), 3);
    for (v, a) in out.iter().zip(["A", "B", "C"]) {
        assert_eq!(v["verstat"], "TN-Validation-Passed", "{v}");
        assert_eq!(v["attest"], a);
        assert_eq!(v["origid"], ORIGID);
        assert_eq!(v["spc"].as_str(), p.valid.spc.as_deref());
        assert_eq!(v["orig"], "12025550143");
        assert!(v["code"].is_null(), "{v}");
    }

    // secsipidx's own full Identity header (-sign-full: its iat is the current time, its
    // origid a fresh UUID), verified as of now.
    let full = secsipidx(&[
        "-sign-full",
        "-orig-tn",
        "12025550143",
        "-dest-tn",
        "13035550177",
        "-attest",
        "B",
        "-x5u",
        X5U,
        "-k",
        &key.display().to_string(),
    ]);
    assert!(full.contains(";info=<"), "{full}");
    let out = verify(d, p, &p.valid, None, &[invite("full", &full)]);
    assert_eq!(out[0]["verstat"], "TN-Validation-Passed", "{}", out[0]);
    assert_eq!(out[0]["attest"], "B");
}

#[test]
fn tampered_mismatched_and_wrongly_keyed_tokens_get_their_codes() {
    let Some((p, dir)) = setup() else { return };
    let d = dir.path();
    let key = key_file(d, &p.valid);
    let good = sign(&key, &payload("A", "12025550143", "13035550177", IAT));
    let parts: Vec<&str> = good.split('.').collect();

    // Payload swapped after signing: the claims name this call, the signature covers others.
    let signed_other = sign(&key, &payload("A", "12025550143", "13035550999", IAT));
    let other: Vec<&str> = signed_other.split('.').collect();
    let swapped = format!("{}.{}.{}", other[0], parts[1], other[2]);
    // Attestation raised from C to A in the payload bytes after signing.
    let c_signed = sign(&key, &payload("C", "12025550143", "13035550177", IAT));
    let c: Vec<&str> = c_signed.split('.').collect();
    let raised_json = String::from_utf8(decode(c[1].as_bytes(), 4096).unwrap())
        .unwrap()
        .replace("\"C\"", "\"A\"");
    let raised = format!("{}.{}.{}", c[0], encode(raised_json.as_bytes()), c[2]);
    // One signature byte changed.
    let mut sig = decode(parts[2].as_bytes(), 4096).unwrap();
    sig[10] ^= 0x01;
    let bad_sig = format!("{}.{}.{}", parts[0], parts[1], encode(&sig));
    // Signed by another key than the certificate at x5u.
    let wrong_key = sign(
        &key_file(d, &p.expired),
        &payload("A", "12025550143", "13035550177", IAT),
    );
    let cases: Vec<(&str, String, u64, &str)> = vec![
        ("payload-swapped", swapped, 438, "signature does not verify"),
        ("attest-raised", raised, 438, "signature does not verify"),
        (
            "signature-flipped",
            bad_sig,
            438,
            "signature does not verify",
        ),
        ("wrong-key", wrong_key, 438, "signature does not verify"),
        (
            "orig-mismatch",
            sign(&key, &payload("A", "12025550199", "13035550177", IAT)),
            438,
            "orig.tn",
        ),
        (
            "dest-mismatch",
            sign(&key, &payload("A", "12025550143", "13035550999", IAT)),
            438,
            "dest.tn",
        ),
        (
            "stale",
            sign(
                &key,
                &payload("A", "12025550143", "13035550177", IAT - 3600),
            ),
            403,
            "Stale Date",
        ),
    ];
    let invites: Vec<Vec<u8>> = cases
        .iter()
        .map(|(name, jws, _, _)| invite(name, &identity(jws)))
        .collect();
    let out = verify(d, p, &p.valid, Some(IAT + 5), &invites);
    assert_eq!(out.len(), cases.len());
    for (v, (name, _, code, reason)) in out.iter().zip(&cases) {
        assert_eq!(v["call_id"], *name);
        assert_eq!(v["verstat"], "TN-Validation-Failed", "{name}: {v}");
        assert_eq!(v["code"].as_u64(), Some(*code), "{name}: {v}");
        let r = v["reason"].as_str().unwrap_or_default();
        assert!(r.contains(reason), "{name}: reason {r:?} lacks {reason:?}");
    }

    // Signed (by secsipidx) with the key of a certificate no configured STI-CA issued.
    let untrusted = sign(
        &key_file(d, &p.untrusted),
        &payload("A", "12025550143", "13035550177", IAT),
    );
    let out = verify(
        d,
        p,
        &p.untrusted,
        Some(IAT + 5),
        &[invite("untrusted", &identity(&untrusted))],
    );
    assert_eq!(out[0]["verstat"], "TN-Validation-Failed", "{}", out[0]);
    assert_eq!(out[0]["code"], 437);
}
