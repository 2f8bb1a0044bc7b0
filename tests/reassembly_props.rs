//! Property tests for IP fragment and TCP stream reassembly: any arrival order or segmentation
//! of valid input gives back exactly the original bytes or messages, and arbitrary input never
//! panics or breaks the byte and table limits. These tests must never depend on timing or on
//! anything outside the crate.

use proptest::prelude::*;
use shaken_sensor::capture::defrag::{
    DefragLimits, Defragmenter, Fragment, FragmentKey, Pushed, MAX_DATAGRAM, MAX_RANGES,
};
use shaken_sensor::capture::packet::SipPayload;
use shaken_sensor::capture::tcp::{TcpFlags, TcpLimits, TcpReassembler, TcpSegment};
use shaken_sensor::clock::Timestamp;
use shaken_sensor::sip::framing::{frame, keepalive_len, FrameMode, FrameOutcome};
use shaken_sensor::sip::message::ParseLimits;
use shaken_sensor::sip::parse::parse;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

fn frag_key(id: u32) -> FragmentKey {
    FragmentKey {
        src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        dst: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)),
        id,
        proto: 17,
    }
}

/// A datagram and the fragments it is cut into (sizes in 8-byte units, the last takes the rest),
/// in a random order.
fn fragmented() -> impl Strategy<Value = (Vec<u8>, Vec<(usize, usize)>)> {
    (
        prop::collection::vec(any::<u8>(), 1..9000),
        prop::collection::vec(1usize..=185, 1..64),
    )
        .prop_flat_map(|(data, units)| {
            let mut pieces = Vec::new();
            let mut off = 0;
            for u in units.iter().cycle() {
                if off >= data.len() {
                    break;
                }
                // The reassembler refuses datagrams of more than MAX_RANGES disjoint pieces (a
                // tiny-fragment flood); keep within it so any arrival order must succeed.
                let end = if pieces.len() + 1 == MAX_RANGES {
                    data.len()
                } else {
                    (off + u * 8).min(data.len())
                };
                pieces.push((off, end));
                off = end;
            }
            (Just(data), Just(pieces).prop_shuffle())
        })
}

fn sip_message() -> impl Strategy<Value = Vec<u8>> {
    (0usize..3, "[a-z0-9]{1,12}", 0usize..400).prop_map(|(kind, tag, body)| {
        let body_text: String = (0..body).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        match kind {
            0 => format!(
                "INVITE sip:+13035550177@192.0.2.1 SIP/2.0\r\nCall-ID: {tag}\r\n\
                 Content-Type: application/sdp\r\nContent-Length: {body}\r\n\r\n{body_text}"
            ),
            1 => format!("SIP/2.0 200 OK\r\ni: {tag}\r\nl: {body}\r\n\r\n{body_text}"),
            _ => format!("BYE sip:{tag}@h SIP/2.0\nCall-ID: {tag}\nContent-Length: 0\n\n"),
        }
        .into_bytes()
    })
}

/// A complete SIP message (request or response, long or compact header names, with or
/// without a body) and its Call-ID.
fn full_sip_message() -> impl Strategy<Value = (Vec<u8>, String)> {
    (any::<bool>(), any::<bool>(), "[a-zA-Z0-9]{1,16}(@[a-z]{1,8})?", 0usize..600).prop_map(
        |(request, compact, call_id, body)| {
            let body_text: String = (0..body).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            let (f, t, i, l) = if compact { ("f", "t", "i", "l") } else { ("From", "To", "Call-ID", "Content-Length") };
            let start = if request { "INVITE sip:+13035550177@192.0.2.1 SIP/2.0" } else { "SIP/2.0 183 Session Progress" };
            let m = format!(
                "{start}\r\nVia: SIP/2.0/TCP 192.0.2.9;branch=z9hG4bK1\r\n{f}: <sip:+12025550143@h>;tag=1\r\n\
                 {t}: <sip:+13035550177@h>\r\n{i}: {call_id}\r\nCSeq: 1 INVITE\r\n{l}: {body}\r\n\r\n{body_text}"
            );
            (m.into_bytes(), call_id)
        },
    )
}

/// Several messages with optional CRLF keep-alives before each.
fn sip_stream() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((sip_message(), 0usize..3), 1..6).prop_map(|parts| {
        let mut s = Vec::new();
        for (m, ka) in parts {
            for _ in 0..ka {
                s.extend_from_slice(b"\r\n");
            }
            s.extend_from_slice(&m);
        }
        s
    })
}

/// Framing the whole stream at once.
fn frame_all(stream: &[u8], max: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < stream.len() {
        pos += keepalive_len(&stream[pos..]);
        match frame(&stream[pos..], FrameMode::Stream, max) {
            FrameOutcome::Complete(f) => {
                out.push(stream[pos..pos + f.len].to_vec());
                pos += f.len;
            }
            _ => break,
        }
    }
    out
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), port)
}

fn collect_push(r: &mut TcpReassembler, seg: TcpSegment<'_>, got: &mut Vec<Vec<u8>>) {
    r.push(seg, &mut |p: SipPayload<'_>| {
        if let Some((s, e)) = p.call_id {
            assert!(s <= e && e <= p.bytes.len());
        }
        got.push(p.bytes.to_vec())
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_fragment_order_reassembles((data, pieces) in fragmented(), id in any::<u32>()) {
        let mut d = Defragmenter::new(DefragLimits::default());
        let n = pieces.len();
        for (i, &(s, e)) in pieces.iter().enumerate() {
            let r = d.push(Fragment {
                key: frag_key(id),
                offset: s,
                more: e < data.len(),
                data: &data[s..e],
                ts: Timestamp(i as i64),
            });
            if i + 1 < n {
                prop_assert_eq!(r, Pushed::Pending);
            } else {
                match r {
                    Pushed::Complete(c) => prop_assert_eq!(c.payload, data.clone()),
                    other => prop_assert!(false, "last fragment gave {:?}", other),
                }
            }
        }
        prop_assert_eq!(d.pending(), 0);
        prop_assert_eq!(d.buffered_bytes(), 0);
    }

    #[test]
    fn any_segmentation_frames_like_the_whole_stream(
        stream in sip_stream(),
        cuts in prop::collection::btree_set(1usize..4000, 0..40),
        resend in prop::collection::vec((any::<bool>(), any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..40),
        swaps in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        isn in prop_oneof![any::<u32>(), (u32::MAX - 5000)..=u32::MAX],
        mid_stream in any::<bool>(),
    ) {
        let max = 65_535;
        let expected = frame_all(&stream, max);
        prop_assert!(!expected.is_empty());

        let mut bounds: Vec<usize> = cuts.into_iter().filter(|&c| c < stream.len()).collect();
        bounds.insert(0, 0);
        bounds.push(stream.len());
        let mut segs: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
        // A few adjacent swaps: out-of-order delivery within the budget. A stream picked up
        // mid-connection starts at the first segment seen, so that one stays first there.
        let first_swappable = if mid_stream { 2 } else { 1 };
        for s in &swaps {
            if segs.len() > first_swappable + 1 {
                let i = first_swappable + s.index(segs.len() - first_swappable);
                segs.swap(i - 1, i);
            }
        }
        let mut r = TcpReassembler::new(TcpLimits::default());
        let (src, dst) = (addr(5060), addr(40000));
        let base = if mid_stream {
            isn
        } else {
            let syn = TcpFlags { syn: true, fin: false, rst: false };
            collect_push(&mut r, TcpSegment { ts: Timestamp(0), src, dst, seq: isn, flags: syn, payload: b"" }, &mut Vec::new());
            isn.wrapping_add(1)
        };
        let mut got = Vec::new();
        let mut sent: Vec<(usize, usize)> = Vec::new();
        for (i, &(s, e)) in segs.iter().enumerate() {
            let seg = TcpSegment { ts: Timestamp(i as i64), src, dst, seq: base.wrapping_add(s as u32), flags: TcpFlags::default(), payload: &stream[s..e] };
            collect_push(&mut r, seg, &mut got);
            sent.push((s, e));
            if let Some(&(again, a, b)) = resend.get(i) {
                if again {
                    // Retransmit an arbitrary byte range of what was already sent.
                    let (ps, pe) = sent[a.index(sent.len())];
                    let (x, y) = (ps + b.index(pe - ps + 1), pe);
                    let seg = TcpSegment { ts: Timestamp(i as i64), src, dst, seq: base.wrapping_add(x as u32), flags: TcpFlags::default(), payload: &stream[x..y] };
                    collect_push(&mut r, seg, &mut got);
                }
            }
        }
        // A mid-stream pickup finds every message when its first segment starts the stream;
        // when a swap put a later segment first, the messages before that are lost.
        if !mid_stream || segs[0].0 == 0 {
            prop_assert_eq!(&got, &expected);
        } else {
            prop_assert!(expected.ends_with(&got), "got {} of {}", got.len(), expected.len());
        }
        prop_assert_eq!(r.stats().gaps_skipped, 0);
        prop_assert_eq!(r.buffered_bytes(), 0);
    }

    #[test]
    fn defrag_garbage_never_panics_and_stays_bounded(
        ops in prop::collection::vec((0u32..6, 0usize..70_000, 0usize..3000, any::<bool>(), any::<u8>(), 0i64..100), 1..200),
    ) {
        let limits = DefragLimits { max_datagrams: 4, max_bytes: 20_000, timeout_us: 50 };
        let mut d = Defragmenter::new(limits);
        let mut t = 0i64;
        for (id, offset, len, more, fill, dt) in ops {
            t += dt;
            let data = vec![fill; len];
            match d.push(Fragment { key: frag_key(id), offset, more, data: &data, ts: Timestamp(t) }) {
                Pushed::Complete(c) => {
                    prop_assert!(c.payload.len() <= MAX_DATAGRAM);
                    d.recycle(c.payload);
                }
                Pushed::Pending | Pushed::Dropped(_) => {}
            }
            prop_assert!(d.pending() <= 4);
            prop_assert!(d.buffered_bytes() <= 20_000);
            if dt > 90 {
                d.expire(Timestamp(t));
            }
        }
        d.expire(Timestamp(i64::MAX));
        prop_assert_eq!(d.pending(), 0);
        prop_assert_eq!(d.buffered_bytes(), 0);
    }

    #[test]
    fn tcp_garbage_never_panics_and_stays_bounded(
        ops in prop::collection::vec((
            0u16..6,
            prop_oneof![any::<u32>(), 0u32..5000, (u32::MAX - 3000)..=u32::MAX],
            0u8..8,
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..1500),
                sip_message(),
                "(INVITE sip:|SIP/2.0 200 |\r\n|Content-Length: 99999\r\n|l: 3\r\n|[a-z:]{0,20}|\r\n\r\n){0,30}".prop_map(String::into_bytes),
            ],
            0i64..1_000_000,
        ), 1..150),
    ) {
        let limits = TcpLimits {
            max_streams: 4,
            max_stream_bytes: 2048,
            max_total_bytes: 4096,
            idle_timeout_us: 5_000_000,
            max_message: 1024,
        };
        let mut r = TcpReassembler::new(limits);
        let mut t = 0i64;
        for (port, seq, flags, payload, dt) in ops {
            t += dt;
            let flags = TcpFlags { syn: flags & 1 != 0, fin: flags & 2 != 0 && flags & 1 == 0, rst: flags == 4 };
            let (src, dst) = if port % 2 == 0 { (addr(port), addr(5060)) } else { (addr(5060), addr(port - 1)) };
            let mut got = Vec::new();
            collect_push(&mut r, TcpSegment { ts: Timestamp(t), src, dst, seq, flags, payload: &payload }, &mut got);
            for m in &got {
                prop_assert!(!m.is_empty() && m.len() <= 1024);
            }
            prop_assert!(r.active_streams() <= 4);
            prop_assert!(r.buffered_bytes() <= 4096);
            if dt > 900_000 {
                r.expire(Timestamp(t));
            }
        }
        r.expire(Timestamp(i64::MAX));
        prop_assert_eq!(r.active_streams(), 0);
        prop_assert_eq!(r.buffered_bytes(), 0);
    }

    /// The messages themselves, not the framer's view of the whole stream: several complete
    /// SIP messages sent back to back (with keep-alives) over one TCP connection come out of
    /// the reassembler byte for byte, in order, each parsing with the Call-ID it was given and
    /// with the framer's Call-ID offsets on it, for any cut of the stream into segments.
    #[test]
    fn several_messages_over_any_segmentation_come_out_unchanged(
        msgs in prop::collection::vec((full_sip_message(), 0usize..3), 2..8),
        cuts in prop::collection::btree_set(1usize..6000, 0..80),
        isn in any::<u32>(),
    ) {
        let mut stream = Vec::new();
        for ((m, _), keepalives) in &msgs {
            for _ in 0..*keepalives {
                stream.extend_from_slice(b"\r\n");
            }
            stream.extend_from_slice(m);
        }
        let mut bounds: Vec<usize> = cuts.into_iter().filter(|&c| c < stream.len()).collect();
        bounds.insert(0, 0);
        bounds.push(stream.len());
        let mut r = TcpReassembler::new(TcpLimits::default());
        let (src, dst) = (addr(40001), addr(5060));
        let syn = TcpFlags { syn: true, fin: false, rst: false };
        r.push(TcpSegment { ts: Timestamp(0), src, dst, seq: isn, flags: syn, payload: b"" }, &mut |_| {});
        let mut got: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        for (i, w) in bounds.windows(2).enumerate() {
            let seq = isn.wrapping_add(1).wrapping_add(w[0] as u32);
            let seg = TcpSegment { ts: Timestamp(i as i64 + 1), src, dst, seq, flags: TcpFlags::default(), payload: &stream[w[0]..w[1]] };
            r.push(seg, &mut |p: SipPayload<'_>| {
                got.push((p.bytes.to_vec(), p.call_id.map(|(s, e)| p.bytes[s..e].to_vec())));
            });
        }
        let want: Vec<(Vec<u8>, Option<Vec<u8>>)> =
            msgs.iter().map(|((m, id), _)| (m.clone(), Some(id.clone().into_bytes()))).collect();
        prop_assert_eq!(&got, &want);
        let limits = ParseLimits::default();
        for ((m, id), _) in &msgs {
            let parsed = parse(m, &limits);
            prop_assert!(parsed.is_ok(), "{:?}: {}", parsed, String::from_utf8_lossy(m));
            prop_assert_eq!(parsed.unwrap().call_id, id.as_bytes());
        }
        prop_assert_eq!(r.buffered_bytes(), 0);
        prop_assert_eq!(r.stats().messages, msgs.len() as u64);
    }
}
