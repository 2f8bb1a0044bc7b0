//! STIR/SHAKEN inside the pipeline: a capture of signed INVITEs (PASSporTs signed at test time
//! with keys from the openssl-made test PKI) replayed through `shaken-sensor replay`. Checks
//! the verdict on each CallRecord, including calls whose certificate is fetched from a real
//! HTTP server on 127.0.0.1 while the call has already ended (its record must wait for it).

mod common;
mod common_pki;

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::Value;
use shaken_sensor::shaken::b64::encode;
use std::io::{Read, Write};
use std::net::TcpListener;

const T0: i64 = 1_795_000_000;

fn sign(key_pkcs8: &[u8], x5u: &str, iat: i64, orig: &str, dest: &str) -> String {
    let rng = SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, key_pkcs8, &rng).unwrap();
    let hdr = format!(r#"{{"alg":"ES256","typ":"passport","ppt":"shaken","x5u":"{x5u}"}}"#);
    let claims = format!(
        r#"{{"attest":"B","dest":{{"tn":["{dest}"]}},"iat":{iat},"orig":{{"tn":"{orig}"}},"origid":"de305d54-75b4-431b-adb2-eb6b9e546014"}}"#
    );
    let input = format!("{}.{}", encode(hdr.as_bytes()), encode(claims.as_bytes()));
    let sig = key.sign(&rng, input.as_bytes()).unwrap();
    format!(
        "{input}.{};info=<{x5u}>;alg=ES256;ppt=shaken",
        encode(sig.as_ref())
    )
}

fn invite(call_id: &str, orig: &str, dest: &str, identity: Option<&str>) -> Vec<u8> {
    let id = identity
        .map(|i| format!("Identity: {i}\r\n"))
        .unwrap_or_default();
    format!(
        "INVITE sip:+{dest}@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.10;branch=z9hG4bK{call_id}\r\n\
         From: <sip:+{orig}@198.51.100.10>;tag=f{call_id}\r\nTo: <sip:+{dest}@192.0.2.1>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n{id}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn busy(call_id: &str, orig: &str, dest: &str) -> Vec<u8> {
    format!(
        "SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 198.51.100.10;branch=z9hG4bK{call_id}\r\n\
         From: <sip:+{orig}@198.51.100.10>;tag=f{call_id}\r\nTo: <sip:+{dest}@192.0.2.1>;tag=t\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Classic pcap, Ethernet/IPv4/UDP 5060, one frame per message.
fn write_pcap(path: &std::path::Path, messages: &[(i64, bool, Vec<u8>)]) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(&[
        0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0,
    ])
    .unwrap();
    for (i, (ts, from_caller, payload)) in messages.iter().enumerate() {
        let (src, dst) = if *from_caller {
            ([198, 51, 100, 10], [192, 0, 2, 1])
        } else {
            ([192, 0, 2, 1], [198, 51, 100, 10])
        };
        let udp_len = 8 + payload.len();
        let mut ip = vec![0x45, 0, 0, 0, (i >> 8) as u8, i as u8, 0, 0, 64, 17, 0, 0];
        ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        let mut frame = vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 8, 0];
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&5060u16.to_be_bytes());
        frame.extend_from_slice(&5060u16.to_be_bytes());
        frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(payload);
        let len = frame.len() as u32;
        f.write_all(&(*ts as u32).to_le_bytes()).unwrap();
        f.write_all(&0u32.to_le_bytes()).unwrap();
        f.write_all(&len.to_le_bytes()).unwrap();
        f.write_all(&len.to_le_bytes()).unwrap();
        f.write_all(&frame).unwrap();
    }
}

/// Serves `body` for every connection on 127.0.0.1, slowly (so calls end before it arrives).
fn slow_server(body: Vec<u8>) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/sp.pem",
        listener.local_addr().unwrap().port()
    );
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(10) {
            let Ok(mut s) = stream else { continue };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            std::thread::sleep(std::time::Duration::from_millis(300));
            let _ = s.write_all(
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
            );
            let _ = s.write_all(&body);
        }
    });
    (url, hits)
}

#[test]
fn replayed_signed_calls_carry_their_verdicts() {
    let Some(p) = common_pki::shared() else {
        return;
    };
    let (fetched_url, hits) = slow_server(p.valid.bundle_pem.clone());
    let seeded = "https://seeded.test.invalid/sp.pem";
    let expired = "https://expired.test.invalid/sp.pem";
    // A port nothing listens on: the fetch fails at once, and no test traffic leaves 127.0.0.1.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let unknown = format!(
        "http://127.0.0.1:{}/sp.pem",
        closed.local_addr().unwrap().port()
    );
    drop(closed);
    let calls: Vec<(&str, Option<String>, &str)> = vec![
        (
            "c-valid",
            Some(sign(
                &p.valid.key_pkcs8_der,
                seeded,
                T0,
                "12025550101",
                "13035550101",
            )),
            "13035550101",
        ),
        (
            "c-stale",
            Some(sign(
                &p.valid.key_pkcs8_der,
                seeded,
                T0 - 600,
                "12025550102",
                "13035550102",
            )),
            "13035550102",
        ),
        (
            "c-wrong-dest",
            Some(sign(
                &p.valid.key_pkcs8_der,
                seeded,
                T0,
                "12025550103",
                "13035559999",
            )),
            "13035550103",
        ),
        (
            "c-expired",
            Some(sign(
                &p.expired.key_pkcs8_der,
                expired,
                T0,
                "12025550104",
                "13035550104",
            )),
            "13035550104",
        ),
        (
            "c-unknown-x5u",
            Some(sign(
                &p.valid.key_pkcs8_der,
                &unknown,
                T0,
                "12025550105",
                "13035550105",
            )),
            "13035550105",
        ),
        (
            "c-fetched-1",
            Some(sign(
                &p.valid.key_pkcs8_der,
                &fetched_url,
                T0,
                "12025550106",
                "13035550106",
            )),
            "13035550106",
        ),
        (
            "c-fetched-2",
            Some(sign(
                &p.valid.key_pkcs8_der,
                &fetched_url,
                T0,
                "12025550107",
                "13035550107",
            )),
            "13035550107",
        ),
        ("c-unsigned", None, "13035550108"),
    ];
    let mut msgs = Vec::new();
    for (i, (id, identity, dest)) in calls.iter().enumerate() {
        let orig = format!("120255501{:02}", i + 1);
        msgs.push((
            T0 + i as i64,
            true,
            invite(id, &orig, dest, identity.as_deref()),
        ));
    }
    // Every call is rejected 486 right away: their records are due before any fetch can finish.
    for (i, (id, _, dest)) in calls.iter().enumerate() {
        let orig = format!("120255501{:02}", i + 1);
        msgs.push((T0 + 10, false, busy(id, &orig, dest)));
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("signed.pcap");
    write_pcap(&pcap, &msgs);
    let config = format!(
        "[sensor]\nid = \"verif\"\nworkers = 2\n[shaken]\ntrust_anchors = [\"{root}\"]\ncrl = \"off\"\n\
         certs = [{{ url = \"{seeded}\", file = \"{valid}\" }}, {{ url = \"{expired}\", file = \"{exp}\" }}]\n\
         [shaken.x5u]\nallow_http = true\nallowed_hosts = [\"127.0.0.1\"]\ntimeout_ms = 3000\n",
        root = p.root_path.display(),
        valid = p.valid.bundle_path.display(),
        exp = p.expired.bundle_path.display(),
    );
    let r = common::replay(&[&pcap], &config);
    assert_eq!(r.records.len(), calls.len(), "{:?}", r.records);
    let by_id = |id: &str| -> &Value {
        r.records
            .iter()
            .find(|c| c["call_id"] == id)
            .unwrap_or_else(|| panic!("no record for {id}"))
    };
    let shaken = |id: &str| by_id(id)["shaken"].clone();
    for id in ["c-valid", "c-fetched-1", "c-fetched-2"] {
        let s = shaken(id);
        assert_eq!(s["verstat"], "TN-Validation-Passed", "{id}: {s}");
        assert_eq!(s["attest"], "B");
        assert_eq!(s["spc"].as_str(), p.valid.spc.as_deref());
        assert_eq!(
            by_id(id)["dialog"]["final_code"],
            486,
            "the dialog outcome is kept with the verdict"
        );
    }
    let expect = |id: &str, code: u64, reason: &str| {
        let s = shaken(id);
        assert_eq!(s["code"].as_u64(), Some(code), "{id}: {s}");
        assert!(
            s["reason"].as_str().unwrap_or_default().contains(reason),
            "{id}: {s}"
        );
    };
    expect("c-stale", 403, "Stale Date");
    expect("c-wrong-dest", 438, "dest.tn");
    expect("c-expired", 437, "expired");
    expect("c-unknown-x5u", 436, "connect");
    assert_eq!(shaken("c-unsigned")["verstat"], "No-TN-Validation");
    assert_eq!(shaken("c-unsigned")["code"], Value::Null);
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "two calls, one fetch"
    );
}
