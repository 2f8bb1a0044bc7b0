//! `[export.hep]` through the real binary: a replay whose one-ring campaign opens a detection
//! sends the SIP messages of the detection's sample calls as HEPv3 to a receiver in this test,
//! with the detection id in the correlation chunk; `mode = "all"` sends every message of a sipp
//! capture. The receiver decodes with the sensor's parser and, when Kamailio is installed,
//! forwards every packet to Kamailio's `sipcapture` module as an independent HEP decoder
//! (tshark 4.0 on Debian 12 has no HEP dissector).

mod common;

use serde_json::Value;
use shaken_sensor::capture::hep::{self, Payload};
use std::collections::{BTreeMap, BTreeSet};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

const T0: i64 = 1_795_000_020;
const BRAVO: [u8; 4] = [203, 0, 113, 7];
const US: [u8; 4] = [192, 0, 2, 1];
const KAMAILIO_PORT: u16 = 25180;

fn us(secs: f64) -> i64 {
    T0 * 1_000_000 + (secs * 1e6).round() as i64
}

fn msg(start: &str, id: &str, cseq: &str, orig: &str, dest: &str, to_tag: bool) -> Vec<u8> {
    let tag = if to_tag { ";tag=callee" } else { "" };
    format!(
        "{start}\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK{id}{}\r\n\
         From: <sip:+{orig}@10.0.0.1>;tag=caller\r\nTo: <sip:+{dest}@192.0.2.1>{tag}\r\n\
         Call-ID: {id}\r\nCSeq: {cseq}\r\nUser-Agent: dialer-x\r\nContent-Length: 0\r\n\r\n",
        &cseq[2..]
    )
    .into_bytes()
}

/// 14 one-ring calls from one peer (each CANCELled 1.5 s after its INVITE), every message
/// with the call's Call-ID.
fn campaign() -> Vec<common::UdpFrame> {
    let mut m = Vec::new();
    for i in 0..14 {
        let (id, at) = (format!("ring-{i}"), 2.0 * i as f64);
        let orig = format!("1{}{}{:04}", 312 + 2 * i, 468 + 3 * i, 1000 + 97 * i);
        let dest = format!("1{}{}{:04}", 702 - 5 * i, 259 + 7 * i, 9000 - 311 * i);
        let ruri = format!("sip:+{dest}@192.0.2.1 SIP/2.0");
        let (o, d) = (orig.as_str(), dest.as_str());
        m.push((
            us(at),
            BRAVO,
            US,
            msg(&format!("INVITE {ruri}"), &id, "1 INVITE", o, d, false),
        ));
        m.push((
            us(at + 1.5),
            BRAVO,
            US,
            msg(&format!("CANCEL {ruri}"), &id, "1 CANCEL", o, d, false),
        ));
        m.push((
            us(at + 1.55),
            US,
            BRAVO,
            msg("SIP/2.0 200 OK", &id, "1 CANCEL", o, d, true),
        ));
        m.push((
            us(at + 1.6),
            US,
            BRAVO,
            msg(
                "SIP/2.0 487 Request Terminated",
                &id,
                "1 INVITE",
                o,
                d,
                true,
            ),
        ));
        m.push((
            us(at + 1.65),
            BRAVO,
            US,
            msg(&format!("ACK {ruri}"), &id, "1 ACK", o, d, true),
        ));
    }
    m.sort_by_key(|x| x.0);
    m
}

/// Receives HEP packets until `quiet` passes without one; forwards each to `forward`.
fn receiver(forward: Option<u16>) -> (u16, std::thread::JoinHandle<Vec<Vec<u8>>>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let h = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = sock.recv(&mut buf) {
            if let Some(p) = forward {
                sock.send_to(&buf[..n], ("127.0.0.1", p)).unwrap();
            }
            got.push(buf[..n].to_vec());
        }
        got
    });
    (port, h)
}

/// Kamailio with `sipcapture` logging each HEP packet it decodes, or None when not installed.
fn kamailio_sipcapture(dir: &std::path::Path) -> Option<common::KillOnDrop> {
    if !common::have("kamailio") {
        eprintln!("kamailio not installed: the independent HEP decode check is skipped");
        return None;
    }
    std::fs::create_dir_all(dir.join("db")).unwrap();
    let cfg = format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=1
disable_tcp=yes
listen=udp:127.0.0.1:{KAMAILIO_PORT}
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "db_text.so"
loadmodule "sipcapture.so"
modparam("sipcapture", "db_url", "text://{db}")
modparam("sipcapture", "capture_on", 0)
modparam("sipcapture", "hep_capture_on", 1)
modparam("sipcapture", "nonsip_hook", 1)
event_route[sipcapture:request] {{
    xlog("L_NOTICE", "HEPRX v=$hep(version) agent=$hep(0x00c) corr=$hep(0x011) src=$hep(0x003):$hep(0x007) dst=$hep(0x004):$hep(0x008) $(hep(0x00f){{line.sw,Call-ID}})\n");
    return 0;
}}
request_route {{
    drop;
}}
"#,
        db = dir.join("db").display()
    );
    std::fs::write(dir.join("sipcapture.cfg"), cfg).unwrap();
    let log = std::fs::File::create(dir.join("kamailio.log")).unwrap();
    let child = Command::new("kamailio")
        .args(["-DD", "-E", "-f"])
        .arg(dir.join("sipcapture.cfg"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    Some(common::KillOnDrop(child))
}

const CONFIG: &str = r#"
[sensor]
id = "hep-export"
workers = 1
[[peers]]
name = "wholesale-bravo"
ocn = "2222"
cidrs = ["203.0.113.0/24"]
"#;

#[test]
fn detections_send_their_sample_calls_over_hep_with_the_detection_id() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let frames = campaign();
    let pcap = d.join("campaign.pcap");
    common::write_udp_pcap(&pcap, &frames);
    let mut kamailio = kamailio_sipcapture(d);
    let (port, rx) = receiver(kamailio.as_ref().map(|_| KAMAILIO_PORT));
    let det = d.join("detections.jsonl");
    let config = format!(
        "{CONFIG}[export.hep]\nenabled = true\naddress = \"127.0.0.1:{port}\"\ncapture_id = 4242\n\
         auth_key = \"homer-key\"\n"
    );
    let r = common::replay_with(&[&pcap], &config, &["--detections", det.to_str().unwrap()]);
    let packets = rx.join().unwrap();
    let events: Vec<Value> = std::fs::read_to_string(&det)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let opened: Vec<&Value> = events.iter().filter(|e| e["state"] == "opened").collect();
    assert_eq!(opened.len(), 1, "{events:#?}");
    let det_id = opened[0]["detection_id"].as_str().unwrap();
    let samples: BTreeSet<&str> = opened[0]["sample_call_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(samples.len() >= 10, "{samples:?}");

    // Each packet: HEPv3 from agent 4242 with the key, correlated to the detection, carrying
    // byte for byte a message of the capture with its addresses and time.
    let mut by_call: BTreeMap<String, usize> = BTreeMap::new();
    for b in &packets {
        let p = hep::parse(b).expect("the sensor sends valid HEP");
        assert_eq!(p.version, 3);
        assert_eq!(p.capture_id, Some(4242));
        assert_eq!(p.auth_key, Some(&b"homer-key"[..]));
        assert_eq!(p.correlation_id, Some(det_id.as_bytes()));
        assert_eq!(p.ip_proto, 17);
        let Payload::Plain(sip) = p.payload else {
            panic!("plain payload")
        };
        let original = frames
            .iter()
            .find(|(_, _, _, m)| m == sip)
            .expect("a message of the capture");
        assert_eq!(
            p.src.ip().to_string(),
            std::net::Ipv4Addr::from(original.1).to_string()
        );
        assert_eq!(
            p.dst.ip().to_string(),
            std::net::Ipv4Addr::from(original.2).to_string()
        );
        assert_eq!(p.ts, Some(shaken_sensor::clock::Timestamp(original.0)));
        let text = String::from_utf8_lossy(sip);
        let call = text
            .lines()
            .find_map(|l| l.strip_prefix("Call-ID: "))
            .unwrap()
            .to_string();
        *by_call.entry(call).or_default() += 1;
    }
    let sent_calls: BTreeSet<&str> = by_call.keys().map(String::as_str).collect();
    assert_eq!(sent_calls, samples, "the sample calls, and only them");
    for (call, n) in &by_call {
        // INVITE, CANCEL, 200, 487 at least (the ACK follows the call's end).
        assert!((4..=5).contains(n), "{call}: {n} messages");
    }
    assert_eq!(
        r.metric(r#"shaken_sensor_hep_export_messages_total{outcome="sent"}"#),
        packets.len() as f64
    );
    assert_eq!(
        r.metric(r#"shaken_sensor_hep_export_messages_total{outcome="dropped"}"#),
        0.0
    );

    // Kamailio's sipcapture decoded the same packets the same way.
    if let Some(k) = kamailio.as_mut() {
        std::thread::sleep(Duration::from_millis(500));
        let _ = Command::new("kill").arg(k.0.id().to_string()).status();
        let _ = k.0.wait();
        let log =
            String::from_utf8_lossy(&std::fs::read(d.join("kamailio.log")).unwrap()).into_owned();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains("HEPRX")).collect();
        assert_eq!(lines.len(), packets.len(), "{log}");
        for l in &lines {
            assert!(l.contains("v=3 agent=4242"), "{l}");
            assert!(l.contains(&format!("corr={det_id}")), "{l}");
            assert!(
                l.contains("src=203.0.113.7:5060") || l.contains("src=192.0.2.1:5060"),
                "{l}"
            );
            let call = l.split("Call-ID: ").nth(1).unwrap().trim();
            assert!(samples.contains(call), "{l}");
        }
    }
}

#[test]
fn mode_all_sends_every_sip_message_of_a_sipp_capture() {
    let pcap = common::pcap("udp-answered.pcap");
    let (port, rx) = receiver(None);
    let config = format!(
        "[sensor]\nid = \"hep-all\"\nworkers = 2\n[export.hep]\nenabled = true\n\
         address = \"127.0.0.1:{port}\"\nmode = \"all\"\n"
    );
    let r = common::replay(&[&pcap], &config);
    let packets = rx.join().unwrap();
    let messages: u64 = r.summary["sip_by_kind"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(messages > 0);
    assert_eq!(packets.len() as u64, messages);
    let record_calls: BTreeSet<String> = r
        .records
        .iter()
        .map(|c| c["call_id"].as_str().unwrap().to_string())
        .collect();
    let mut hep_calls = BTreeSet::new();
    for b in &packets {
        let p = hep::parse(b).unwrap();
        assert_eq!(p.correlation_id, None);
        assert_eq!(p.auth_key, None);
        let Payload::Plain(sip) = p.payload else {
            panic!()
        };
        let text = String::from_utf8_lossy(sip);
        hep_calls.insert(
            text.lines()
                .find_map(|l| l.strip_prefix("Call-ID: "))
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(hep_calls, record_calls);
}
