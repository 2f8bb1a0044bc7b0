//! The wire types against real sensor output: tests/data holds CallRecords and
//! DetectionEvents written by `shaken-sensor replay` before this crate existed (the bundled
//! pcaps/ captures and a `scenario` run with detection). Each must read as its type and write
//! back to the same bytes; a record built with every field filled must survive a round trip.

use shaken_wire::{
    AttestMix, CallRecord, DetectionEvent, DetectionKey, DetectionState, DialogOutcome, DivResult,
    EndedBy, Endpoint, PeerCalls, RecordHead, RecordKind, SdpTraits, Severity, ShakenResult,
    Timestamp, Transport, Upstream, CALL_SCHEMA, DETECTION_SCHEMA,
};
use std::sync::Arc;

fn lines(name: &str) -> Vec<String> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let out: Vec<String> = text.lines().map(str::to_string).collect();
    assert!(out.len() > 20, "{path}: {} lines", out.len());
    out
}

#[test]
fn replayed_call_records_read_back_and_write_the_same_bytes() {
    let mut transports = std::collections::HashSet::new();
    for line in lines("calls.jsonl") {
        let r: CallRecord = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(serde_json::to_string(&r).unwrap(), line);
        let head: RecordHead = serde_json::from_str(&line).unwrap();
        assert_eq!(head.kind(), Some(RecordKind::Call));
        assert_eq!(head.record_id.as_deref(), Some(r.record_id.as_str()));
        assert_eq!(head.sensor_id.as_deref(), Some(&*r.sensor_id));
        transports.insert(r.transport);
    }
    // The samples cover both transports (pcaps/tcp-answered.pcap).
    assert_eq!(transports.len(), 2);
}

#[test]
fn replayed_detection_events_read_back_and_write_the_same_bytes() {
    let mut states = std::collections::HashSet::new();
    for line in lines("detections.jsonl") {
        let e: DetectionEvent =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(serde_json::to_string(&e).unwrap(), line);
        let head: RecordHead = serde_json::from_str(&line).unwrap();
        assert_eq!(head.kind(), Some(RecordKind::Detection));
        assert_eq!(head.state.as_deref(), Some(e.state.as_str()));
        assert_eq!(head.detection_id.as_deref(), Some(e.detection_id.as_str()));
        states.insert(e.state.as_str());
    }
    assert_eq!(states.len(), 3, "opened, updated and closed events");
}

fn t(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

fn full_call() -> CallRecord {
    CallRecord {
        schema: CALL_SCHEMA,
        record_id: "edge-1:8d2c1f0e-1a2b-8c3d-9e4f-0123456789ab".into(),
        sensor_id: Arc::from("edge-1"),
        observed_at: t("2026-11-29T14:03:07.123456Z"),
        call_id: "a84b4c76e66710@pc33.example.com".into(),
        transport: Transport::Tcp,
        src: Endpoint {
            ip: "2001:db8::10".parse().unwrap(),
            port: 5061,
        },
        dst: Endpoint {
            ip: "198.51.100.20".parse().unwrap(),
            port: 5060,
        },
        upstream: Upstream {
            peer: Arc::from("carrier-alpha"),
            ocn: Some(Arc::from("111A")),
        },
        orig_tn: Some("12025550123".into()),
        dest_tn: Some("13105550199".into()),
        from_user: Some("+12025550123".into()),
        pai_user: Some("2025550123".into()),
        ruri_user: Some("13105550199".into()),
        user_agent: Some("dialer \"x\" \u{fffd}".into()),
        shaken: ShakenResult {
            verstat: Some("TN-Validation-Failed".into()),
            attest: Some("B".into()),
            origid: Some("de305d54-75b4-431b-adb2-eb6b9e546014".into()),
            spc: Some("111A".into()),
            x5u: Some("https://cert.example/111A.pem".into()),
            iat: Some(1_795_960_987),
            code: Some(438),
            reason: Some("Invalid Identity Header".into()),
            replayed: true,
            div: vec![DivResult {
                verstat: "TN-Validation-Passed".into(),
                code: None,
                reason: None,
                orig: Some("13105550199".into()),
                dest: vec!["14155550100".into()],
                div: Some("13105550199".into()),
                x5u: Some("https://cert.example/222B.pem".into()),
            }],
            identity_headers: 2,
        },
        dialog: DialogOutcome {
            final_code: Some(200),
            answered: true,
            ring_ms: Some(4200),
            duration_ms: Some(61_000),
            ended_by: EndedBy::Evicted,
            cancelled: false,
            ended_at: t("2026-11-29T14:04:12.000001Z"),
        },
        sdp: Some(SdpTraits {
            origin_user: Some("-".into()),
            conn_addr: Some("198.51.100.30".into()),
            codecs: vec!["PCMU/8000".into(), "telephone-event/8000".into()],
        }),
        fingerprint: Some("a1a447bb295f4dc6".into()),
        capture_agent: Some(2001),
        trace: None,
    }
}

#[test]
fn a_call_record_with_every_field_filled_round_trips() {
    let r = full_call();
    let json = serde_json::to_string(&r).unwrap();
    let back: CallRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
    // Without a HEP agent the field is absent, and absent reads as None.
    let mut plain = r.clone();
    plain.capture_agent = None;
    let json = serde_json::to_string(&plain).unwrap();
    assert!(!json.contains("capture_agent"));
    assert_eq!(serde_json::from_str::<CallRecord>(&json).unwrap(), plain);
}

#[test]
fn a_detection_event_round_trips() {
    let e = DetectionEvent {
        schema: DETECTION_SCHEMA,
        record_id: "edge-1:det-1-000001:closed:1795960987000000".into(),
        detection_id: "edge-1:det-1-000001".into(),
        state: DetectionState::Closed,
        rule: "one_ring".into(),
        severity: Severity::Medium,
        key: DetectionKey {
            kind: "peer".into(),
            value: "carrier-bravo".into(),
        },
        fingerprint: None,
        window: "10m".into(),
        first_seen: t("2026-11-29T14:00:00Z"),
        last_seen: t("2026-11-29T14:03:07.5Z"),
        calls: 60,
        distinct_dest: 60,
        distinct_orig: 58,
        attest_mix: AttestMix {
            a: 1,
            b: 2,
            c: 3,
            none: 54,
        },
        verstat_mix: [("No-TN-Validation".into(), 54), ("none".into(), 6)].into(),
        peers: vec![PeerCalls {
            peer: "carrier-bravo".into(),
            ocn: None,
            calls: 60,
        }],
        origids: vec![],
        spcs: vec!["222B".into()],
        sample_call_ids: vec!["ring-1".into(), "ring-2".into()],
        evidence: [
            ("calls_per_min".into(), 216.576),
            ("short_share".into(), 0.1),
        ]
        .into(),
    };
    let json = serde_json::to_string(&e).unwrap();
    assert!(json.contains("\"attest_mix\":{\"A\":1,\"B\":2,\"C\":3,\"none\":54}"));
    assert_eq!(serde_json::from_str::<DetectionEvent>(&json).unwrap(), e);
}

#[test]
fn newer_fields_are_accepted_and_wrong_schemas_or_times_refused() {
    let json = serde_json::to_string(&full_call()).unwrap();
    let newer = json.replacen('{', "{\"added_later\":[1,2],", 1);
    assert_eq!(
        serde_json::from_str::<CallRecord>(&newer).unwrap(),
        full_call()
    );
    for (bad, why) in [
        (
            json.replace("shaken-sensor/call/v1", "shaken-sensor/detection/v1"),
            "schema",
        ),
        (
            json.replace("shaken-sensor/call/v1", "shaken-sensor/call/v2"),
            "unknown schema",
        ),
        (
            json.replace("2026-11-29T14:03:07.123456Z", "2026-02-30T14:03:07Z"),
            "RFC 3339",
        ),
        (json.replace("\"tcp\"", "\"sctp\""), "variant"),
    ] {
        let err = serde_json::from_str::<CallRecord>(&bad).unwrap_err();
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
}
