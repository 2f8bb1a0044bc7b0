//! Replays the sample captures in pcaps/ (made with sipp and tcpdump; counts from tshark in
//! pcaps/README.md) and checks messages, calls and each call's outcome.

mod common;

use common::{pcap, replay, Replay, DEFAULT_CONFIG};
use serde_json::Value;

fn run(name: &str) -> Replay {
    replay(&[&pcap(name)], DEFAULT_CONFIG)
}

fn assert_clean(r: &Replay, name: &str) {
    assert!(
        r.summary["decode_errors"].as_object().unwrap().is_empty(),
        "{name}: {}",
        r.summary
    );
    assert!(
        r.summary["sip_parse_errors"]
            .as_object()
            .unwrap()
            .is_empty(),
        "{name}: {}",
        r.summary
    );
    assert_eq!(r.count("records_dropped"), 0);
}

/// Every call answered and released by the caller, numbers canonical, as sipp placed them.
fn assert_answered_calls(r: &Replay, name: &str, calls: usize, transport: &str) {
    assert_eq!(r.records.len(), calls, "{name}: {:?}", r.records);
    for rec in &r.records {
        assert_eq!(rec["schema"], "shaken-sensor/call/v1");
        assert_eq!(rec["transport"], transport, "{rec}");
        assert_eq!(rec["dialog"]["final_code"], 200, "{rec}");
        assert_eq!(rec["dialog"]["answered"], true);
        assert_eq!(rec["dialog"]["ended_by"], "caller", "{rec}");
        // sipp scenario: 300 ms ringing, 800 ms of talk.
        let ring = rec["dialog"]["ring_ms"].as_u64().unwrap();
        let talk = rec["dialog"]["duration_ms"].as_u64().unwrap();
        assert!((250..2000).contains(&ring), "ring {ring} in {rec}");
        assert!((700..3000).contains(&talk), "talk {talk} in {rec}");
        let orig = rec["orig_tn"].as_str().unwrap();
        let dest = rec["dest_tn"].as_str().unwrap();
        assert!(orig.starts_with("120255501") && orig.len() == 11, "{rec}");
        assert!(dest.starts_with("130355501") && dest.len() == 11, "{rec}");
        assert_eq!(
            orig[9..],
            dest[9..],
            "caller and callee share the call index"
        );
        assert_eq!(rec["pai_user"].as_str().unwrap(), format!("+{orig}"));
        assert_eq!(rec["user_agent"], "SIPp-UAC/3.6.1 shaken-sensor-samples");
        assert_eq!(
            rec["upstream"]["peer"], "unknown",
            "no [[peers]] in the test config"
        );
        assert_eq!(rec["sdp"]["origin_user"], "sippuac");
        assert!(rec["record_id"]
            .as_str()
            .unwrap()
            .starts_with("test-sensor:"));
    }
}

fn kinds(r: &Replay, invite: u64, ack: u64, bye: u64, one: u64, two: u64) {
    assert_eq!(r.sip_kind("INVITE"), invite, "{}", r.summary);
    assert_eq!(r.sip_kind("ACK"), ack, "{}", r.summary);
    assert_eq!(r.sip_kind("BYE"), bye, "{}", r.summary);
    assert_eq!(r.sip_kind("1xx"), one, "{}", r.summary);
    assert_eq!(r.sip_kind("2xx"), two, "{}", r.summary);
}

#[test]
fn udp_answered_calls() {
    let r = run("udp-answered.pcap");
    assert_clean(&r, "udp-answered");
    assert_eq!(r.count("packets"), 70);
    assert_eq!(r.count("sip_messages"), 70);
    kinds(&r, 10, 10, 10, 20, 20);
    assert_answered_calls(&r, "udp-answered", 10, "udp");
    // The metrics agree with the summary.
    assert_eq!(
        r.metric(r#"shaken_sensor_packets_total{source="file"}"#),
        70.0
    );
    assert_eq!(r.metric("shaken_sensor_invites_total"), 10.0);
    assert_eq!(
        r.metric(r#"shaken_sensor_calls_total{ended_by="caller"}"#),
        10.0
    );
    assert_eq!(r.metric("shaken_sensor_records_written_total"), 10.0);
    let unsigned = r#"shaken_sensor_verifications_total{attest="none",verstat="No-TN-Validation"}"#;
    assert_eq!(r.metric(unsigned), 10.0, "{}", r.metrics);
}

#[test]
fn tcp_answered_calls_come_out_whole() {
    let r = run("tcp-answered.pcap");
    assert_clean(&r, "tcp-answered");
    assert_eq!(r.count("sip_messages"), 70, "{}", r.summary);
    kinds(&r, 10, 10, 10, 20, 20);
    assert_answered_calls(&r, "tcp-answered", 10, "tcp");
}

#[test]
fn ipv6_answered_calls() {
    let r = run("ipv6-answered.pcap");
    assert_clean(&r, "ipv6-answered");
    assert_eq!(r.count("sip_messages"), 35);
    assert_answered_calls(&r, "ipv6-answered", 5, "udp");
    assert!(r.records.iter().all(|c| c["src"]["ip"] == "::1"));
}

#[test]
fn kernel_fragmented_invites_are_reassembled() {
    let r = run("udp-fragmented.pcap");
    assert_clean(&r, "udp-fragmented");
    assert_eq!(r.count("packets"), 64);
    assert_eq!(r.count("sip_messages"), 56);
    assert_eq!(
        r.summary["reassembly_events"]["defrag.completed"], 8,
        "{}",
        r.summary
    );
    assert_answered_calls(&r, "udp-fragmented", 8, "udp");
    for rec in &r.records {
        assert_eq!(
            rec["shaken"]["identity_headers"], 1,
            "the 2214-byte INVITE arrived whole"
        );
    }
}

#[test]
fn linux_cooked_captures_v1_and_v2() {
    for name in ["linux-sll.pcap", "linux-sll2.pcap"] {
        let r = run(name);
        assert_clean(&r, name);
        assert_eq!(r.count("sip_messages"), 35, "{name}");
        assert_answered_calls(&r, name, 5, "udp");
    }
}

fn outcome(rec: &Value) -> (String, i64, bool, bool) {
    (
        rec["dialog"]["ended_by"].as_str().unwrap().to_string(),
        rec["dialog"]["final_code"].as_i64().unwrap_or(-1),
        rec["dialog"]["answered"].as_bool().unwrap(),
        rec["dialog"]["cancelled"].as_bool().unwrap(),
    )
}

#[test]
fn cancelled_rejected_and_callee_released_calls() {
    let r = run("udp-outcomes.pcap");
    assert_clean(&r, "udp-outcomes");
    assert_eq!(r.count("sip_messages"), 74);
    assert_eq!(r.sip_kind("CANCEL"), 4);
    assert_eq!(r.records.len(), 14);
    let by_prefix = |prefix: &str| -> Vec<(String, i64, bool, bool)> {
        r.records
            .iter()
            .filter(|c| c["call_id"].as_str().unwrap().starts_with(prefix))
            .map(outcome)
            .collect()
    };
    let cancel = by_prefix("outcome-cancel-");
    assert_eq!(cancel.len(), 4);
    assert!(
        cancel
            .iter()
            .all(|o| *o == ("caller".into(), 487, false, true)),
        "{cancel:?}"
    );
    let busy = by_prefix("outcome-busy-");
    assert_eq!(busy.len(), 4);
    assert!(
        busy.iter()
            .all(|o| *o == ("callee".into(), 486, false, false)),
        "{busy:?}"
    );
    let notfound = by_prefix("outcome-notfound-");
    assert_eq!(notfound.len(), 4);
    assert!(
        notfound
            .iter()
            .all(|o| *o == ("callee".into(), 404, false, false)),
        "{notfound:?}"
    );
    let callee_bye = by_prefix("outcome-callee-bye-");
    assert_eq!(callee_bye.len(), 2);
    assert!(
        callee_bye
            .iter()
            .all(|o| *o == ("callee".into(), 200, true, false)),
        "{callee_bye:?}"
    );
    // Their trailing ACKs and BYE responses belong to calls just closed, not to unknown calls.
    assert!(
        r.summary["dialog_events"].get("unmatched").is_none(),
        "{}",
        r.summary
    );
}

#[test]
fn malformed_capture_is_counted_and_the_valid_invites_survive() {
    let r = run("malformed.pcap");
    assert_eq!(r.count("packets"), 127);
    let ids: Vec<&str> = r
        .records
        .iter()
        .map(|c| c["call_id"].as_str().unwrap())
        .collect();
    for valid in [
        "valid-1@malformed.shaken-sensor.test",
        "valid-2@malformed.shaken-sensor.test",
    ] {
        assert!(ids.contains(&valid), "{valid} missing from {ids:?}");
    }
    let valid = r
        .records
        .iter()
        .find(|c| c["call_id"] == "valid-1@malformed.shaken-sensor.test")
        .unwrap();
    assert_eq!(valid["orig_tn"], "12025550190");
    assert_eq!(valid["dest_tn"], "13035550190");
    let errors = r.summary["decode_errors"].as_object().unwrap();
    for kind in [
        "truncated_link",
        "bad_ip_header",
        "bad_ip_length",
        "bad_udp",
        "bad_tcp",
        "bad_ipv6_extension",
        "not_sip",
        "frag_overlap_conflict",
        "frag_too_large",
        "sip_truncated_body",
    ] {
        assert!(
            errors.get(kind).and_then(Value::as_u64).unwrap_or(0) >= 1,
            "{kind} not counted: {}",
            r.summary
        );
    }
    let parse = r.summary["sip_parse_errors"].as_object().unwrap();
    for kind in [
        "sip_missing_call_id",
        "sip_too_many_headers",
        "sip_header_line_too_long",
    ] {
        assert!(
            parse.get(kind).and_then(Value::as_u64).unwrap_or(0) >= 1,
            "{kind} not counted: {}",
            r.summary
        );
    }
    // The 70,000-byte header line over TCP is refused by framing, not buffered without bound.
    assert!(
        r.summary["reassembly_events"]["tcp.framing_error"]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "{}",
        r.summary
    );
}

#[test]
fn several_files_in_one_replay() {
    let r = replay(
        &[&pcap("udp-answered.pcap"), &pcap("ipv6-answered.pcap")],
        DEFAULT_CONFIG,
    );
    assert_eq!(r.records.len(), 15);
    assert_eq!(r.count("sip_messages"), 105);
}
