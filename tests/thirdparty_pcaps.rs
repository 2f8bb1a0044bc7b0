//! Captures made by other projects (../shared/thirdparty/pcaps): our INVITE and SIP message
//! counts must match tshark's (Wireshark 4.0) on the same files, as listed in that folder's
//! README. Skipped, with a message, when ../shared is absent.

mod common;

use common::{replay, thirdparty, Replay};

/// The third-party captures use SIP on 5062 and 5090 as well as 5060.
const CONFIG: &str =
    "[sensor]\nid = \"tp\"\nworkers = 2\n[capture]\nsip_ports = [5060, 5062, 5080, 5090]\n";

fn run(name: &str) -> Option<Replay> {
    let Some(dir) = thirdparty() else {
        eprintln!("SKIPPED: ../shared/thirdparty is absent; cannot check {name}");
        return None;
    };
    let path = dir.join("pcaps").join(name);
    Some(replay(&[&path], CONFIG))
}

fn check(name: &str, invites: u64, sip: u64) -> Option<Replay> {
    let r = run(name)?;
    assert_eq!(
        r.sip_kind("INVITE"),
        invites,
        "{name}: INVITEs; summary {}",
        r.summary
    );
    assert_eq!(
        r.count("sip_messages"),
        sip,
        "{name}: SIP messages; summary {}",
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
    Some(r)
}

#[test]
fn sngrep_aaa_ethernet_udp_with_rtp() {
    let Some(r) = check("sngrep-aaa.pcap", 11, 81) else {
        return;
    };
    assert!(r.count("packets_ignored") > 0, "RTP is not SIP");
}

#[test]
fn sngrep_ipv6_fragments_reassembled() {
    let Some(r) = check("sngrep-ipv6frag.pcap", 2, 32) else {
        return;
    };
    assert!(
        r.summary["reassembly_events"]["defrag.completed"]
            .as_u64()
            .unwrap_or(0)
            >= 2,
        "{}",
        r.summary
    );
    // Both INVITEs belong to one call (the second is its authenticated retry).
    assert_eq!(r.records.len(), 1, "{:?}", r.records);
}

#[test]
fn sngrep_sip_over_tcp_inside_ip_in_ip() {
    let Some(r) = check("sngrep-ipip.pcap", 1, 4) else {
        return;
    };
    assert_eq!(r.records.len(), 1);
    let rec = &r.records[0];
    assert_eq!(rec["transport"], "tcp");
    assert_eq!(rec["dialog"]["answered"], true);
    assert_eq!(rec["dialog"]["final_code"], 200);
}

#[test]
fn heplify_raw_ip_link_type_with_ip_in_ip() {
    let Some(r) = check("heplify-ipip0.pcap", 1, 8) else {
        return;
    };
    // The 403 in this file carries another Call-ID than the INVITE, so the call stays open
    // until the end of the capture; REGISTERs make no calls.
    assert_eq!(r.records.len(), 1, "{:?}", r.records);
    assert_eq!(r.records[0]["dialog"]["ended_by"], "shutdown");
    assert_eq!(
        r.records[0]["dialog"]["final_code"],
        serde_json::Value::Null
    );
    assert_eq!(r.summary["dialog_events"]["unmatched"], 1, "{}", r.summary);
}

#[test]
fn ndpi_vlan_gre_ppp_udp() {
    check("nDPI-gre.pcapng", 0, 1);
}

#[test]
fn ndpi_t38_fax_calls() {
    check("nDPI-FAX-Call-t38-CA-TDM-SIP-FB-1.pcap", 16, 92);
}

#[test]
fn zeek_invalid_content_length_is_counted_not_lost() {
    let Some(r) = check("zeek-invalid-content-length.pcap", 1, 2) else {
        return;
    };
    assert_eq!(
        r.summary["decode_errors"]["sip_bad_content_length"], 2,
        "{}",
        r.summary
    );
    assert_eq!(r.records.len(), 1);
    assert_eq!(r.records[0]["dialog"]["answered"], true);
}
