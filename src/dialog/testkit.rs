//! Test support: SIP messages from small literal texts, parsed by the project's own parser, fed
//! to a [`DialogTable`]. Compiled only for tests; never used by the product.

use super::call::Seen;
use super::table::{CallEvent, DialogLimits, DialogTable};
use crate::capture::packet::Transport;
use crate::clock::Timestamp;
use crate::record::CallRecord;
use crate::sip::message::ParseLimits;
use crate::sip::parse::parse;
use std::net::SocketAddr;
use std::sync::Arc;

pub const CALLER: &str = "192.0.2.10:5060";
pub const CALLEE: &str = "198.51.100.20:5060";

/// A SIP message text between +12025550143 (From) and +13035550177 (To); `to_tag` empty means
/// none; `extra` is more header lines, each ending in CRLF.
pub fn sip_with(start: &str, call_id: &str, cseq: &str, to_tag: &str, extra: &str) -> String {
    let to = if to_tag.is_empty() {
        "<sip:+13035550177@example.net>".to_string()
    } else {
        format!("<sip:+13035550177@example.net>;tag={to_tag}")
    };
    format!(
        "{start}\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1\r\n\
         From: <sip:+12025550143@example.com>;tag=caller-tag\r\nTo: {to}\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq}\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

pub fn invite_with(call_id: &str, seq: u32, extra: &str) -> String {
    sip_with(
        "INVITE sip:+13035550177@example.net SIP/2.0",
        call_id,
        &format!("{seq} INVITE"),
        "",
        extra,
    )
}

pub fn invite(call_id: &str, seq: u32) -> String {
    invite_with(call_id, seq, "")
}

pub fn response(code: u16, call_id: &str, cseq: &str) -> String {
    sip_with(
        &format!("SIP/2.0 {code} Reason"),
        call_id,
        cseq,
        "callee-tag",
        "",
    )
}

pub fn request(method: &str, call_id: &str, cseq: &str, to_tag: &str) -> String {
    sip_with(
        &format!("{method} sip:+13035550177@example.net SIP/2.0"),
        call_id,
        cseq,
        to_tag,
        "",
    )
}

pub fn table(max_dialogs: usize) -> DialogTable {
    let limits = DialogLimits {
        max_dialogs,
        invite_timeout_s: 30,
        max_call_s: 3600,
    };
    DialogTable::new(limits, crate::peers::shared(&[]), Arc::from("sensor-test"))
}

/// Records emitted, as (Call-ID, record).
pub type Emitted = Vec<(Vec<u8>, CallRecord)>;

pub fn seen(secs: i64, src: &str) -> Seen {
    let src: SocketAddr = src.parse().unwrap();
    let other = if src.to_string() == CALLER {
        CALLEE
    } else {
        CALLER
    };
    Seen {
        ts: Timestamp::from_secs(secs),
        src,
        dst: other.parse().unwrap(),
        transport: Transport::Udp,
        agent: None,
    }
}

/// A table event sink keeping the records of ended calls in `out` (starts are ignored).
pub fn ended(out: &mut Emitted) -> impl FnMut(CallEvent) + '_ {
    |ev| {
        if let CallEvent::Ended { record, .. } = ev {
            out.push((record.call_id.as_bytes().to_vec(), record));
        }
    }
}

/// Runs the table's timeouts at `secs`; closed calls go to `out`.
pub fn expire(t: &mut DialogTable, secs: i64, out: &mut Emitted) {
    t.expire(Timestamp::from_secs(secs), &mut ended(out));
}

/// Feeds one message seen at `secs` from `src`; returns whether it started a call.
pub fn feed(t: &mut DialogTable, text: &str, secs: i64, src: &str, out: &mut Emitted) -> bool {
    feed_to(t, text, secs, src, &mut ended(out))
}

/// Feeds one message seen at `secs` from `src`, the table's events going to `emit`.
pub fn feed_to(
    t: &mut DialogTable,
    text: &str,
    secs: i64,
    src: &str,
    emit: &mut dyn FnMut(CallEvent),
) -> bool {
    let msg = parse(text.as_bytes(), &ParseLimits::default()).expect("test message parses");
    t.handle(&msg, seen(secs, src), emit)
}
