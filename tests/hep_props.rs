//! The HEP decoder through the capture decoder's public API: what a HEP packet yields (the
//! message with the addresses, time and agent id of its chunks, never of the packet that
//! carried it), what it refuses and how that is counted, and properties: any bytes, and any
//! corruption of a valid packet, never panic; every encodable packet parses back to its fields.

use proptest::prelude::*;
use shaken_sensor::capture::decode::{DecodeSettings, Decoder, HepSettings};
use shaken_sensor::capture::hep::{self, encode_v3, parse, Hep3Out, HepError, Payload};
use shaken_sensor::capture::packet::Transport;
use shaken_sensor::clock::Timestamp;
use std::net::SocketAddr;

const INVITE: &[u8] = b"INVITE sip:13035550177@198.51.100.20 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5071;branch=z9hG4bK1\r\n\
From: <sip:12025550143@192.0.2.10>;tag=1\r\nTo: <sip:13035550177@198.51.100.20>\r\n\
Call-ID: hep-props-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";

fn out<'a>(payload: &'a [u8], key: Option<&'a [u8]>) -> Hep3Out<'a> {
    Hep3Out {
        src: "192.0.2.10:5071".parse().unwrap(),
        dst: "198.51.100.20:5060".parse().unwrap(),
        ip_proto: 17,
        ts: Timestamp::from_parts(1_795_000_000, 250_000),
        capture_id: 2001,
        auth_key: key,
        correlation_id: None,
        payload,
    }
}

fn encoded(o: &Hep3Out<'_>) -> Vec<u8> {
    let mut b = Vec::new();
    encode_v3(o, &mut b).unwrap();
    b
}

fn decoder(hep: HepSettings) -> Decoder {
    let mut s = DecodeSettings::new(&[5060], false, 65535);
    s.hep = hep;
    Decoder::new(s)
}

/// (ts, src, dst, transport, agent, bytes) of every message the decoder yields.
type Seen = (
    Timestamp,
    SocketAddr,
    SocketAddr,
    Transport,
    Option<u32>,
    Vec<u8>,
);

fn feed(d: &mut Decoder, packet: &[u8]) -> Vec<Seen> {
    let mut v = Vec::new();
    d.decode_hep(Timestamp::from_secs(1), packet, &mut |p| {
        v.push((p.ts, p.src, p.dst, p.transport, p.agent, p.bytes.to_vec()))
    });
    v
}

#[test]
fn a_hep_packet_yields_its_message_with_the_chunks_addresses_time_and_agent() {
    let mut d = decoder(HepSettings::default());
    let got = feed(&mut d, &encoded(&out(INVITE, None)));
    assert_eq!(got.len(), 1);
    let (ts, src, dst, transport, agent, bytes) = &got[0];
    assert_eq!(*ts, Timestamp::from_parts(1_795_000_000, 250_000));
    assert_eq!(*src, "192.0.2.10:5071".parse().unwrap());
    assert_eq!(*dst, "198.51.100.20:5060".parse().unwrap());
    assert_eq!(*transport, Transport::Udp);
    assert_eq!(*agent, Some(2001));
    assert_eq!(bytes, INVITE);
    assert_eq!(d.stats.sip_messages, 1);
    assert_eq!(d.stats.error_total(), 0);
}

#[test]
fn tcp_and_tls_agents_record_tcp_and_compressed_payloads_inflate() {
    use std::io::Write;
    let mut d = decoder(HepSettings::default());
    for proto in [6u8, 22] {
        let mut o = out(INVITE, None);
        o.ip_proto = proto;
        assert_eq!(feed(&mut d, &encoded(&o))[0].3, Transport::Tcp);
    }
    // A compressed payload chunk (0x0010) written by hand: encode_v3 only writes plain ones.
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(INVITE).unwrap();
    let z = z.finish().unwrap();
    let mut b = encoded(&out(b"x", None));
    b.truncate(b.len() - 7);
    b.extend_from_slice(&[0, 0, 0, 0x10]);
    b.extend_from_slice(&((z.len() + 6) as u16).to_be_bytes());
    b.extend_from_slice(&z);
    let len = (b.len() as u16).to_be_bytes();
    b[4..6].copy_from_slice(&len);
    assert!(matches!(parse(&b).unwrap().payload, Payload::Compressed(_)));
    assert_eq!(feed(&mut d, &b)[0].5, INVITE);
}

#[test]
fn auth_key_leg_ports_and_non_sip_payloads() {
    let key = HepSettings {
        auth_key: Some(b"s3cret".to_vec()),
        ..HepSettings::default()
    };
    let mut d = decoder(key);
    assert!(feed(&mut d, &encoded(&out(INVITE, None))).is_empty());
    assert!(feed(&mut d, &encoded(&out(INVITE, Some(b"wrong")))).is_empty());
    assert_eq!(
        feed(&mut d, &encoded(&out(INVITE, Some(b"s3cret")))).len(),
        1
    );
    assert_eq!(d.stats.errors.get("hep_auth_failed"), Some(&2));

    let mut d = decoder(HepSettings {
        leg_ports: vec![5062],
        ..HepSettings::default()
    });
    assert!(feed(&mut d, &encoded(&out(INVITE, None))).is_empty());
    let mut o = out(INVITE, None);
    o.dst = "198.51.100.20:5062".parse().unwrap();
    assert_eq!(feed(&mut d, &encoded(&o)).len(), 1);
    assert_eq!(d.stats.ignored, 1);
    assert_eq!(d.stats.error_total(), 0);

    // RTCP (protocol type 5) on the same feed: ignored, not an error.
    let mut b = encoded(&out(b"rtcp report", None));
    let at = b
        .windows(6)
        .position(|w| w == [0, 0, 0, 0x0b, 0, 7])
        .unwrap();
    b[at + 6] = 5;
    let mut d = decoder(HepSettings::default());
    assert!(feed(&mut d, &b).is_empty());
    assert_eq!(d.stats.ignored, 1);
    assert_eq!(d.stats.error_total(), 0);
}

#[test]
fn malformed_packets_are_counted_by_kind() {
    let mut d = decoder(HepSettings::default());
    let good = encoded(&out(INVITE, None));
    feed(&mut d, &good[..good.len() - 3]);
    feed(&mut d, b"HEP3\x00\x02");
    feed(&mut d, b"\x09garbage");
    feed(&mut d, b"HEP3\x00\x0c\x00\x00\x00\x0f\x00\x06");
    assert_eq!(d.stats.errors.get("hep_truncated"), Some(&1));
    assert_eq!(d.stats.errors.get("hep_bad_length"), Some(&1));
    assert_eq!(d.stats.errors.get("hep_not_hep"), Some(&1));
    assert_eq!(d.stats.errors.get("hep_missing_address"), Some(&1));
    assert_eq!(d.stats.frames, 4);
}

#[test]
fn hep_inside_a_capture_is_decoded_on_the_configured_ports() {
    // An Ethernet/IPv4/UDP frame from an agent (10.0.0.9) to the collector port 9060.
    let hep_pkt = encoded(&out(INVITE, None));
    let udp_len = 8 + hep_pkt.len();
    let mut f = vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 8, 0];
    f.extend_from_slice(&[
        0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 9, 10, 0, 0, 1,
    ]);
    let ip_len = (20 + udp_len) as u16;
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&9060u16.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&hep_pkt);
    for (ports, want) in [(vec![9060], 1), (vec![], 0)] {
        let mut d = decoder(HepSettings {
            pcap_ports: ports,
            ..HepSettings::default()
        });
        let mut got = Vec::new();
        d.decode(1, Timestamp::from_secs(5), &f, &mut |p| {
            got.push((p.src, p.ts, p.agent))
        });
        assert_eq!(got.len(), want);
        if want == 1 {
            assert_eq!(
                got[0],
                (
                    "192.0.2.10:5071".parse().unwrap(),
                    Timestamp::from_parts(1_795_000_000, 250_000),
                    Some(2001)
                )
            );
        }
    }
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(a, p)| SocketAddr::from((a, p))),
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(a, p)| SocketAddr::from((std::net::Ipv6Addr::from(a), p))),
    ]
}

proptest! {
    #[test]
    fn any_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse(&b);
        let _ = hep::frame_len(&b);
        let mut d = decoder(HepSettings { auth_key: Some(b"k".to_vec()), ..HepSettings::default() });
        feed(&mut d, &b);
        let mut d = decoder(HepSettings::default());
        feed(&mut d, &b);
        prop_assert_eq!(d.stats.frames, 1);
    }

    #[test]
    fn corrupted_packets_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut b = encoded(&out(INVITE, Some(b"key")));
        for (i, v) in flips {
            let i = i.index(b.len());
            b[i] = v;
        }
        let n = cut.index(b.len() + 1);
        let mut d = decoder(HepSettings::default());
        feed(&mut d, &b[..n]);
        let _ = parse(&b);
    }

    #[test]
    fn encoded_fields_parse_back(
        src in addr(),
        dst in addr(),
        secs in 0i64..4_000_000_000,
        usecs in 0i64..1_000_000,
        capture_id in any::<u32>(),
        key in prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
        corr in prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
        payload in prop::collection::vec(any::<u8>(), 0..2000),
    ) {
        let o = Hep3Out {
            src, dst, ip_proto: 17, ts: Timestamp::from_parts(secs, usecs), capture_id,
            auth_key: key.as_deref(), correlation_id: corr.as_deref(), payload: &payload,
        };
        let b = encoded(&o);
        let p = parse(&b).unwrap();
        // An IPv4 address beside an IPv6 one is written as its IPv4-mapped form.
        let v6 = src.is_ipv6() || dst.is_ipv6();
        let norm = |a: SocketAddr| match (v6, a) {
            (true, SocketAddr::V4(x)) => SocketAddr::from((x.ip().to_ipv6_mapped(), x.port())),
            _ => a,
        };
        prop_assert_eq!(p.src, norm(src));
        prop_assert_eq!(p.dst, norm(dst));
        prop_assert_eq!(p.ts, Some(o.ts));
        prop_assert_eq!(p.capture_id, Some(capture_id));
        prop_assert_eq!(p.auth_key, o.auth_key);
        prop_assert_eq!(p.correlation_id, o.correlation_id);
        prop_assert_eq!(p.payload, Payload::Plain(&payload));
        prop_assert_eq!(hep::frame_len(&b), Ok(Some(b.len())));
    }
}

#[test]
fn an_oversized_payload_is_not_encoded() {
    let big = vec![b'x'; 65_500];
    let mut b = Vec::new();
    assert!(encode_v3(&out(&big, None), &mut b).is_none());
    assert!(b.is_empty());
    assert_eq!(parse(b"HE"), Err(HepError::Truncated));
}
