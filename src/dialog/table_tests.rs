//! Unit tests of the dialog table's state machine, fed with SIP messages parsed by the project's
//! own parser from small literal texts. Each test names the rule it pins.

use super::*;
use crate::dialog::testkit::{
    ended, expire, feed, feed_to, invite, request, response, table, Emitted, CALLEE, CALLER,
};
use crate::record::EndedBy;

/// A BYE sent by the callee: From and To swapped, so the caller's tag is in To.
fn bye_from_callee(call_id: &str) -> String {
    format!(
        "BYE sip:+12025550143@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.20;branch=z9hG4bK-9\r\n\
         From: <sip:+13035550177@example.net>;tag=callee-tag\r\n\
         To: <sip:+12025550143@example.com>;tag=caller-tag\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn answered_call_ended_by_caller_bye_emits_one_record() {
    let (mut t, mut out) = (table(10), Emitted::new());
    assert!(feed(&mut t, &invite("c1", 1), 100, CALLER, &mut out));
    assert!(!feed(
        &mut t,
        &response(180, "c1", "1 INVITE"),
        101,
        CALLEE,
        &mut out
    ));
    feed(
        &mut t,
        &response(200, "c1", "1 INVITE"),
        103,
        CALLEE,
        &mut out,
    );
    feed(
        &mut t,
        &request("ACK", "c1", "1 ACK", "callee-tag"),
        103,
        CALLER,
        &mut out,
    );
    assert!(out.is_empty(), "an answered call stays open until BYE");
    assert_eq!(t.len(), 1);
    feed(
        &mut t,
        &request("BYE", "c1", "2 BYE", "callee-tag"),
        163,
        CALLER,
        &mut out,
    );
    assert_eq!(out.len(), 1);
    let (id, r) = &out[0];
    assert_eq!(id, b"c1");
    assert_eq!(r.dialog.final_code, Some(200));
    assert!(r.dialog.answered);
    assert_eq!(r.dialog.ended_by, EndedBy::Caller);
    assert_eq!(r.dialog.ring_ms, Some(3000));
    assert_eq!(r.dialog.duration_ms, Some(60_000));
    assert_eq!(r.orig_tn.as_deref(), Some("12025550143"));
    assert!(t.is_empty());
    assert_eq!((t.stats.created, t.stats.closed_caller), (1, 1));
}

#[test]
fn bye_from_the_callee_side_is_ended_by_callee() {
    let (mut t, mut out) = (table(10), Emitted::new());
    feed(&mut t, &invite("c1", 1), 100, CALLER, &mut out);
    feed(
        &mut t,
        &response(200, "c1", "1 INVITE"),
        101,
        CALLEE,
        &mut out,
    );
    feed(&mut t, &bye_from_callee("c1"), 110, CALLEE, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.dialog.ended_by, EndedBy::Callee);
    assert_eq!(t.stats.closed_callee, 1);
}

#[test]
fn failure_final_response_closes_the_call_as_callee() {
    let (mut t, mut out) = (table(10), Emitted::new());
    feed(&mut t, &invite("c1", 1), 100, CALLER, &mut out);
    feed(
        &mut t,
        &response(486, "c1", "1 INVITE"),
        102,
        CALLEE,
        &mut out,
    );
    assert_eq!(out.len(), 1);
    let r = &out[0].1;
    assert_eq!(r.dialog.final_code, Some(486));
    assert!(!r.dialog.answered);
    assert_eq!(r.dialog.ended_by, EndedBy::Callee);
    assert_eq!(r.dialog.duration_ms, None);
}

#[test]
fn redirect_3xx_closes_the_call() {
    let (mut t, mut out) = (table(10), Emitted::new());
    feed(&mut t, &invite("c1", 1), 100, CALLER, &mut out);
    feed(
        &mut t,
        &response(302, "c1", "1 INVITE"),
        101,
        CALLEE,
        &mut out,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.dialog.final_code, Some(302));
    // A new INVITE with a higher CSeq on the same Call-ID after a redirect is a new attempt.
    assert!(feed(&mut t, &invite("c1", 2), 102, CALLER, &mut out));
    assert_eq!(t.stats.created, 2);
}

#[test]
fn cancel_then_487_is_ended_by_caller() {
    let (mut t, mut out) = (table(10), Emitted::new());
    feed(&mut t, &invite("c1", 1), 100, CALLER, &mut out);
    feed(
        &mut t,
        &response(180, "c1", "1 INVITE"),
        101,
        CALLEE,
        &mut out,
    );
    feed(
        &mut t,
        &request("CANCEL", "c1", "1 CANCEL", ""),
        105,
        CALLER,
        &mut out,
    );
    assert!(out.is_empty(), "CANCEL alone waits for the 487");
    feed(
        &mut t,
        &response(200, "c1", "1 CANCEL"),
        105,
        CALLEE,
        &mut out,
    );
    assert!(
        out.is_empty(),
        "the 200 for CANCEL is not the INVITE's final response"
    );
    feed(
        &mut t,
        &response(487, "c1", "1 INVITE"),
        105,
        CALLEE,
        &mut out,
    );
    assert_eq!(out.len(), 1);
    let r = &out[0].1;
    assert!(r.dialog.cancelled);
    assert_eq!(r.dialog.ended_by, EndedBy::Caller);
    assert_eq!(r.dialog.final_code, Some(487));
}

#[test]
fn auth_challenge_401_and_407_retry_stays_one_call() {
    for code in [401u16, 407] {
        let (mut t, mut out) = (table(10), Emitted::new());
        assert!(feed(&mut t, &invite("c1", 1), 100, CALLER, &mut out));
        feed(
            &mut t,
            &response(code, "c1", "1 INVITE"),
            100,
            CALLEE,
            &mut out,
        );
        assert!(out.is_empty(), "{code}: a challenge does not end the call");
        feed(
            &mut t,
            &request("ACK", "c1", "1 ACK", "callee-tag"),
            100,
            CALLER,
            &mut out,
        );
        assert!(
            !feed(&mut t, &invite("c1", 2), 101, CALLER, &mut out),
            "{code}: the authenticated retry is not a new call"
        );
        assert_eq!(t.stats.invite_retransmissions, 0);
        feed(
            &mut t,
            &response(200, "c1", "2 INVITE"),
            102,
            CALLEE,
            &mut out,
        );
        feed(
            &mut t,
            &request("BYE", "c1", "3 BYE", "callee-tag"),
            112,
            CALLER,
            &mut out,
        );
        assert_eq!(out.len(), 1, "{code}: one record for challenge + retry");
        assert_eq!(t.stats.created, 1);
        let r = &out[0].1;
        assert_eq!(r.dialog.final_code, Some(200));
        assert!(r.dialog.answered);
    }
}

#[test]
fn unanswered_challenge_times_out_as_callee_at_the_challenge() {
    let (mut t, mut out) = (table(10), Emitted::new());
    feed(&mut t, &invite("c1", 1), 100, CALLER, &mut out);
    feed(
        &mut t,
        &response(407, "c1", "1 INVITE"),
        101,
        CALLEE,
        &mut out,
    );
    expire(&mut t, 130, &mut out);
    assert!(
        out.is_empty(),
        "the retry window runs from the challenge, not the INVITE"
    );
    expire(&mut t, 131, &mut out);
    assert_eq!(out.len(), 1);
    let r = &out[0].1;
    assert_eq!(r.dialog.ended_by, EndedBy::Callee);
    assert_eq!(r.dialog.ended_at, Timestamp::from_secs(101));
    assert_eq!(t.stats.closed_timeout, 1);
}

#[test]
fn invite_retransmission_is_counted_not_a_new_call() {
    let (mut t, mut out) = (table(10), Emitted::new());
    assert!(feed(&mut t, &invite("c1", 1), 100, CALLER, &mut out));
    assert!(!feed(&mut t, &invite("c1", 1), 100, CALLER, &mut out));
    assert_eq!(t.stats.invite_retransmissions, 1);
    assert_eq!(t.stats.created, 1);
    // A re-INVITE carries the To tag.
    feed(
        &mut t,
        &response(200, "c1", "1 INVITE"),
        101,
        CALLEE,
        &mut out,
    );
    assert!(!feed(
        &mut t,
        &request("INVITE", "c1", "2 INVITE", "callee-tag"),
        120,
        CALLER,
        &mut out
    ));
    assert_eq!(t.stats.reinvites, 1);
    // The 200 for the re-INVITE does not change the call's final response time.
    feed(
        &mut t,
        &response(200, "c1", "2 INVITE"),
        121,
        CALLEE,
        &mut out,
    );
    feed(
        &mut t,
        &request("BYE", "c1", "3 BYE", "callee-tag"),
        130,
        CALLER,
        &mut out,
    );
    assert_eq!(out[0].1.dialog.ring_ms, Some(1000));
}

#[test]
fn trailing_ack_and_200_after_close_are_recognised() {
    let (mut t, mut out) = (table(10), Emitted::new());
    feed(&mut t, &invite("c1", 1), 100, CALLER, &mut out);
    feed(
        &mut t,
        &response(486, "c1", "1 INVITE"),
        101,
        CALLEE,
        &mut out,
    );
    feed(
        &mut t,
        &request("ACK", "c1", "1 ACK", "callee-tag"),
        101,
        CALLER,
        &mut out,
    );
    assert_eq!(t.stats.after_close, 1);
    // A late retransmission of the same INVITE is trailing too, not a new call.
    assert!(!feed(&mut t, &invite("c1", 1), 102, CALLER, &mut out));
    assert_eq!(t.stats.after_close, 2);

    feed(&mut t, &invite("c2", 1), 200, CALLER, &mut out);
    feed(
        &mut t,
        &response(200, "c2", "1 INVITE"),
        201,
        CALLEE,
        &mut out,
    );
    feed(
        &mut t,
        &request("BYE", "c2", "2 BYE", "callee-tag"),
        210,
        CALLER,
        &mut out,
    );
    feed(&mut t, &response(200, "c2", "2 BYE"), 210, CALLEE, &mut out);
    assert_eq!(t.stats.after_close, 3);
    assert_eq!(t.stats.unmatched, 0);
    assert_eq!(out.len(), 2);
    assert_eq!(t.recently_closed_len(), 2);

    // Past the linger time (Timer D, 32 s) the Call-ID is forgotten: unmatched.
    t.expire(Timestamp::from_secs(250), &mut |_| {});
    assert_eq!(t.recently_closed_len(), 0);
    feed(&mut t, &response(200, "c2", "2 BYE"), 250, CALLEE, &mut out);
    assert_eq!(t.stats.unmatched, 1);
}

#[test]
fn unmatched_and_out_of_dialog_are_told_apart() {
    let (mut t, mut out) = (table(10), Emitted::new());
    feed(
        &mut t,
        &request("BYE", "mid", "5 BYE", "x"),
        100,
        CALLER,
        &mut out,
    );
    feed(
        &mut t,
        &response(200, "mid2", "1 INVITE"),
        100,
        CALLEE,
        &mut out,
    );
    feed(
        &mut t,
        &request("OPTIONS", "o1", "1 OPTIONS", ""),
        100,
        CALLER,
        &mut out,
    );
    feed(
        &mut t,
        &request("REGISTER", "r1", "1 REGISTER", ""),
        100,
        CALLER,
        &mut out,
    );
    assert_eq!(t.stats.unmatched, 2);
    assert_eq!(t.stats.out_of_dialog, 2);
    assert_eq!(t.stats.created, 0);
    assert!(out.is_empty());
}

#[test]
fn unanswered_invite_times_out_at_its_deadline() {
    let (mut t, mut out) = (table(10), Emitted::new());
    feed(&mut t, &invite("c1", 1), 100, CALLER, &mut out);
    feed(
        &mut t,
        &response(180, "c1", "1 INVITE"),
        101,
        CALLEE,
        &mut out,
    );
    expire(&mut t, 129, &mut out);
    assert!(out.is_empty(), "before invite_timeout_s nothing closes");
    expire(&mut t, 500, &mut out);
    assert_eq!(out.len(), 1);
    let r = &out[0].1;
    assert_eq!(r.dialog.ended_by, EndedBy::Timeout);
    // Closed at its deadline, not when expire happened to run.
    assert_eq!(r.dialog.ended_at, Timestamp::from_secs(130));
    assert_eq!(t.stats.closed_timeout, 1);
}

#[test]
fn answered_call_times_out_after_max_call_duration() {
    let (mut t, mut out) = (table(10), Emitted::new());
    feed(&mut t, &invite("c1", 1), 100, CALLER, &mut out);
    feed(
        &mut t,
        &response(200, "c1", "1 INVITE"),
        102,
        CALLEE,
        &mut out,
    );
    expire(&mut t, 3000, &mut out);
    assert!(out.is_empty(), "an answered call outlives invite_timeout_s");
    expire(&mut t, 102 + 3600, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.dialog.ended_by, EndedBy::Timeout);
    assert_eq!(out[0].1.dialog.duration_ms, Some(3_600_000));
}

#[test]
fn cancelled_call_without_487_times_out_as_caller() {
    let (mut t, mut out) = (table(10), Emitted::new());
    feed(&mut t, &invite("c1", 1), 100, CALLER, &mut out);
    feed(
        &mut t,
        &request("CANCEL", "c1", "1 CANCEL", ""),
        101,
        CALLER,
        &mut out,
    );
    expire(&mut t, 200, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.dialog.ended_by, EndedBy::Caller);
    assert!(out[0].1.dialog.cancelled);
}

#[test]
fn full_table_evicts_the_oldest_call_and_counts_it() {
    let (mut t, mut out) = (table(3), Emitted::new());
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        feed(&mut t, &invite(id, 1), 100 + i as i64, CALLER, &mut out);
    }
    assert!(out.is_empty());
    // "a" ended; the oldest live one is then "b".
    feed(
        &mut t,
        &response(486, "a", "1 INVITE"),
        104,
        CALLEE,
        &mut out,
    );
    feed(&mut t, &invite("d", 1), 105, CALLER, &mut out);
    assert_eq!(out.len(), 1, "room was freed by a's end: no eviction");
    feed(&mut t, &invite("e", 1), 106, CALLER, &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].0, b"b");
    assert_eq!(out[1].1.dialog.ended_by, EndedBy::Evicted);
    assert_eq!(out[1].1.dialog.ended_at, Timestamp::from_secs(106));
    assert_eq!(t.stats.closed_evicted, 1);
    assert_eq!(t.len(), 3);
}

#[test]
fn drain_closes_every_open_call_as_shutdown_oldest_first() {
    let (mut t, mut out) = (table(10), Emitted::new());
    for id in ["x", "y", "z"] {
        feed(&mut t, &invite(id, 1), 100, CALLER, &mut out);
    }
    feed(
        &mut t,
        &response(200, "y", "1 INVITE"),
        101,
        CALLEE,
        &mut out,
    );
    t.drain(Timestamp::from_secs(150), &mut ended(&mut out));
    let ids: Vec<&[u8]> = out.iter().map(|(id, _)| id.as_slice()).collect();
    assert_eq!(ids, [b"x".as_slice(), b"y", b"z"]);
    assert!(out
        .iter()
        .all(|(_, r)| r.dialog.ended_by == EndedBy::Shutdown));
    assert_eq!(t.stats.closed_shutdown, 3);
    assert!(t.is_empty());
}

#[test]
fn recently_closed_set_is_bounded_and_counts_early_forgetting() {
    // max_dialogs 64 → recently-closed capacity 16.
    let (mut t, mut out) = (table(64), Emitted::new());
    for i in 0..20 {
        let id = format!("r{i}");
        feed(&mut t, &invite(&id, 1), 100, CALLER, &mut out);
        feed(
            &mut t,
            &response(486, &id, "1 INVITE"),
            100,
            CALLEE,
            &mut out,
        );
    }
    assert_eq!(t.recently_closed_len(), 16);
    assert_eq!(t.stats.recently_closed_evictions, 4);
}

#[test]
fn verdict_lands_only_on_an_open_call() {
    let (mut t, mut out) = (table(10), Emitted::new());
    feed(&mut t, &invite("c1", 1), 100, CALLER, &mut out);
    let verdict = ShakenResult {
        attest: Some("A".into()),
        ..ShakenResult::default()
    };
    assert!(t.apply(b"c1", verdict.clone(), &mut ended(&mut out)));
    assert!(!t.apply(b"gone", verdict, &mut ended(&mut out)));
    assert!(out.is_empty());
    feed(
        &mut t,
        &response(486, "c1", "1 INVITE"),
        101,
        CALLEE,
        &mut out,
    );
    assert_eq!(out[0].1.shaken.attest.as_deref(), Some("A"));
}

/// Table events as short names: "start:ID", "end:ID" (with "!" when its start was never told).
fn told(log: &mut Vec<String>) -> impl FnMut(CallEvent) + '_ {
    |ev| {
        log.push(match ev {
            CallEvent::Started(s) => format!("start:{}", s.call_id.as_str()),
            CallEvent::Ended { record, announced } => {
                format!("end:{}{}", record.call_id, if announced { "" } else { "!" })
            }
        })
    }
}

fn handle(t: &mut DialogTable, text: &str, secs: i64, src: &str, log: &mut Vec<String>) -> bool {
    feed_to(t, text, secs, src, &mut told(log))
}

#[test]
fn without_verification_a_call_is_started_at_once_and_ended_with_its_record() {
    let mut t = table(10);
    t.set_events(false, true);
    let mut log = Vec::new();
    handle(&mut t, &invite("n1", 1), 100, CALLER, &mut log);
    handle(
        &mut t,
        &response(486, "n1", "1 INVITE"),
        101,
        CALLEE,
        &mut log,
    );
    assert_eq!(log, ["start:n1", "end:n1"]);
}

#[test]
fn a_pending_call_is_started_when_its_verdict_is_applied() {
    let mut t = table(10);
    t.set_events(true, true);
    let mut log = Vec::new();
    assert!(handle(&mut t, &invite("v1", 1), 100, CALLER, &mut log));
    assert!(log.is_empty(), "the verdict is pending: no start yet");
    assert!(t.apply(b"v1", ShakenResult::default(), &mut told(&mut log)));
    handle(
        &mut t,
        &response(486, "v1", "1 INVITE"),
        101,
        CALLEE,
        &mut log,
    );
    assert_eq!(log, ["start:v1", "end:v1"]);
}

#[test]
fn a_call_ending_while_pending_is_held_until_its_verdict_or_the_end() {
    let mut t = table(10);
    t.set_events(true, true);
    let mut log = Vec::new();
    handle(&mut t, &invite("h1", 1), 100, CALLER, &mut log);
    handle(&mut t, &invite("h2", 1), 100, CALLER, &mut log);
    handle(
        &mut t,
        &response(486, "h1", "1 INVITE"),
        101,
        CALLEE,
        &mut log,
    );
    t.drain(Timestamp::from_secs(110), &mut told(&mut log));
    assert!(log.is_empty(), "both ended, neither has its verdict");
    assert_eq!((t.len(), t.held_len()), (0, 2));
    assert_eq!(
        t.stats.closed_callee, 1,
        "counted when it ended, not when released"
    );
    let verdict = ShakenResult {
        attest: Some("B".into()),
        ..ShakenResult::default()
    };
    assert!(t.apply(b"h2", verdict, &mut told(&mut log)));
    assert_eq!(
        log,
        ["end:h2!"],
        "released with its verdict, its start never told"
    );
    t.release_held(&mut told(&mut log));
    assert_eq!(log, ["end:h2!", "end:h1!"]);
    assert_eq!(t.held_len(), 0);
    assert!(!t.apply(b"h1", ShakenResult::default(), &mut told(&mut log)));
}
