//! Fuzz target: IPv4/IPv6 fragment reassembly. The input is a sequence of fragments:
//! [selector: id (bits 0-2), IPv6 (bit 3), expire first (bit 4)] [u16 offset in 8-byte units,
//! 13 bits] [flags: more (bit 0)] [u16 length][data]. Checks the table bounds after every push.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use shaken_sensor::capture::defrag::{
    DefragLimits, Defragmenter, Fragment, FragmentKey, Pushed, MAX_DATAGRAM,
};
use shaken_sensor::clock::Timestamp;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const LIMITS: DefragLimits = DefragLimits {
    max_datagrams: 4,
    max_bytes: 24 << 10,
    timeout_us: 50,
};

fuzz_target!(|data: &[u8]| {
    let mut c = common::Cursor::new(data);
    let mut d = Defragmenter::new(LIMITS);
    let mut t = 0i64;
    loop {
        let (Some(sel), Some(off), Some(flags)) = (c.u8(), c.u16(), c.u8()) else {
            break;
        };
        let Some(body) = c.body() else { break };
        t += 1;
        let (src, dst) = if sel & 8 != 0 {
            (
                IpAddr::V6(Ipv6Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            )
        } else {
            (
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            )
        };
        if sel & 16 != 0 {
            d.expire(Timestamp(t));
        }
        let frag = Fragment {
            key: FragmentKey {
                src,
                dst,
                id: u32::from(sel & 7),
                proto: 17,
            },
            offset: usize::from(off & 0x1fff) * 8,
            more: flags & 1 != 0,
            data: body,
            ts: Timestamp(t),
        };
        match d.push(frag) {
            Pushed::Complete(r) => {
                assert!(r.payload.len() <= MAX_DATAGRAM);
                assert!(r.payload.len() >= body.len());
                d.recycle(r.payload);
            }
            Pushed::Pending | Pushed::Dropped(_) => {}
        }
        assert!(d.pending() <= LIMITS.max_datagrams);
        assert!(d.buffered_bytes() <= LIMITS.max_bytes);
    }
    d.expire(Timestamp(t + 1_000));
    assert_eq!(d.pending(), 0);
    assert_eq!(d.buffered_bytes(), 0);
});
