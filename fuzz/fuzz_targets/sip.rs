//! Fuzz target: SIP framing (stream and datagram) and parsing of every framed message, down to
//! URIs, name-addrs, TN canonicalization, SDP and the header re-scan. The input is one TCP byte
//! stream (keep-alives allowed) and, at the same time, one UDP datagram.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shaken_sensor::sip::framing::{frame, keepalive_len, FrameMode, FrameOutcome};
use shaken_sensor::sip::header::split_list;
use shaken_sensor::sip::message::ParseLimits;
use shaken_sensor::sip::parse::parse;
use shaken_sensor::sip::sdp::parse_sdp;
use shaken_sensor::sip::tn::{canonical_tn_of, canonicalize};
use shaken_sensor::sip::uri::{params_iter, parse_name_addr, parse_uri};

const MAX_MESSAGE: usize = 16 << 10;

fn exercise(msg: &[u8]) {
    let limits = ParseLimits {
        max_headers: 64,
        max_header_line: 2048,
    };
    let Ok(m) = parse(msg, &limits) else { return };
    assert!(m.header_count as usize <= limits.max_headers);
    assert!(m.body.len() <= msg.len());
    for h in m.headers() {
        assert!(h.value.len() <= msg.len());
    }
    if let Some(ruri) = m.request_uri() {
        if let Ok(u) = parse_uri(ruri) {
            let _ = canonical_tn_of(&u);
            let _ = params_iter(u.params).count();
        }
    }
    for v in [Some(m.from), Some(m.to), m.pai, m.contact]
        .into_iter()
        .flatten()
    {
        for entry in split_list(v) {
            if let Ok(na) = parse_name_addr(entry) {
                if let Some(tn) = canonical_tn_of(&na.uri) {
                    // The normalizer is idempotent on its own output.
                    assert_eq!(canonicalize(tn.as_bytes()).as_ref(), Some(&tn));
                }
            }
        }
    }
    let _ = parse_sdp(m.body);
    for id in m.identity.as_slice() {
        let _ = shaken_sensor::shaken::identity::parse_identity(id);
    }
}

fuzz_target!(|data: &[u8]| {
    // As a stream: frame message after message, as the TCP reassembler does.
    let mut pos = 0;
    while pos < data.len() {
        pos += keepalive_len(&data[pos..]);
        let rest = &data[pos..];
        match frame(rest, FrameMode::Stream, MAX_MESSAGE) {
            FrameOutcome::Complete(f) => {
                assert!(f.len > 0 && f.len <= rest.len() && f.len <= MAX_MESSAGE);
                if let Some((s, e)) = f.call_id {
                    assert!(s <= e && e <= f.len);
                }
                exercise(&rest[..f.len]);
                pos += f.len;
            }
            _ => break,
        }
    }
    // As a datagram: the whole input is one message (or nothing).
    if let FrameOutcome::Complete(f) = frame(data, FrameMode::Datagram, MAX_MESSAGE) {
        assert!(f.len <= data.len());
        exercise(&data[..f.len]);
    }
    exercise(data);
});
