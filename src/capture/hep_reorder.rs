//! A short hold for SIP that arrives over HEP, so a call's INVITE can overtake its own
//! responses. A multi-process proxy mirrors each message from the process that handled it, at
//! the moment it mirrors it: Kamailio measured on lo mirrors a forwarded INVITE after the 180
//! and 200 another process received for it (its HEP time is later too, so sorting by time
//! cannot help). Held messages are released in arrival order after `hold_us` of arrival time,
//! except that an INVITE moves ahead of held responses to the same Call-ID and CSeq.
//!
//! Bounded: at most `max_held` messages (beyond it the oldest is released early and counted);
//! never reorders anything but an INVITE ahead of its own responses.

use super::packet::{SipPayload, Transport};
use crate::clock::Timestamp;
use crate::sip::message::ParseLimits;
use std::collections::VecDeque;
use std::net::SocketAddr;

struct Held {
    /// Arrival (the HEP packet's receive or capture time), which drives the release.
    arrival: Timestamp,
    ts: Timestamp,
    src: SocketAddr,
    dst: SocketAddr,
    transport: Transport,
    agent: Option<u32>,
    call_id: Option<(usize, usize)>,
    bytes: Vec<u8>,
}

impl Held {
    fn call_id(&self) -> Option<&[u8]> {
        self.call_id.and_then(|(s, e)| self.bytes.get(s..e))
    }

    fn payload(&self) -> SipPayload<'_> {
        SipPayload {
            ts: self.ts,
            src: self.src,
            dst: self.dst,
            transport: self.transport,
            bytes: &self.bytes,
            call_id: self.call_id,
            agent: self.agent,
        }
    }
}

pub struct Reorder {
    held: VecDeque<Held>,
    hold_us: i64,
    max_held: usize,
    /// Messages released before their time because `max_held` was reached.
    pub overflowed: u64,
    /// INVITEs moved ahead of their responses.
    pub reordered: u64,
}

/// CSeq number of a message whose CSeq method is INVITE (requests and responses alike).
fn invite_cseq(bytes: &[u8]) -> Option<u32> {
    let msg = crate::sip::parse::parse(bytes, &ParseLimits::default()).ok()?;
    (msg.cseq.method == crate::sip::message::Method::Invite).then_some(msg.cseq.seq)
}

fn is_response(bytes: &[u8]) -> bool {
    bytes.starts_with(b"SIP/2.0 ")
}

impl Reorder {
    pub fn new(hold_us: i64, max_held: usize) -> Self {
        Reorder {
            held: VecDeque::new(),
            hold_us,
            max_held: max_held.max(1),
            overflowed: 0,
            reordered: 0,
        }
    }

    pub fn is_active(&self) -> bool {
        self.hold_us > 0
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Holds a copy of `p`, which arrived at `arrival`.
    pub fn push(
        &mut self,
        arrival: Timestamp,
        p: &SipPayload<'_>,
        out: &mut dyn FnMut(SipPayload<'_>),
    ) {
        self.release(arrival, out);
        while self.held.len() >= self.max_held {
            self.overflowed += 1;
            if let Some(h) = self.held.pop_front() {
                out(h.payload());
            }
        }
        let h = Held {
            arrival,
            ts: p.ts,
            src: p.src,
            dst: p.dst,
            transport: p.transport,
            agent: p.agent,
            call_id: p.call_id,
            bytes: p.bytes.to_vec(),
        };
        let at = if p.bytes.starts_with(b"INVITE ") {
            self.overtaken(&h)
        } else {
            None
        };
        match at {
            Some(i) => {
                self.reordered += 1;
                // It takes the place (and release time) of the response it overtakes, so the
                // queue stays in arrival order and nothing behind it waits longer.
                let mut h = h;
                h.arrival = self.held[i].arrival;
                self.held.insert(i, h);
            }
            None => self.held.push_back(h),
        }
    }

    /// Where an INVITE goes: before the first held response to it (same Call-ID and CSeq).
    fn overtaken(&self, invite: &Held) -> Option<usize> {
        let id = invite.call_id()?;
        let mut cseq = None;
        for (i, h) in self.held.iter().enumerate() {
            if h.call_id() != Some(id) || !is_response(&h.bytes) {
                continue;
            }
            let want = match cseq {
                Some(c) => c,
                None => {
                    let c = invite_cseq(&invite.bytes)?;
                    cseq = Some(c);
                    c
                }
            };
            if invite_cseq(&h.bytes) == Some(want) {
                return Some(i);
            }
        }
        None
    }

    /// Releases, in order, what has been held for `hold_us` at `now`.
    pub fn release(&mut self, now: Timestamp, out: &mut dyn FnMut(SipPayload<'_>)) {
        while self
            .held
            .front()
            .is_some_and(|h| now.0.saturating_sub(h.arrival.0) >= self.hold_us)
        {
            if let Some(h) = self.held.pop_front() {
                out(h.payload());
            }
        }
    }

    /// Releases everything (end of input).
    pub fn flush(&mut self, out: &mut dyn FnMut(SipPayload<'_>)) {
        while let Some(h) = self.held.pop_front() {
            out(h.payload());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: &str) -> Vec<u8> {
        text.replace('\n', "\r\n").into_bytes()
    }

    fn payload(bytes: &[u8], ts: i64) -> SipPayload<'_> {
        let start = memchr::memmem::find(bytes, b"Call-ID: ").unwrap() + 9;
        let end = start + memchr::memchr(b'\r', &bytes[start..]).unwrap();
        SipPayload {
            ts: Timestamp(ts),
            src: "192.0.2.1:5060".parse().unwrap(),
            dst: "192.0.2.2:5060".parse().unwrap(),
            transport: Transport::Udp,
            bytes,
            call_id: Some((start, end)),
            agent: Some(1),
        }
    }

    fn first_lines(out: &[Vec<u8>]) -> Vec<String> {
        out.iter()
            .map(|m| {
                String::from_utf8_lossy(m)
                    .lines()
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn an_invite_overtakes_its_held_responses_only() {
        let ringing = msg("SIP/2.0 180 Ringing\nCall-ID: a\nCSeq: 1 INVITE\nFrom: <sip:x@y>;tag=1\nTo: <sip:z@y>;tag=2\nVia: SIP/2.0/UDP h\nContent-Length: 0\n\n");
        let other = msg("SIP/2.0 180 Ringing\nCall-ID: b\nCSeq: 1 INVITE\nFrom: <sip:x@y>;tag=1\nTo: <sip:z@y>;tag=2\nVia: SIP/2.0/UDP h\nContent-Length: 0\n\n");
        let ok = msg("SIP/2.0 200 OK\nCall-ID: a\nCSeq: 1 INVITE\nFrom: <sip:x@y>;tag=1\nTo: <sip:z@y>;tag=2\nVia: SIP/2.0/UDP h\nContent-Length: 0\n\n");
        let invite = msg("INVITE sip:z@y SIP/2.0\nCall-ID: a\nCSeq: 1 INVITE\nFrom: <sip:x@y>;tag=1\nTo: <sip:z@y>\nVia: SIP/2.0/UDP h\nContent-Length: 0\n\n");
        let mut r = Reorder::new(20_000, 100);
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut sink = |p: SipPayload<'_>| out.push(p.bytes.to_vec());
        r.push(Timestamp(0), &payload(&other, 0), &mut sink);
        r.push(Timestamp(1_000), &payload(&ringing, 1), &mut sink);
        r.push(Timestamp(2_000), &payload(&ok, 2), &mut sink);
        r.push(Timestamp(3_000), &payload(&invite, 3), &mut sink);
        assert_eq!(r.len(), 4);
        r.release(Timestamp(21_500), &mut sink);
        assert_eq!(
            first_lines(&out),
            [
                "SIP/2.0 180 Ringing",
                "INVITE sip:z@y SIP/2.0",
                "SIP/2.0 180 Ringing"
            ]
        );
        assert_eq!(out[0], other);
        let mut sink = |p: SipPayload<'_>| out.push(p.bytes.to_vec());
        r.flush(&mut sink);
        assert_eq!(r.reordered, 1);
        assert_eq!(out.len(), 4);
        assert_eq!(out[3], ok);
    }

    #[test]
    fn the_hold_is_bounded() {
        let m = msg("OPTIONS sip:z@y SIP/2.0\nCall-ID: a\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n");
        let mut r = Reorder::new(1_000_000, 3);
        let mut n = 0;
        for i in 0..10 {
            r.push(Timestamp(i), &payload(&m, i), &mut |_| n += 1);
        }
        assert_eq!(r.len(), 3);
        assert_eq!(n, 7);
        assert_eq!(r.overflowed, 7);
    }
}
