//! Fuzz target: packet decode (link layer -> IP -> UDP/TCP -> framed SIP), stateful across
//! frames so fragments and TCP segments of one input meet in the same tables.
//! Input: [link type selector] then records [u16 length][frame bytes].
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use shaken_sensor::capture::decode::{linktype, DecodeSettings, Decoder};
use shaken_sensor::capture::defrag::DefragLimits;
use shaken_sensor::capture::packet::SipPayload;
use shaken_sensor::capture::tcp::TcpLimits;
use shaken_sensor::clock::Timestamp;

const LINKTYPES: [i32; 11] = [
    linktype::ETHERNET,
    linktype::NULL,
    linktype::RAW_OPENBSD,
    linktype::RAW_BSDOS,
    linktype::RAW,
    linktype::LOOP,
    linktype::LINUX_SLL,
    linktype::IPV4,
    linktype::IPV6,
    linktype::LINUX_SLL2,
    12345,
];
const MAX_MESSAGE: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let mut c = common::Cursor::new(data);
    let Some(sel) = c.u8() else { return };
    let lt = LINKTYPES[usize::from(sel) % LINKTYPES.len()];
    let mut settings = DecodeSettings::new(&[5060, 5061], sel & 0x80 != 0, MAX_MESSAGE);
    // Small tables so that eviction paths run within one input.
    settings.defrag = DefragLimits {
        max_datagrams: 4,
        max_bytes: 16 << 10,
        timeout_us: 5_000,
    };
    settings.tcp = TcpLimits {
        max_streams: 4,
        max_stream_bytes: 8 << 10,
        max_total_bytes: 16 << 10,
        idle_timeout_us: 5_000,
        max_message: MAX_MESSAGE,
    };
    let mut d = Decoder::new(settings);
    let mut t = 0i64;
    while let Some(frame) = c.body() {
        t += 1_000;
        d.decode(lt, Timestamp(t), frame, &mut |p: SipPayload<'_>| {
            assert!(p.bytes.len() <= MAX_MESSAGE, "message over the limit");
            if let Some((s, e)) = p.call_id {
                assert!(s <= e && e <= p.bytes.len(), "Call-ID offsets out of range");
            }
        });
        assert!(d.defrag().pending() <= 4);
        assert!(d.defrag().buffered_bytes() <= 16 << 10);
        assert!(d.tcp().active_streams() <= 4);
        assert!(d.tcp().buffered_bytes() <= 16 << 10);
        if t % 8_000 == 0 {
            d.expire(Timestamp(t));
        }
    }
    d.expire(Timestamp(i64::MAX / 2));
    assert_eq!(d.defrag().pending(), 0);
    assert_eq!(d.tcp().active_streams(), 0);
});
