//! The fuzz harnesses, one function per target: each takes one fuzzer input, drives a stage of
//! the sensor with it and asserts that stage's invariants (bounds, offsets, idempotence). The
//! cargo-fuzz targets in fuzz_targets/ call these, and so does tests/fuzz_regressions.rs with
//! every committed crash input, so a regression test runs exactly what the fuzzer ran.
//! Nothing here may depend on libfuzzer; an assertion failure or panic here is a finding.
#![allow(dead_code)]
use shaken_sensor::capture::decode::{linktype, DecodeSettings, Decoder};
use shaken_sensor::capture::defrag::{
    DefragLimits, Defragmenter, Fragment, FragmentKey, Pushed, MAX_DATAGRAM,
};
use shaken_sensor::capture::packet::SipPayload;
use shaken_sensor::capture::tcp::{TcpFlags, TcpLimits, TcpReassembler, TcpSegment};
use shaken_sensor::clock::Timestamp;
use shaken_sensor::shaken::certs::{
    parse_and_validate, parse_cert, parse_chain_only, TrustAnchors,
};
use shaken_sensor::shaken::identity::{parse_identity, IdentityHeader};
use shaken_sensor::shaken::passport::{self, split_jws};
use shaken_sensor::shaken::tnauth::parse_tn_auth_list;
use shaken_sensor::sip::framing::{frame, keepalive_len, FrameMode, FrameOutcome};
use shaken_sensor::sip::header::split_list;
use shaken_sensor::sip::message::ParseLimits;
use shaken_sensor::sip::parse::parse;
use shaken_sensor::sip::sdp::parse_sdp;
use shaken_sensor::sip::tn::{canonical_tn_of, canonicalize};
use shaken_sensor::sip::uri::{params_iter, parse_name_addr, parse_uri};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;
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
const DECODE_MAX_MESSAGE: usize = 4096;

/// Fuzz target: packet decode (link layer -> IP -> UDP/TCP -> framed SIP), stateful across
/// frames so fragments and TCP segments of one input meet in the same tables.
/// Input: [link type selector] then records [u16 length][frame bytes].
pub fn decode(data: &[u8]) {
    let mut c = Cursor::new(data);
    let Some(sel) = c.u8() else { return };
    let lt = LINKTYPES[usize::from(sel) % LINKTYPES.len()];
    let mut settings = DecodeSettings::new(&[5060, 5061], sel & 0x80 != 0, DECODE_MAX_MESSAGE);
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
        max_message: DECODE_MAX_MESSAGE,
    };
    let mut d = Decoder::new(settings);
    let mut t = 0i64;
    while let Some(frame) = c.body() {
        t += 1_000;
        d.decode(lt, Timestamp(t), frame, &mut |p: SipPayload<'_>| {
            assert!(
                p.bytes.len() <= DECODE_MAX_MESSAGE,
                "message over the limit"
            );
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
}

/// Fuzz target: HEP packets (v1/v2/v3, compressed payloads) through the capture decoder.
/// Input: [selector: auth key on (bit 0), leg port filter on (bit 1), reorder hold on (bit 2)]
/// then one HEP packet.
/// Messages stay within the size limit and inside an unchanged parse of the same bytes.
pub fn hep(data: &[u8]) {
    use shaken_sensor::capture::decode::HepSettings;
    use shaken_sensor::capture::hep;
    let Some((&sel, packet)) = data.split_first() else {
        return;
    };
    let mut settings = DecodeSettings::new(&[5060], false, DECODE_MAX_MESSAGE);
    settings.hep = HepSettings {
        pcap_ports: vec![9060],
        auth_key: (sel & 1 != 0).then(|| b"key".to_vec()),
        leg_ports: if sel & 2 != 0 { vec![5060] } else { vec![] },
        reorder_us: if sel & 4 != 0 { 1_000 } else { 0 },
        reorder_max: 4,
    };
    let mut d = Decoder::new(settings);
    let mut n = 0u64;
    let mut check = |p: SipPayload<'_>| {
        assert!(
            p.bytes.len() <= DECODE_MAX_MESSAGE,
            "message over the limit"
        );
        n += 1;
    };
    d.decode_hep(Timestamp(1), packet, &mut check);
    d.flush_held(&mut check);
    if n > 0 {
        let parsed = hep::parse(packet).expect("a packet that yielded SIP parses");
        assert_eq!(parsed.proto_type, hep::PROTO_SIP);
        if sel & 1 != 0 {
            assert_eq!(parsed.auth_key, Some(&b"key"[..]));
        }
    }
    assert_eq!(d.stats.frames, 1);
    let _ = hep::frame_len(packet);
}

const DEFRAG_LIMITS: DefragLimits = DefragLimits {
    max_datagrams: 4,
    max_bytes: 24 << 10,
    timeout_us: 50,
};

/// Fuzz target: IPv4/IPv6 fragment reassembly. The input is a sequence of fragments:
/// [selector: id (bits 0-2), IPv6 (bit 3), expire first (bit 4)] [u16 offset in 8-byte units,
/// 13 bits] [flags: more (bit 0)] [u16 length][data]. Checks the table bounds after every push.
pub fn defrag(data: &[u8]) {
    let mut c = Cursor::new(data);
    let mut d = Defragmenter::new(DEFRAG_LIMITS);
    let mut t = 0i64;
    while let (Some(sel), Some(off), Some(flags)) = (c.u8(), c.u16(), c.u8()) {
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
        assert!(d.pending() <= DEFRAG_LIMITS.max_datagrams);
        assert!(d.buffered_bytes() <= DEFRAG_LIMITS.max_bytes);
    }
    d.expire(Timestamp(t + 1_000));
    assert_eq!(d.pending(), 0);
    assert_eq!(d.buffered_bytes(), 0);
}

const TCP_LIMITS: TcpLimits = TcpLimits {
    max_streams: 3,
    max_stream_bytes: 6 << 10,
    max_total_bytes: 12 << 10,
    idle_timeout_us: 50,
    max_message: 4096,
};

/// Fuzz target: TCP stream reassembly and SIP framing. The input is a sequence of segments:
/// [selector: stream (bits 0-1), reverse direction (bit 2), expire first (bit 3)] [u32 seq]
/// [flags: SYN bit 0, FIN bit 1, RST bit 2] [u16 length][payload]. Checks the stream table and
/// byte bounds after every segment and the framing of every message delivered.
pub fn tcp(data: &[u8]) {
    let mut c = Cursor::new(data);
    let mut r = TcpReassembler::new(TCP_LIMITS);
    let mut t = 0i64;
    while let (Some(sel), Some(seq), Some(flags)) = (c.u8(), c.u32(), c.u8()) {
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
                p.bytes.len() <= TCP_LIMITS.max_message,
                "message over the limit"
            );
            if let Some((s, e)) = p.call_id {
                assert!(s <= e && e <= p.bytes.len(), "Call-ID offsets out of range");
            }
        });
        assert!(r.active_streams() <= TCP_LIMITS.max_streams);
        assert!(r.buffered_bytes() <= TCP_LIMITS.max_total_bytes);
    }
    r.expire(Timestamp(t + 1_000));
    assert_eq!(r.active_streams(), 0);
    assert_eq!(r.buffered_bytes(), 0);
}

const SIP_MAX_MESSAGE: usize = 16 << 10;

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
                    // A canonical TN is E.164 digits: read back as E.164 it is a fixed point.
                    // (Read back without the '+', a 10-digit one starting 2-9 is taken for
                    // NANP and gains a 1: the first sip finding, see fuzz_regressions.rs.)
                    let mut e164 = b"+".to_vec();
                    e164.extend_from_slice(tn.as_bytes());
                    assert_eq!(canonicalize(&e164).as_ref(), Some(&tn));
                }
            }
        }
    }
    let _ = parse_sdp(m.body);
    for id in m.identity.as_slice() {
        let _ = shaken_sensor::shaken::identity::parse_identity(id);
    }
}

/// Fuzz target: SIP framing (stream and datagram) and parsing of every framed message, down to
/// URIs, name-addrs, TN canonicalization, SDP and the header re-scan. The input is one TCP byte
/// stream (keep-alives allowed) and, at the same time, one UDP datagram.
pub fn sip(data: &[u8]) {
    // As a stream: frame message after message, as the TCP reassembler does.
    let mut pos = 0;
    while pos < data.len() {
        pos += keepalive_len(&data[pos..]);
        let rest = &data[pos..];
        match frame(rest, FrameMode::Stream, SIP_MAX_MESSAGE) {
            FrameOutcome::Complete(f) => {
                assert!(f.len > 0 && f.len <= rest.len() && f.len <= SIP_MAX_MESSAGE);
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
    if let FrameOutcome::Complete(f) = frame(data, FrameMode::Datagram, SIP_MAX_MESSAGE) {
        assert!(f.len <= data.len());
        exercise(&data[..f.len]);
    }
    exercise(data);
}

/// Fuzz target: Identity header parsing (RFC 8224) and PASSporT decoding (RFC 8225/8588):
/// the input is an Identity header value; its token is split as a compact JWS and decoded.
/// The input is also tried directly as a compact JWS under a minimal header.
pub fn identity(data: &[u8]) {
    if let Ok(id) = parse_identity(data) {
        assert!(id.token.len() <= data.len());
        if let Ok(jws) = split_jws(id.token) {
            if let Ok(p) = passport::decode(&jws, &id) {
                assert!(!p.x5u.is_empty());
            }
        }
    }
    if let Ok(jws) = split_jws(data) {
        assert_eq!(
            jws.signing_input.len() + 1 + jws.signature.len(),
            data.len()
        );
        let id = IdentityHeader {
            token: data,
            info: None,
            alg: None,
            ppt: None,
        };
        let _ = passport::decode(&jws, &id);
    }
}

static ANCHOR_PEM: &[u8] = include_bytes!("anchor.pem");

fn anchors() -> &'static TrustAnchors {
    static A: OnceLock<TrustAnchors> = OnceLock::new();
    A.get_or_init(|| TrustAnchors::from_pem(ANCHOR_PEM).expect("fuzz/anchor.pem parses"))
}

/// Fuzz target: certificate and TNAuthList parsing. The first byte picks the entry point: one
/// DER certificate, an x5u body (PEM bundle or DER), a TNAuthList extension value, or a full
/// chain validation against a fixed test root (fuzz/anchor.pem, a public certificate only).
pub fn certs(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    match sel % 4 {
        0 => {
            if let Ok(c) = parse_cert(rest) {
                let _ = c.serial_hex();
                let _ = c.spc();
                let _ = c.check_validity_at(1_700_000_000);
            }
        }
        1 => {
            let _ = parse_chain_only(rest);
        }
        2 => {
            if let Ok(t) = parse_tn_auth_list(rest) {
                let _ = t.spc();
                let _ = t.unknown_text();
            }
        }
        _ => {
            if let Ok(chain) = parse_and_validate(rest, anchors()) {
                let _ = chain.check_validity(1_700_000_000, 1_700_000_000);
                let _ = chain.crl_urls();
                let _ = chain.subject();
            }
        }
    }
}

/// Input cursor: turns one flat fuzzer input into a sequence of records (fixed-size fields,
/// then a length-prefixed body). Every read past the end returns None.
struct Cursor<'a> {
    pub rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { rest: data }
    }

    pub fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(b)
    }

    pub fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (a, b) = self.rest.split_at(n);
        self.rest = b;
        Some(a)
    }

    /// A u16 length, then up to that many bytes (the rest of the input when shorter).
    pub fn body(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u16()?).min(self.rest.len());
        self.take(n)
    }
}
