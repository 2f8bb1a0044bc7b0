//! `shaken-sensor verify` end to end: the real binary, a test PKI made by the openssl CLI at
//! test time, PASSporTs signed with its leaf keys, x5u served by a real HTTP server on
//! 127.0.0.1, and the third-party libstirshaken vectors. Each row of DESIGN §3 is asserted
//! with its exact verstat and SIP code.

mod common;
mod common_pki;

use common_pki::{Leaf, TestPki};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::Value;
use shaken_sensor::shaken::b64::encode;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

const X5U: &str = "https://certs.test.invalid/sp.pem";
const ORIG: &str = "+12025550143";
const DEST: &str = "+13035550177";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn sign_with(key_pkcs8: &[u8], x5u: &str, ppt: &str, claims: &str) -> String {
    let hdr = format!(r#"{{"alg":"ES256","typ":"passport","ppt":"{ppt}","x5u":"{x5u}"}}"#);
    sign_header(key_pkcs8, &hdr, x5u, ppt, claims)
}

/// A token with this exact protected header, really signed with ES256.
fn sign_header(key_pkcs8: &[u8], hdr: &str, x5u: &str, ppt: &str, claims: &str) -> String {
    let rng = SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, key_pkcs8, &rng).unwrap();
    let input = format!("{}.{}", encode(hdr.as_bytes()), encode(claims.as_bytes()));
    let sig = key.sign(&rng, input.as_bytes()).unwrap();
    format!(
        "{input}.{};info=<{x5u}>;alg=ES256;ppt={ppt}",
        encode(sig.as_ref())
    )
}

fn shaken_claims(iat: i64, orig: &str, dest: &str) -> String {
    format!(
        r#"{{"attest":"A","dest":{{"tn":["{dest}"]}},"iat":{iat},"orig":{{"tn":"{orig}"}},"origid":"de305d54-75b4-431b-adb2-eb6b9e546014"}}"#
    )
}

fn signed(leaf: &Leaf, x5u: &str, iat: i64) -> String {
    sign_with(
        &leaf.key_pkcs8_der,
        x5u,
        "shaken",
        &shaken_claims(iat, "12025550143", "13035550177"),
    )
}

fn invite(call_id: &str, identities: &[String]) -> Vec<u8> {
    let mut m = format!(
        "INVITE sip:{DEST}@192.0.2.1;user=phone SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.10;branch=z9hG4bK-{call_id}\r\n\
         From: <sip:{ORIG}@198.51.100.10;user=phone>;tag=a\r\nTo: <sip:{DEST}@192.0.2.1;user=phone>\r\n\
         P-Asserted-Identity: <sip:{ORIG}@198.51.100.10;user=phone>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
    );
    for id in identities {
        m.push_str(&format!("Identity: {id}\r\n"));
    }
    m.push_str("Content-Length: 0\r\n\r\n");
    m.into_bytes()
}

struct Run {
    dir: tempfile::TempDir,
}

impl Run {
    fn new() -> Self {
        Run {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn file(&self, name: &str, body: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    /// Runs `verify` on the messages and returns one JSON object per INVITE.
    fn verify(&self, args: &[String], messages: &[Vec<u8>]) -> Vec<Value> {
        let inputs: Vec<PathBuf> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| self.file(&format!("invite-{i}.sip"), m))
            .collect();
        self.verify_paths(args, &inputs)
    }

    fn verify_paths(&self, args: &[String], inputs: &[PathBuf]) -> Vec<Value> {
        let (code, lines, stderr) = self.verify_status(args, inputs);
        assert_eq!(code, Some(0), "verify failed: {stderr}");
        lines
    }

    /// Runs `verify` whatever its exit status: (status, JSON lines, stderr).
    fn verify_status(
        &self,
        args: &[String],
        inputs: &[PathBuf],
    ) -> (Option<i32>, Vec<Value>, String) {
        let out = Command::new(common::bin())
            .arg("verify")
            .args(args)
            .args(inputs)
            .output()
            .unwrap();
        let lines = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (
            out.status.code(),
            lines,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn pki() -> Option<&'static TestPki> {
    common_pki::shared()
}

fn anchor_args(p: &TestPki) -> Vec<String> {
    vec!["--trust-anchors".into(), p.root_path.display().to_string()]
}

fn seeded(p: &TestPki, leaf: &Leaf) -> Vec<String> {
    let mut a = anchor_args(p);
    a.push("--cert".into());
    a.push(format!("{X5U}={}", leaf.bundle_path.display()));
    a
}

fn assert_outcome(v: &Value, verstat: &str, code: Option<u64>, reason: &str) {
    assert_eq!(v["verstat"], verstat, "{v}");
    assert_eq!(v["code"].as_u64(), code, "{v}");
    if reason.is_empty() {
        assert!(v["reason"].is_null(), "{v}");
    } else {
        let r = v["reason"].as_str().unwrap_or_default();
        assert!(r.contains(reason), "reason {r:?} lacks {reason:?}");
    }
}

#[test]
fn valid_passport_with_seeded_chain_passes() {
    let Some(p) = pki() else { return };
    let r = Run::new();
    let out = r.verify(
        &seeded(p, &p.valid),
        &[invite("ok-1", &[signed(&p.valid, X5U, now())])],
    );
    assert_eq!(out.len(), 1);
    let v = &out[0];
    assert_outcome(v, "TN-Validation-Passed", None, "");
    assert_eq!(v["attest"], "A");
    assert_eq!(v["spc"].as_str(), p.valid.spc.as_deref());
    assert_eq!(v["orig"], "12025550143");
    assert_eq!(v["dest"], "13035550177");
    assert_eq!(v["origid"], "de305d54-75b4-431b-adb2-eb6b9e546014");
    assert_eq!(v["x5u"], X5U);
    assert_eq!(v["call_id"], "ok-1");
    assert_eq!(v["replayed"], false);
}

#[test]
fn every_certificate_defect_gives_437() {
    let Some(p) = pki() else { return };
    let r = Run::new();
    let cases: [(&Leaf, &str); 8] = [
        (&p.expired, "expired at"),
        (&p.not_yet_valid, "not valid before"),
        (&p.untrusted, "untrusted issuer"),
        (&p.no_tn_auth, "TNAuthList"),
        (&p.rsa, "P-256"),
        (&p.p384, "P-256"),
        (&p.ca_as_leaf, "CA certificate used as leaf"),
        (&p.no_digital_signature, "digitalSignature"),
    ];
    for (leaf, reason) in cases {
        // RSA and P-384 leaves cannot sign ES256: sign with the valid key; the chain fails first.
        let key = if leaf.name == "rsa" || leaf.name == "p384" {
            &p.valid
        } else {
            leaf
        };
        let out = r.verify(
            &seeded(p, leaf),
            &[invite(
                &format!("bad-{}", leaf.name),
                &[signed(key, X5U, now())],
            )],
        );
        assert_outcome(&out[0], "TN-Validation-Failed", Some(437), reason);
    }
}

#[test]
fn header_jws_claims_freshness_and_tn_rows() {
    let Some(p) = pki() else { return };
    let r = Run::new();
    let t = now();
    let good = |claims: &str| sign_with(&p.valid.key_pkcs8_der, X5U, "shaken", claims);
    let cases: Vec<(String, &str, u64, &str)> = vec![
        (
            "eyJhbGciOiJFUzI1NiJ9;info=<".into(),
            "TN-Validation-Failed",
            438,
            "unbalanced",
        ),
        (
            "onlyonepart;info=<https://x.example/a.pem>".into(),
            "TN-Validation-Failed",
            438,
            "compact form",
        ),
        (
            format!("e30.e30.{}", encode(&[1u8; 64])),
            "TN-Validation-Failed",
            438,
            "alg is missing",
        ),
        (
            good(&shaken_claims(t, "12025550143", "13035550177").replace("\"A\"", "\"Z\"")),
            "TN-Validation-Failed",
            438,
            "attest",
        ),
        (
            good(&shaken_claims(t - 3600, "12025550143", "13035550177")),
            "TN-Validation-Failed",
            403,
            "Stale Date",
        ),
        (
            good(&shaken_claims(t + 3600, "12025550143", "13035550177")),
            "TN-Validation-Failed",
            403,
            "in the future",
        ),
        (
            good(&shaken_claims(t, "12025550999", "13035550177")),
            "TN-Validation-Failed",
            438,
            "orig.tn",
        ),
        (
            good(&shaken_claims(t, "12025550143", "13035550999")),
            "TN-Validation-Failed",
            438,
            "dest.tn",
        ),
        (
            sign_with(
                &p.expired.key_pkcs8_der,
                X5U,
                "shaken",
                &shaken_claims(t, "12025550143", "13035550177"),
            ),
            "TN-Validation-Failed",
            438,
            "signature does not verify",
        ),
    ];
    for (i, (identity, verstat, code, reason)) in cases.into_iter().enumerate() {
        let out = r.verify(
            &seeded(p, &p.valid),
            &[invite(&format!("row-{i}"), &[identity])],
        );
        assert_outcome(&out[0], verstat, Some(code), reason);
    }
}

#[test]
fn unsigned_and_multiple_identity_headers() {
    let Some(p) = pki() else { return };
    let r = Run::new();
    let out = r.verify(&seeded(p, &p.valid), &[invite("unsigned", &[])]);
    assert_outcome(&out[0], "No-TN-Validation", None, "");
    // A broken header first, the valid one second: every header is checked, the valid one wins.
    let ids = vec!["garbage.token.x".to_string(), signed(&p.valid, X5U, now())];
    let out = r.verify(&seeded(p, &p.valid), &[invite("two", &ids)]);
    assert_outcome(&out[0], "TN-Validation-Passed", None, "");
    // A diversion PASSporT is verified and reported, not decisive.
    let div = sign_with(
        &p.valid.key_pkcs8_der,
        X5U,
        "div",
        &format!(
            r#"{{"dest":{{"tn":["13035550177"]}},"div":{{"tn":"13035550100"}},"iat":{},"orig":{{"tn":"12025550143"}}}}"#,
            now()
        ),
    );
    let out = r.verify(
        &seeded(p, &p.valid),
        &[invite("div", &[div, signed(&p.valid, X5U, now())])],
    );
    assert_outcome(&out[0], "TN-Validation-Passed", None, "");
    assert_eq!(
        out[0]["div"][0]["verstat"], "TN-Validation-Passed",
        "{}",
        out[0]
    );
    assert_eq!(out[0]["div"][0]["div"], "13035550100");
}

#[test]
fn same_token_on_another_call_is_replayed() {
    let Some(p) = pki() else { return };
    let r = Run::new();
    let token = signed(&p.valid, X5U, now());
    let out = r.verify(
        &seeded(p, &p.valid),
        &[
            invite("first", std::slice::from_ref(&token)),
            invite("second", &[token]),
        ],
    );
    assert_eq!(out[0]["replayed"], false);
    assert_eq!(out[1]["replayed"], true);
    assert_outcome(&out[1], "TN-Validation-Passed", None, "");
}

/// A one-shot-per-connection HTTP server on 127.0.0.1 answering every request the same way.
fn serve(
    status: &'static str,
    body: Vec<u8>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    serve_on(TcpListener::bind("127.0.0.1:0").unwrap(), status, body)
}

fn serve_on(
    listener: TcpListener,
    status: &'static str,
    body: Vec<u8>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut s) = stream else { continue };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    (format!("http://127.0.0.1:{port}/sp.pem"), hits)
}

fn http_config(r: &Run, allow_private: bool) -> Vec<String> {
    let cfg = r.file(
        "fetch.toml",
        format!(
            "[shaken.x5u]\nallow_http = true\nallowed_hosts = [{}]\ntimeout_ms = 2000\n",
            if allow_private { "\"127.0.0.1\"" } else { "" }
        )
        .as_bytes(),
    );
    vec!["--config".into(), cfg.display().to_string()]
}

#[test]
fn x5u_fetched_from_a_real_http_server() {
    let Some(p) = pki() else { return };
    let r = Run::new();
    let (url, hits) = serve("200 OK", p.valid.bundle_pem.clone());
    let mut args = http_config(&r, true);
    args.extend(anchor_args(p));
    let calls: Vec<Vec<u8>> = (0..3)
        .map(|i| invite(&format!("fetched-{i}"), &[signed(&p.valid, &url, now())]))
        .collect();
    let out = r.verify(&args, &calls);
    for v in &out {
        assert_outcome(v, "TN-Validation-Passed", None, "");
        assert_eq!(v["spc"].as_str(), p.valid.spc.as_deref());
    }
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "three calls, one fetch (cached)"
    );
}

#[test]
fn x5u_fetch_failures_give_436() {
    let Some(p) = pki() else { return };
    let r = Run::new();
    let mut args = http_config(&r, true);
    args.extend(anchor_args(p));
    let (missing, _) = serve("404 Not Found", b"no".to_vec());
    let out = r.verify(
        &args,
        &[invite("404", &[signed(&p.valid, &missing, now())])],
    );
    assert_outcome(&out[0], "No-TN-Validation", Some(436), "404");
    let (not_pem, _) = serve("200 OK", b"hello, not a certificate".to_vec());
    let out = r.verify(
        &args,
        &[invite("notpem", &[signed(&p.valid, &not_pem, now())])],
    );
    assert_outcome(&out[0], "No-TN-Validation", Some(436), "PEM");
    // Without the allowance, a loopback x5u is refused before any connection (SSRF defence).
    let (url, hits) = serve("200 OK", p.valid.bundle_pem.clone());
    let mut args = http_config(&r, false);
    args.extend(anchor_args(p));
    let out = r.verify(
        &args,
        &[invite("private", &[signed(&p.valid, &url, now())])],
    );
    assert_outcome(&out[0], "No-TN-Validation", Some(436), "127.0.0.1");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[test]
fn crit_alg_and_policy_refusals_are_reported_for_what_they_are() {
    let Some(p) = pki() else { return };
    let r = Run::new();
    let (url, hits) = serve("200 OK", p.valid.bundle_pem.clone());
    let mut args = http_config(&r, true);
    args.extend(anchor_args(p));
    let claims = shaken_claims(now(), "12025550143", "13035550177");
    // RFC 7515 4.1.11: a crit parameter the verifier does not understand rejects the JWS,
    // before its x5u is fetched.
    let crit = sign_header(
        &p.valid.key_pkcs8_der,
        &format!(
            r#"{{"alg":"ES256","typ":"passport","ppt":"shaken","x5u":"{url}","crit":["exp"],"exp":1}}"#
        ),
        &url,
        "shaken",
        &claims,
    );
    let out = r.verify(&args, &[invite("crit", &[crit])]);
    assert_outcome(&out[0], "TN-Validation-Failed", Some(438), "crit");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    // An RS256 token (its signature is 256 bytes) is an unsupported alg, not bad base64url.
    let hdr = format!(r#"{{"alg":"RS256","typ":"passport","ppt":"shaken","x5u":"{url}"}}"#);
    let rs = format!(
        "{}.{}.{};info=<{url}>;ppt=shaken",
        encode(hdr.as_bytes()),
        encode(claims.as_bytes()),
        encode(&[7u8; 256])
    );
    let out = r.verify(&args, &[invite("rs256", &[rs])]);
    assert_outcome(
        &out[0],
        "TN-Validation-Failed",
        Some(438),
        "unsupported alg",
    );
    // A URL the fetch policy refuses says why, not that the certificate was late.
    let refused = format!("{url}?x=1");
    let out = r.verify(
        &args,
        &[invite("policy", &[signed(&p.valid, &refused, now())])],
    );
    assert_outcome(&out[0], "No-TN-Validation", Some(436), "query");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

fn libstirshaken() -> Option<PathBuf> {
    let d = common::thirdparty()?.join("shaken").join("libstirshaken");
    d.is_dir().then_some(d)
}

fn libstirshaken_invite(identity: &str, orig: &str, dest: &str) -> Vec<u8> {
    format!(
        "INVITE sip:{dest}@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
         From: <sip:{orig}@example.com>;tag=1\r\nTo: <sip:{dest}@example.com>\r\nCall-ID: lss-{}\r\n\
         CSeq: 1 INVITE\r\nIdentity: {identity}\r\nContent-Length: 0\r\n\r\n",
        identity.len()
    )
    .into_bytes()
}

#[test]
fn libstirshaken_tokens_verify_with_its_certificate_and_not_with_wrongsp() {
    let Some(d) = libstirshaken() else {
        eprintln!("SKIPPED: ../shared/thirdparty/shaken/libstirshaken is absent");
        return;
    };
    let tokens = std::fs::read_to_string(d.join("readme-identity-tokens.txt")).unwrap();
    let lines: Vec<&str> = tokens.lines().filter(|l| l.starts_with("eyJ")).collect();
    assert!(lines.len() >= 3, "the vector file lists three tokens");
    let x5u = "https://shaken.signalwire.cloud/sp.pem";
    let args = |cert: &Path, now: i64| {
        vec![
            "--trust-anchors".to_string(),
            d.join("ca.pem").display().to_string(),
            "--cert".into(),
            format!("{x5u}={}", cert.display()),
            "--now".into(),
            now.to_string(),
        ]
    };
    let r = Run::new();
    let msgs: Vec<Vec<u8>> = lines[..2]
        .iter()
        .map(|t| libstirshaken_invite(t, "01256500600", "01256700800"))
        .collect();
    let out = r.verify(&args(&d.join("sp.pem"), 1_616_442_530), &msgs);
    for v in &out {
        assert_outcome(v, "TN-Validation-Passed", None, "");
        assert_eq!(v["attest"], "B");
    }
    let out = r.verify(&args(&d.join("wrongsp.pem"), 1_616_442_530), &msgs);
    for v in &out {
        assert_outcome(v, "TN-Validation-Failed", Some(437), "untrusted issuer");
    }
    // At today's date the same tokens are stale.
    let out = r.verify(&args(&d.join("sp.pem"), now()), &msgs[..1]);
    assert_outcome(&out[0], "TN-Validation-Failed", Some(403), "Stale Date");
    // The third token names "Bob" and "Alice": not telephone numbers, so orig.tn cannot match.
    let out = r.verify(
        &args(&d.join("sp.pem"), 1_615_936_250),
        &[libstirshaken_invite(lines[2], "01256500600", "01256700800")],
    );
    assert_outcome(&out[0], "TN-Validation-Failed", Some(438), "orig.tn");
}

#[test]
fn libstirshaken_passport_with_string_claims_is_438() {
    let Some(d) = libstirshaken() else {
        eprintln!("SKIPPED: ../shared/thirdparty/shaken/libstirshaken is absent");
        return;
    };
    let text = std::fs::read_to_string(d.join("passport.txt")).unwrap();
    let token = text
        .split_whitespace()
        .find(|w| w.starts_with("eyJ") && w.matches('.').count() == 2)
        .expect("passport.txt holds an encoded token");
    let r = Run::new();
    let out = r.verify(
        &["--now".into(), "1616442530".into()],
        &[libstirshaken_invite(token, "01256500600", "01256700800")],
    );
    assert_outcome(
        &out[0],
        "TN-Validation-Failed",
        Some(438),
        "orig is not an object",
    );
}

#[test]
fn hostile_identity_headers_are_typed_failures() {
    let Some(p) = pki() else { return };
    let r = Run::new();
    let hundred: Vec<String> = (0..100).map(|i| format!("x{i}.y.z")).collect();
    let huge = vec!["a".repeat(200_000)];
    let mut nonutf8 = invite("nonutf8", &["PLACEHOLDER".to_string()]);
    let at = nonutf8
        .windows(11)
        .position(|w| w == b"PLACEHOLDER")
        .unwrap();
    nonutf8.splice(at..at + 11, [0xff, 0xfe, b'.', 0xc0, b'.', 0x80]);
    let inputs: Vec<PathBuf> = [invite("hundred", &hundred), invite("huge", &huge), nonutf8]
        .iter()
        .enumerate()
        .map(|(i, m)| r.file(&format!("hostile-{i}.sip"), m))
        .collect();
    let (code, out, stderr) = r.verify_status(&seeded(p, &p.valid), &inputs);
    // The 200 KB header is over the SIP line limit: not a message we can read, so its input
    // gets a "skipped" line and the status says an input was not judged.
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(out.len(), 3, "{out:?}");
    assert_outcome(&out[0], "TN-Validation-Failed", Some(438), "not base64url");
    assert_eq!(out[0]["call_id"], "hundred");
    assert_eq!(out[1]["skipped"], "not_sip", "{}", out[1]);
    assert_eq!(out[1]["verstat"], Value::Null);
    assert!(out[1]["reason"]
        .as_str()
        .unwrap()
        .contains("not a SIP message"));
    assert_outcome(
        &out[2],
        "TN-Validation-Failed",
        Some(438),
        "outside base64url",
    );
    assert!(out[2].get("skipped").is_none(), "{}", out[2]);
}

#[test]
fn pcap_input_verifies_every_invite() {
    let r = Run::new();
    let cfg = r.file("nofetch.toml", b"[shaken.x5u]\nfetch = false\n");
    let args = vec![
        "--config".into(),
        cfg.display().to_string(),
        "--now".into(),
        "1767225610".into(),
    ];
    let out = r.verify_paths(&args, &[common::pcap("udp-fragmented.pcap")]);
    assert_eq!(out.len(), 8, "every reassembled INVITE");
    for v in &out {
        // Fresh at that time, numbers match; the certificate is not available offline.
        assert_outcome(v, "No-TN-Validation", Some(436), "fetching is off");
        assert_eq!(v["attest"], "A");
    }
}

/// A PKI whose leaves name a CRL distribution point on a live 127.0.0.1 server.
fn pki_with_crl_server(
    serve_crl: bool,
) -> Option<(TestPki, std::sync::Arc<std::sync::atomic::AtomicUsize>)> {
    if !common_pki::openssl_available() {
        eprintln!("SKIPPED: the openssl CLI is not available");
        return None;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let p = common_pki::build(&common_pki::PkiOptions {
        crl_url: format!("http://127.0.0.1:{port}/ca.crl"),
        ..common_pki::PkiOptions::default()
    });
    let hits = if serve_crl {
        serve_on(listener, "200 OK", p.crl_der.clone()).1
    } else {
        drop(listener); // nothing listens: the CRL is unreachable
        Default::default()
    };
    Some((p, hits))
}

fn crl_args(r: &Run, p: &TestPki, leaf: &Leaf, mode: &str) -> Vec<String> {
    let cfg = r.file(
        "crl.toml",
        format!("[shaken]\ncrl = \"{mode}\"\n[shaken.x5u]\nallow_http = true\nallowed_hosts = [\"127.0.0.1\"]\ntimeout_ms = 2000\n").as_bytes(),
    );
    let mut a = vec!["--config".to_string(), cfg.display().to_string()];
    a.extend(seeded(p, leaf));
    a
}

#[test]
fn revoked_certificate_gives_437_from_a_served_crl() {
    let Some((p, hits)) = pki_with_crl_server(true) else {
        return;
    };
    let r = Run::new();
    let out = r.verify(
        &crl_args(&r, &p, &p.revoked, "soft"),
        &[invite("revoked", &[signed(&p.revoked, X5U, now())])],
    );
    assert_outcome(&out[0], "TN-Validation-Failed", Some(437), "revoked");
    let out = r.verify(
        &crl_args(&r, &p, &p.valid, "hard"),
        &[invite("not-revoked", &[signed(&p.valid, X5U, now())])],
    );
    assert_outcome(&out[0], "TN-Validation-Passed", None, "");
    assert!(
        hits.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "the CRL was fetched over HTTP"
    );
}

#[test]
fn unreachable_crl_passes_soft_and_fails_hard() {
    let Some((p, _)) = pki_with_crl_server(false) else {
        return;
    };
    let r = Run::new();
    let call = [invite("no-crl", &[signed(&p.valid, X5U, now())])];
    let out = r.verify(&crl_args(&r, &p, &p.valid, "soft"), &call);
    assert_outcome(&out[0], "TN-Validation-Passed", None, "");
    let out = r.verify(&crl_args(&r, &p, &p.valid, "hard"), &call);
    assert_outcome(&out[0], "TN-Validation-Failed", Some(437), "unavailable");
    let out = r.verify(
        &crl_args(&r, &p, &p.revoked, "off"),
        &[invite("off", &[signed(&p.revoked, X5U, now())])],
    );
    assert_outcome(&out[0], "TN-Validation-Passed", None, "");
}
