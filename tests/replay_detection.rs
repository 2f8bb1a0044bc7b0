//! Campaign detection through the real binary: a capture written here (ten ordinary calls
//! from one peer, a one-ring campaign from another) replayed with `--detections`; the exact
//! DetectionEvents, their link to the CallRecords (fingerprint, Call-IDs) and the metrics.

mod common;

use serde_json::Value;

/// Start of the capture, on a 30-second boundary (the 1-minute window's half).
const T0: i64 = 1_795_000_020;
const ALPHA: [u8; 4] = [198, 51, 100, 10];
const BRAVO: [u8; 4] = [203, 0, 113, 7];
const US: [u8; 4] = [192, 0, 2, 1];

const CONFIG: &str = r#"
[sensor]
id = "det-test"
workers = 1
[[peers]]
name = "carrier-alpha"
ocn = "1111"
cidrs = ["198.51.100.0/24"]
[[peers]]
name = "wholesale-bravo"
ocn = "2222"
cidrs = ["203.0.113.0/24"]
"#;

fn us(secs: f64) -> i64 {
    T0 * 1_000_000 + (secs * 1e6).round() as i64
}

fn request(method: &str, id: &str, orig: &str, dest: &str, ua: &str, to_tag: bool) -> Vec<u8> {
    let to_tag = if to_tag { ";tag=callee" } else { "" };
    let sdp = "v=0\r\no=dialer 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let body = if method == "INVITE" { sdp } else { "" };
    format!(
        "{method} sip:+{dest}@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK{id}{method}\r\n\
         From: <sip:+{orig}@10.0.0.1>;tag=caller\r\nTo: <sip:+{dest}@192.0.2.1>{to_tag}\r\nCall-ID: {id}\r\n\
         CSeq: 1 {}\r\nUser-Agent: {ua}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        if method == "ACK" { "ACK" } else if method == "BYE" { "2 BYE" } else { method },
        body.len()
    )
    .replace("CSeq: 1 2 BYE", "CSeq: 2 BYE")
    .into_bytes()
}

fn response(code: &str, method: &str, id: &str, orig: &str, dest: &str) -> Vec<u8> {
    format!(
        "SIP/2.0 {code}\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK{id}{method}\r\n\
         From: <sip:+{orig}@10.0.0.1>;tag=caller\r\nTo: <sip:+{dest}@192.0.2.1>;tag=callee\r\nCall-ID: {id}\r\n\
         CSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

type Msg = common::UdpFrame;

fn capture() -> Vec<Msg> {
    let mut m: Vec<Msg> = Vec::new();
    // Ten ordinary calls from carrier-alpha, each answered after 5 s and lasting 20 s.
    for i in 0..10 {
        let (id, at) = (format!("bg-{i}"), 0.5 + 3.0 * i as f64);
        let orig = format!("1214{}{:04}", 620 + 17 * i, 2000 + 311 * i);
        let dest = format!(
            "1{}{}{:04}",
            404 + 101 * (i % 5),
            731 - 13 * i,
            5000 + 433 * i
        );
        let ua = "PBX/2.1";
        m.push((
            us(at),
            ALPHA,
            US,
            request("INVITE", &id, &orig, &dest, ua, false),
        ));
        m.push((
            us(at + 5.0),
            US,
            ALPHA,
            response("200 OK", "INVITE", &id, &orig, &dest),
        ));
        m.push((
            us(at + 5.1),
            ALPHA,
            US,
            request("ACK", &id, &orig, &dest, ua, true),
        ));
        m.push((
            us(at + 25.0),
            ALPHA,
            US,
            request("BYE", &id, &orig, &dest, ua, true),
        ));
    }
    // One-ring: 20 calls from wholesale-bravo, one every 2 s, each from a new caller ID to a
    // new number, CANCELled 1.5 s after the INVITE (487 at 1.6 s).
    for i in 0..20 {
        let (id, at) = (format!("ring-{i}"), 2.0 * i as f64);
        let orig = format!("1{}{}{:04}", 312 + 2 * i, 468 + 3 * i, 1000 + 97 * i);
        let dest = format!("1{}{}{:04}", 702 - 5 * i, 259 + 7 * i, 9000 - 311 * i);
        let ua = "dialer-x";
        m.push((
            us(at),
            BRAVO,
            US,
            request("INVITE", &id, &orig, &dest, ua, false),
        ));
        m.push((
            us(at + 1.5),
            BRAVO,
            US,
            request("CANCEL", &id, &orig, &dest, ua, false),
        ));
        m.push((
            us(at + 1.55),
            US,
            BRAVO,
            response("200 OK", "CANCEL", &id, &orig, &dest),
        ));
        m.push((
            us(at + 1.6),
            US,
            BRAVO,
            response("487 Request Terminated", "INVITE", &id, &orig, &dest),
        ));
        m.push((
            us(at + 1.65),
            BRAVO,
            US,
            request("ACK", &id, &orig, &dest, ua, false),
        ));
    }
    m.sort_by_key(|x| x.0);
    m
}

fn replay(config: &str) -> (common::Replay, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("campaign.pcap");
    common::write_udp_pcap(&pcap, &capture());
    let det = dir.path().join("detections.jsonl");
    let r = common::replay_with(&[&pcap], config, &["--detections", det.to_str().unwrap()]);
    let events = std::fs::read_to_string(&det)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (r, events)
}

fn rfc3339(secs: f64) -> String {
    let t = shaken_sensor::clock::Timestamp(us(secs));
    t.to_rfc3339()
}

#[test]
fn one_ring_campaign_is_detected_with_exact_events() {
    let (r, events) = replay(CONFIG);
    assert_eq!(r.records.len(), 30);
    let fp_of = |prefix: &str| {
        let fps: std::collections::BTreeSet<&str> = r
            .records
            .iter()
            .filter(|c| c["call_id"].as_str().unwrap().starts_with(prefix))
            .map(|c| c["fingerprint"].as_str().unwrap())
            .collect();
        assert_eq!(fps.len(), 1, "one fingerprint per origin: {fps:?}");
        fps.into_iter().next().unwrap().to_string()
    };
    let ring_fp = fp_of("ring-");
    assert_ne!(ring_fp, fp_of("bg-"));
    assert_eq!(ring_fp.len(), 16);

    assert_eq!(events.len(), 2, "{events:#?}");
    let (opened, closed) = (&events[0], &events[1]);
    // `<sensor>:det-<run>-NNNNNN`: the run id (start time and random bits, hex) keeps ids
    // unique across restarts; a second run of the same capture gets new ids.
    let id = opened["detection_id"].as_str().unwrap().to_string();
    let run = id
        .strip_prefix("det-test:det-")
        .and_then(|r| r.strip_suffix("-000001"))
        .unwrap_or_else(|| panic!("{id}"));
    assert!(
        run.len() >= 12 && run.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let (_, again) = replay(CONFIG);
    assert_eq!(again.len(), 2);
    assert_ne!(again[0]["detection_id"], opened["detection_id"]);
    // Full state from the third call (4 s); the tenth ended call in state is ring-11, whose
    // 487 arrives at 22 + 1.6 s: the moment of detection.
    let samples: Vec<String> = (2..12).map(|i| format!("ring-{i}")).collect();
    let expected = serde_json::json!({
        "schema": "shaken-sensor/detection/v1",
        "record_id": format!("{id}:opened:{}", us(23.6)),
        "detection_id": id,
        "state": "opened",
        "rule": "one_ring",
        "severity": "medium",
        "key": {"kind": "fingerprint", "value": ring_fp},
        "fingerprint": ring_fp,
        "window": "1m",
        "first_seen": rfc3339(4.0),
        "last_seen": rfc3339(23.6),
        "calls": 10, "distinct_dest": 10, "distinct_orig": 10,
        "attest_mix": {"A": 0, "B": 0, "C": 0, "none": 10},
        "verstat_mix": {"No-TN-Validation": 10},
        "peers": [{"peer": "wholesale-bravo", "ocn": "2222", "calls": 10}],
        "origids": [], "spcs": [],
        "sample_call_ids": samples,
        "evidence": {"one_ring_share": 1.0, "asr": 0.0}
    });
    assert_eq!(opened, &expected);
    // Closed when the replay ends (last packet: bg-9's BYE at 52.5 s), same id; the view
    // now holds calls 2..19.
    assert_eq!(closed["state"], "closed");
    assert_eq!(closed["detection_id"], id.as_str());
    assert_eq!(closed["last_seen"], rfc3339(52.5));
    assert_eq!(closed["record_id"], format!("{id}:closed:{}", us(52.5)));
    assert_eq!(closed["calls"], 18);
    assert_eq!(closed["sample_call_ids"].as_array().unwrap().len(), 18);
    assert_eq!(
        r.metric("shaken_sensor_detections_total{rule=\"one_ring\",state=\"opened\"}"),
        1.0
    );
    assert_eq!(
        r.metric("shaken_sensor_detections_total{rule=\"one_ring\",state=\"closed\"}"),
        1.0
    );
    assert_eq!(r.metric("shaken_sensor_detect_keys{kind=\"peer\"}"), 2.0);
}

#[test]
fn detection_off_writes_no_events() {
    let (r, events) = replay(&format!("{CONFIG}\n[detect]\nenabled = false\n"));
    assert_eq!(r.records.len(), 30);
    assert!(events.is_empty());
    assert!(!r.metrics.contains("shaken_sensor_detections_total{"));
}

/// The whole path a detection takes to the ITG: replay with push on, a real `shaken-collector`
/// on 127.0.0.1, and the collector's inspection API. The collector stores the same events the
/// JSON lines show (with their record_id), and all 30 CallRecords.
#[test]
fn detections_and_records_reach_the_collector() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let mut collector = Command::new(common::collector_bin())
        .args(["--bind", "127.0.0.1:0", "--token", "itg-token", "--db"])
        .arg(dir.path().join("collector.db"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(collector.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _collector = common::KillOnDrop(collector);
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let config = format!(
        "{CONFIG}\n[push]\nenabled = true\nurl = \"http://{addr}\"\nallow_http = true\n\
         token = \"itg-token\"\nspool_dir = \"{}\"\ndead_letter_dir = \"{}\"\ndrain_timeout_s = 30\n",
        dir.path().join("spool").display(),
        dir.path().join("dead-letter").display()
    );
    let (r, events) = replay(&config);
    assert_eq!(r.records.len(), 30);
    assert_eq!(events.len(), 2);

    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let get = |path: &str| -> Value {
        let (status, body) = common::http(addr, "GET", path, Some("itg-token"), None, "");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let stored = get("/v1/detections?limit=1000");
    let stored = stored["records"].as_array().unwrap();
    assert_eq!(stored.len(), 2, "{stored:#?}");
    for (s, e) in stored.iter().zip(&events) {
        assert_eq!(
            s, e,
            "the collector stores the event as the sensor wrote it"
        );
        let id = s["record_id"].as_str().unwrap();
        assert!(id.starts_with("det-test:det-"), "{id}");
        assert!(id.starts_with(s["detection_id"].as_str().unwrap()), "{id}");
    }
    assert_ne!(stored[0]["record_id"], stored[1]["record_id"]);
    let calls = get("/v1/records?limit=1000");
    assert_eq!(calls["records"].as_array().unwrap().len(), 30);
}
