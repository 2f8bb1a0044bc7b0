//! Fuzz target: TCP stream reassembly and SIP framing. The input is a sequence of segments:
//! [selector: stream (bits 0-1), reverse direction (bit 2), expire first (bit 3)] [u32 seq]
//! [flags: SYN bit 0, FIN bit 1, RST bit 2] [u16 length][payload]. Checks the stream table and
//! byte bounds after every segment and the framing of every message delivered.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use shaken_sensor::capture::packet::SipPayload;
use shaken_sensor::capture::tcp::{TcpFlags, TcpLimits, TcpReassembler, TcpSegment};
use shaken_sensor::clock::Timestamp;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

const LIMITS: TcpLimits = TcpLimits {
    max_streams: 3,
    max_stream_bytes: 6 << 10,
    max_total_bytes: 12 << 10,
    idle_timeout_us: 50,
    max_message: 4096,
};

fuzz_target!(|data: &[u8]| {
    let mut c = common::Cursor::new(data);
    let mut r = TcpReassembler::new(LIMITS);
    let mut t = 0i64;
    loop {
        let (Some(sel), Some(seq), Some(flags)) = (c.u8(), c.u32(), c.u8()) else {
            break;
        };
        let Some(payload) = c.body() else { break };
        t += 1;
        if sel & 8 != 0 {
            r.expire(Timestamp(t));
        }
        let a = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 5060);
        let b = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)),
            40000 + u16::from(sel & 3),
        );
        let (src, dst) = if sel & 4 != 0 { (b, a) } else { (a, b) };
        let seg = TcpSegment {
            ts: Timestamp(t),
            src,
            dst,
            seq,
            flags: TcpFlags {
                syn: flags & 1 != 0,
                fin: flags & 2 != 0,
                rst: flags & 4 != 0,
            },
            payload,
        };
        r.push(seg, &mut |p: SipPayload<'_>| {
            assert!(!p.bytes.is_empty());
            assert!(
                p.bytes.len() <= LIMITS.max_message,
                "message over the limit"
            );
            if let Some((s, e)) = p.call_id {
                assert!(s <= e && e <= p.bytes.len(), "Call-ID offsets out of range");
            }
        });
        assert!(r.active_streams() <= LIMITS.max_streams);
        assert!(r.buffered_bytes() <= LIMITS.max_total_bytes);
    }
    r.expire(Timestamp(t + 1_000));
    assert_eq!(r.active_streams(), 0);
    assert_eq!(r.buffered_bytes(), 0);
});
