//! Unit tests of one call's state: what its INVITE fixes (numbers, texts), how responses and
//! requests advance it, its deadline, and the record it becomes. Each test names the rule it pins.

use super::*;
use crate::dialog::testkit::{
    invite, invite_with, request, response, seen, sip_with, CALLEE, CALLER,
};
use crate::sip::message::ParseLimits;
use crate::sip::parse::parse;

fn peer() -> Peer {
    Peer {
        name: Arc::from("carrier-alpha"),
        ocn: Some(Arc::from("1111")),
    }
}

fn call_from(text: &str) -> Call {
    let msg = parse(text.as_bytes(), &ParseLimits::default()).unwrap();
    Call::from_invite(&msg, seen(100, CALLER), &peer(), 0, Verdict::Unverified)
}

fn pending_call_from(text: &str) -> Call {
    let msg = parse(text.as_bytes(), &ParseLimits::default()).unwrap();
    Call::from_invite(&msg, seen(100, CALLER), &peer(), 0, Verdict::Pending)
}

/// Advances `call` with `text` seen at `secs` from `src`.
fn step(call: &mut Call, text: &str, secs: i64, src: &str) -> Option<EndedBy> {
    let msg = parse(text.as_bytes(), &ParseLimits::default()).unwrap();
    call.on_message(&msg, seen(secs, src))
}

fn record(call: Call, by: EndedBy, secs: i64) -> CallRecord {
    call.into_record(b"k1", by, Timestamp::from_secs(secs), &Arc::from("s1"))
}

#[test]
fn caller_number_is_the_first_pai_entry_with_a_number_else_from() {
    let pai = "P-Asserted-Identity: <sip:anonymous@example.com>, <tel:+1-202-555-0199>\r\n";
    let r = record(
        call_from(&invite_with("k1", 1, pai)),
        EndedBy::Shutdown,
        101,
    );
    assert_eq!(r.orig_tn.as_deref(), Some("12025550199"));
    assert_eq!(r.pai_user.as_deref(), Some("+1-202-555-0199"));
    assert_eq!(r.from_user.as_deref(), Some("+12025550143"));
    let r = record(call_from(&invite("k1", 1)), EndedBy::Shutdown, 101);
    assert_eq!(r.orig_tn.as_deref(), Some("12025550143"), "no PAI: From");
}

#[test]
fn called_number_is_the_request_uri_user_else_to() {
    let text = sip_with(
        "INVITE sip:2025550100@example.net SIP/2.0",
        "k1",
        "1 INVITE",
        "",
        "",
    );
    let r = record(call_from(&text), EndedBy::Shutdown, 101);
    assert_eq!(
        r.dest_tn.as_deref(),
        Some("12025550100"),
        "NANP 10 digits get their 1"
    );
    let text = sip_with("INVITE sip:example.net SIP/2.0", "k1", "1 INVITE", "", "");
    let r = record(call_from(&text), EndedBy::Shutdown, 101);
    assert_eq!(
        r.dest_tn.as_deref(),
        Some("13035550177"),
        "no R-URI user: To"
    );
}

#[test]
fn detectors_get_the_start_once_and_only_with_the_verdict_when_one_is_needed() {
    let mut c = pending_call_from(&invite("k1", 1));
    assert!(c.detect_start(b"k1").is_none(), "verdict pending");
    assert!(!c.announced());
    c.set_verdict(ShakenResult::default());
    assert!(c.detect_start(b"k1").is_some());
    assert!(c.announced());
    assert!(c.detect_start(b"k1").is_none(), "announced once");
    let mut c = call_from(&invite("k1", 1));
    assert!(c.detect_start(b"k1").is_some(), "verification off: at once");
}

#[test]
fn only_the_first_final_response_to_the_current_invite_counts() {
    let mut c = call_from(&invite("k1", 1));
    assert_eq!(
        step(&mut c, &response(183, "k1", "1 INVITE"), 101, CALLEE),
        None
    );
    assert_eq!(
        step(&mut c, &response(200, "k1", "1 INVITE"), 102, CALLEE),
        None
    );
    assert_eq!(
        step(&mut c, &response(500, "k1", "1 INVITE"), 103, CALLEE),
        None
    );
    assert_eq!(
        step(&mut c, &response(486, "k1", "2 INVITE"), 103, CALLEE),
        None
    );
    assert_eq!(c.final_code, Some(200));
    // Answered: the deadline is max_call_s after the answer.
    assert_eq!(c.deadline(30, 3600), Timestamp::from_secs(102 + 3600));
}

#[test]
fn retry_with_a_higher_cseq_reopens_the_call_and_a_retransmission_does_not() {
    let mut c = call_from(&invite("k1", 1));
    step(&mut c, &response(401, "k1", "1 INVITE"), 101, CALLEE);
    assert_eq!(c.final_code, Some(401));
    let again = invite("k1", 1);
    assert!(!c.retry(&parse(again.as_bytes(), &ParseLimits::default()).unwrap()));
    let retry = invite("k1", 2);
    assert!(c.retry(&parse(retry.as_bytes(), &ParseLimits::default()).unwrap()));
    assert_eq!((c.final_code, c.cseq()), (None, 2));
    assert_eq!(
        step(&mut c, &response(403, "k1", "2 INVITE"), 102, CALLEE),
        Some(EndedBy::Callee),
        "a non-challenge failure of the retry ends the call"
    );
}

#[test]
fn bye_without_a_final_response_counts_the_ring_time_to_the_bye() {
    let mut c = call_from(&invite("k1", 1));
    assert_eq!(
        step(
            &mut c,
            &request("BYE", "k1", "2 BYE", "callee-tag"),
            107,
            CALLER
        ),
        Some(EndedBy::Caller)
    );
    let r = record(c, EndedBy::Caller, 107);
    assert_eq!(r.dialog.ring_ms, Some(7000));
    assert_eq!(r.dialog.final_code, None);
}

#[test]
fn cancel_after_the_final_response_is_ignored() {
    let mut c = call_from(&invite("k1", 1));
    step(&mut c, &response(200, "k1", "1 INVITE"), 101, CALLEE);
    step(
        &mut c,
        &request("CANCEL", "k1", "1 CANCEL", ""),
        102,
        CALLER,
    );
    let r = record(c, EndedBy::Shutdown, 110);
    assert!(!r.dialog.cancelled);
    assert!(r.dialog.answered);
    assert_eq!(r.dialog.duration_ms, Some(9000));
}

#[test]
fn unsigned_record_keeps_the_identity_header_count_and_peer() {
    let text = invite_with("k1", 1, "Identity: not-a-passport\r\n");
    let r = record(call_from(&text), EndedBy::Timeout, 130);
    assert_eq!(
        r.shaken.identity_headers, 1,
        "no verdict ran, the header was still seen"
    );
    assert_eq!(r.shaken.verstat, None);
    assert_eq!(&*r.upstream.peer, "carrier-alpha");
    assert_eq!(r.upstream.ocn.as_deref(), Some("1111"));
    assert_eq!(r.dialog.ended_by, EndedBy::Timeout);
    assert!(r.fingerprint.as_deref().is_some_and(|f| f.len() == 16));
}
