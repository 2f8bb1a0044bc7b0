//! HEP (Homer Encapsulation Protocol) v1/v2/v3: the wire format SIP proxies and SBCs (Kamailio
//! `siptrace`, OpenSIPS `proto_hep`, FreeSWITCH, Asterisk `res_hep`, heplify) use to mirror the
//! SIP they handle, with the original addresses and capture time attached.
//!
//! [`parse`] takes one HEP packet and returns a view borrowed from it; [`encode_v3`] writes one
//! (for `[export.hep]` and tests); [`inflate`] expands a compressed payload chunk into a caller's
//! buffer with a hard size cap. Every field is checked against the bytes present: nothing here
//! may panic, allocate without a bound, or trust a length it has not checked.

use crate::clock::Timestamp;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub const HEP3_MAGIC: &[u8; 4] = b"HEP3";
/// HEP protocol type of SIP (chunk 0x000b).
pub const PROTO_SIP: u8 = 1;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const CHUNK_HEADER: usize = 6;

/// Why a HEP packet was refused. `kind()` is the metric label (`decode_errors_total{kind}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HepError {
    #[error("HEP packet truncated")]
    Truncated,
    #[error("not a HEP packet (unknown version or magic)")]
    NotHep,
    #[error("HEP length field disagrees with the bytes present")]
    BadLength,
    #[error("HEP chunk malformed (length or size of a fixed-size chunk)")]
    BadChunk,
    #[error("HEP address family unknown or inconsistent with the addresses")]
    BadAddress,
    #[error("HEP packet without source/destination address or port")]
    MissingAddress,
    #[error("HEP packet without payload")]
    MissingPayload,
    #[error("HEP compressed payload does not inflate")]
    Inflate,
    #[error("HEP payload larger than the configured limit once inflated")]
    TooLarge,
    #[error("HEP auth key missing or wrong")]
    AuthFailed,
    #[error("HEP payload is not SIP")]
    NotSip,
}

impl HepError {
    pub fn kind(&self) -> &'static str {
        match self {
            HepError::Truncated => "hep_truncated",
            HepError::NotHep => "hep_not_hep",
            HepError::BadLength => "hep_bad_length",
            HepError::BadChunk => "hep_bad_chunk",
            HepError::BadAddress => "hep_bad_address",
            HepError::MissingAddress => "hep_missing_address",
            HepError::MissingPayload => "hep_missing_payload",
            HepError::Inflate => "hep_inflate",
            HepError::TooLarge => "hep_too_large",
            HepError::AuthFailed => "hep_auth_failed",
            HepError::NotSip => "hep_not_sip",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    Plain(&'a [u8]),
    /// Chunk 0x0010: gzip or zlib, expand with [`inflate`].
    Compressed(&'a [u8]),
}

/// One HEP packet, borrowed from the bytes it was parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HepPacket<'a> {
    pub version: u8,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// IP protocol of the original packet (17 UDP, 6 TCP; Kamailio reports TLS and WebSocket
    /// as 22).
    pub ip_proto: u8,
    /// Capture time; HEPv1 carries none.
    pub ts: Option<Timestamp>,
    /// Protocol type (chunk 0x000b); HEPv1/v2 carry only SIP.
    pub proto_type: u8,
    pub capture_id: Option<u32>,
    pub auth_key: Option<&'a [u8]>,
    pub correlation_id: Option<&'a [u8]>,
    pub payload: Payload<'a>,
}

/// Parses one HEP packet (v3 by its magic, v1/v2 by the version byte).
pub fn parse(b: &[u8]) -> Result<HepPacket<'_>, HepError> {
    if b.len() < 4 {
        return Err(HepError::Truncated);
    }
    if &b[..4] == HEP3_MAGIC {
        parse_v3(b)
    } else if b[0] == 1 || b[0] == 2 {
        parse_v2(b)
    } else {
        Err(HepError::NotHep)
    }
}

/// Length of the HEP packet at the start of a stream buffer, once enough bytes are there to
/// know it (`Ok(None)`: need more). Over TCP only HEPv3 is framed (v1/v2 have no total length).
pub fn frame_len(b: &[u8]) -> Result<Option<usize>, HepError> {
    if b.len() < 6 {
        return if HEP3_MAGIC.starts_with(&b[..b.len().min(4)]) {
            Ok(None)
        } else {
            Err(HepError::NotHep)
        };
    }
    if &b[..4] != HEP3_MAGIC {
        return Err(HepError::NotHep);
    }
    let len = usize::from(u16::from_be_bytes([b[4], b[5]]));
    if len < 6 {
        return Err(HepError::BadLength);
    }
    Ok(Some(len))
}

fn be16(v: &[u8]) -> Result<u16, HepError> {
    Ok(u16::from_be_bytes(
        v.try_into().map_err(|_| HepError::BadChunk)?,
    ))
}

fn be32(v: &[u8]) -> Result<u32, HepError> {
    Ok(u32::from_be_bytes(
        v.try_into().map_err(|_| HepError::BadChunk)?,
    ))
}

fn u8_of(v: &[u8]) -> Result<u8, HepError> {
    match v {
        [x] => Ok(*x),
        _ => Err(HepError::BadChunk),
    }
}

fn parse_v3(b: &[u8]) -> Result<HepPacket<'_>, HepError> {
    let total = match frame_len(b)? {
        Some(n) => n,
        None => return Err(HepError::Truncated),
    };
    if total > b.len() {
        return Err(HepError::Truncated);
    }
    let mut family = None;
    let mut ip_proto = 0u8;
    let (mut src4, mut dst4, mut src6, mut dst6) = (None, None, None, None);
    let (mut sport, mut dport) = (None, None);
    let (mut secs, mut usecs) = (None, 0u32);
    let mut proto_type = None;
    let (mut capture_id, mut auth_key, mut correlation_id, mut payload) = (None, None, None, None);
    let mut pos = 6;
    while pos < total {
        let h = b.get(pos..pos + CHUNK_HEADER).ok_or(HepError::BadChunk)?;
        if pos + CHUNK_HEADER > total {
            return Err(HepError::BadChunk);
        }
        let vendor = u16::from_be_bytes([h[0], h[1]]);
        let kind = u16::from_be_bytes([h[2], h[3]]);
        let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
        if len < CHUNK_HEADER || pos + len > total {
            return Err(HepError::BadChunk);
        }
        let v = &b[pos + CHUNK_HEADER..pos + len];
        pos += len;
        // Vendor chunks (vendor id != 0) are someone else's extension: skipped.
        if vendor != 0 {
            continue;
        }
        match kind {
            0x0001 => family = Some(u8_of(v)?),
            0x0002 => ip_proto = u8_of(v)?,
            0x0003 => src4 = Some(Ipv4Addr::from(be32(v)?)),
            0x0004 => dst4 = Some(Ipv4Addr::from(be32(v)?)),
            0x0005 => src6 = Some(ip6(v)?),
            0x0006 => dst6 = Some(ip6(v)?),
            0x0007 => sport = Some(be16(v)?),
            0x0008 => dport = Some(be16(v)?),
            0x0009 => secs = Some(be32(v)?),
            0x000a => usecs = be32(v)?,
            0x000b => proto_type = Some(u8_of(v)?),
            0x000c => capture_id = Some(be32(v)?),
            0x000e => auth_key = Some(v),
            0x000f => payload = Some(Payload::Plain(v)),
            0x0010 => payload = Some(Payload::Compressed(v)),
            0x0011 => correlation_id = Some(v),
            _ => {}
        }
    }
    let (src, dst): (IpAddr, IpAddr) = match (family, src4, dst4, src6, dst6) {
        (Some(AF_INET) | None, Some(s), Some(d), None, None) => (s.into(), d.into()),
        (Some(AF_INET6) | None, None, None, Some(s), Some(d)) => (s.into(), d.into()),
        (_, None, None, None, None) | (_, Some(_), None, ..) | (_, None, Some(_), ..) => {
            return Err(HepError::MissingAddress)
        }
        _ => return Err(HepError::BadAddress),
    };
    let (Some(sport), Some(dport)) = (sport, dport) else {
        return Err(HepError::MissingAddress);
    };
    Ok(HepPacket {
        version: 3,
        src: SocketAddr::new(src, sport),
        dst: SocketAddr::new(dst, dport),
        ip_proto,
        ts: secs.map(|s| Timestamp::from_parts(i64::from(s), i64::from(usecs.min(999_999)))),
        proto_type: proto_type.unwrap_or(PROTO_SIP),
        capture_id,
        auth_key,
        correlation_id,
        payload: payload.ok_or(HepError::MissingPayload)?,
    })
}

fn ip6(v: &[u8]) -> Result<Ipv6Addr, HepError> {
    let a: [u8; 16] = v.try_into().map_err(|_| HepError::BadChunk)?;
    Ok(Ipv6Addr::from(a))
}

/// HEPv1/v2: an 8-byte header (version, header length, family, protocol, ports in network
/// order), the two addresses, then for v2 a 12-byte time header (seconds, microseconds, capture
/// id) that agents write in little-endian (Kamailio: `to_le`), then the payload.
fn parse_v2(b: &[u8]) -> Result<HepPacket<'_>, HepError> {
    if b.len() < 8 {
        return Err(HepError::Truncated);
    }
    let (version, hdr_len, family, ip_proto) = (b[0], usize::from(b[1]), b[2], b[3]);
    let sport = u16::from_be_bytes([b[4], b[5]]);
    let dport = u16::from_be_bytes([b[6], b[7]]);
    let (src, dst): (IpAddr, IpAddr) = match family {
        AF_INET => {
            let a = b.get(8..16).ok_or(HepError::Truncated)?;
            (
                Ipv4Addr::new(a[0], a[1], a[2], a[3]).into(),
                Ipv4Addr::new(a[4], a[5], a[6], a[7]).into(),
            )
        }
        AF_INET6 => {
            let a = b.get(8..40).ok_or(HepError::Truncated)?;
            (ip6(&a[..16])?.into(), ip6(&a[16..])?.into())
        }
        _ => return Err(HepError::BadAddress),
    };
    let addr_end = if family == AF_INET { 16 } else { 40 };
    if hdr_len != addr_end {
        return Err(HepError::BadLength);
    }
    let (ts, capture_id, body) = if version == 2 {
        let t = b.get(addr_end..addr_end + 12).ok_or(HepError::Truncated)?;
        let le32 = |o: usize| u32::from_le_bytes([t[o], t[o + 1], t[o + 2], t[o + 3]]);
        let usecs = le32(4).min(999_999);
        let id = u16::from_le_bytes([t[8], t[9]]);
        (
            Some(Timestamp::from_parts(i64::from(le32(0)), i64::from(usecs))),
            Some(u32::from(id)),
            &b[addr_end + 12..],
        )
    } else {
        (None, None, &b[addr_end..])
    };
    if body.is_empty() {
        return Err(HepError::MissingPayload);
    }
    Ok(HepPacket {
        version,
        src: SocketAddr::new(src, sport),
        dst: SocketAddr::new(dst, dport),
        ip_proto,
        ts,
        proto_type: PROTO_SIP,
        capture_id,
        auth_key: None,
        correlation_id: None,
        payload: Payload::Plain(body),
    })
}

/// Expands a compressed payload (gzip, else zlib) into `out`, refusing more than `max` bytes.
pub fn inflate(compressed: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), HepError> {
    out.clear();
    let limit = max as u64 + 1;
    let read = if compressed.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(compressed)
            .take(limit)
            .read_to_end(out)
    } else {
        flate2::read::ZlibDecoder::new(compressed)
            .take(limit)
            .read_to_end(out)
    };
    read.map_err(|_| HepError::Inflate)?;
    if out.len() > max {
        out.clear();
        return Err(HepError::TooLarge);
    }
    Ok(())
}

/// The fields of a HEPv3 packet to write.
#[derive(Clone, Copy, Debug)]
pub struct Hep3Out<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub ip_proto: u8,
    pub ts: Timestamp,
    pub capture_id: u32,
    pub auth_key: Option<&'a [u8]>,
    pub correlation_id: Option<&'a [u8]>,
    pub payload: &'a [u8],
}

fn chunk(out: &mut Vec<u8>, kind: u16, v: &[u8]) {
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&((v.len() + CHUNK_HEADER) as u16).to_be_bytes());
    out.extend_from_slice(v);
}

/// Writes one HEPv3 packet (protocol type SIP) into `out`; None when it would exceed the 65535
/// bytes the length field can express (the caller counts it).
pub fn encode_v3(p: &Hep3Out<'_>, out: &mut Vec<u8>) -> Option<()> {
    out.clear();
    out.extend_from_slice(HEP3_MAGIC);
    out.extend_from_slice(&[0, 0]);
    let (family, src, dst): (u8, Vec<u8>, Vec<u8>) = match (p.src.ip(), p.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (AF_INET, s.octets().to_vec(), d.octets().to_vec()),
        (s, d) => (AF_INET6, v6(s).to_vec(), v6(d).to_vec()),
    };
    chunk(out, 0x0001, &[family]);
    chunk(out, 0x0002, &[p.ip_proto]);
    let (ks, kd) = if family == AF_INET {
        (0x0003, 0x0004)
    } else {
        (0x0005, 0x0006)
    };
    chunk(out, ks, &src);
    chunk(out, kd, &dst);
    chunk(out, 0x0007, &p.src.port().to_be_bytes());
    chunk(out, 0x0008, &p.dst.port().to_be_bytes());
    let secs = p.ts.as_secs().clamp(0, i64::from(u32::MAX)) as u32;
    let usecs = p.ts.0.rem_euclid(1_000_000) as u32;
    chunk(out, 0x0009, &secs.to_be_bytes());
    chunk(out, 0x000a, &usecs.to_be_bytes());
    chunk(out, 0x000b, &[PROTO_SIP]);
    chunk(out, 0x000c, &p.capture_id.to_be_bytes());
    if let Some(k) = p.auth_key {
        chunk(out, 0x000e, k);
    }
    if let Some(c) = p.correlation_id {
        chunk(out, 0x0011, c);
    }
    if out.len() + CHUNK_HEADER + p.payload.len() > usize::from(u16::MAX) {
        out.clear();
        return None;
    }
    chunk(out, 0x000f, p.payload);
    let len = (out.len() as u16).to_be_bytes();
    out[4..6].copy_from_slice(&len);
    Some(())
}

fn v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(payload: &'a [u8], key: Option<&'a [u8]>) -> Hep3Out<'a> {
        Hep3Out {
            src: "192.0.2.10:5071".parse().unwrap(),
            dst: "198.51.100.20:5060".parse().unwrap(),
            ip_proto: 17,
            ts: Timestamp::from_parts(1_795_000_000, 123_456),
            capture_id: 2001,
            auth_key: key,
            correlation_id: Some(b"det-1"),
            payload,
        }
    }

    #[test]
    fn v3_round_trip() {
        let mut buf = Vec::new();
        encode_v3(
            &sample(b"INVITE sip:x SIP/2.0\r\n\r\n", Some(b"k")),
            &mut buf,
        )
        .unwrap();
        let p = parse(&buf).unwrap();
        assert_eq!(p.version, 3);
        assert_eq!(p.src, "192.0.2.10:5071".parse().unwrap());
        assert_eq!(p.dst, "198.51.100.20:5060".parse().unwrap());
        assert_eq!(p.ts, Some(Timestamp::from_parts(1_795_000_000, 123_456)));
        assert_eq!(p.capture_id, Some(2001));
        assert_eq!(p.auth_key, Some(&b"k"[..]));
        assert_eq!(p.correlation_id, Some(&b"det-1"[..]));
        assert_eq!(p.proto_type, PROTO_SIP);
        assert_eq!(p.payload, Payload::Plain(b"INVITE sip:x SIP/2.0\r\n\r\n"));
        assert_eq!(frame_len(&buf).unwrap(), Some(buf.len()));
    }

    #[test]
    fn v3_ipv6_and_trailing_bytes() {
        let mut s = sample(b"SIP/2.0 200 OK\r\n\r\n", None);
        s.src = "[2001:db8::1]:5060".parse().unwrap();
        s.dst = "[2001:db8::2]:5062".parse().unwrap();
        let mut buf = Vec::new();
        encode_v3(&s, &mut buf).unwrap();
        buf.extend_from_slice(b"next packet");
        let p = parse(&buf).unwrap();
        assert_eq!(p.src, s.src);
        assert_eq!(p.dst, s.dst);
    }

    #[test]
    fn v3_errors() {
        let mut buf = Vec::new();
        encode_v3(&sample(b"OPTIONS sip:x SIP/2.0\r\n\r\n", None), &mut buf).unwrap();
        assert_eq!(parse(&buf[..buf.len() - 1]), Err(HepError::Truncated));
        let mut bad = buf.clone();
        // First chunk's length (family, 7 bytes) claims 5: shorter than a chunk header.
        bad[10..12].copy_from_slice(&5u16.to_be_bytes());
        assert_eq!(parse(&bad), Err(HepError::BadChunk));
        let mut bad = buf.clone();
        bad[10..12].copy_from_slice(&8u16.to_be_bytes());
        assert!(parse(&bad).is_err());
        assert_eq!(parse(b"XYZW\0\0"), Err(HepError::NotHep));
        assert_eq!(frame_len(b"HEP"), Ok(None));
        assert_eq!(frame_len(b"GET / HTTP/1.1"), Err(HepError::NotHep));
        assert_eq!(frame_len(b"HEP3\0\x02"), Err(HepError::BadLength));
    }

    #[test]
    fn v2_as_kamailio_writes_it() {
        let mut b = vec![2, 16, AF_INET, 17];
        b.extend_from_slice(&5071u16.to_be_bytes());
        b.extend_from_slice(&5060u16.to_be_bytes());
        b.extend_from_slice(&[192, 0, 2, 10, 198, 51, 100, 20]);
        b.extend_from_slice(&1_795_000_000u32.to_le_bytes());
        b.extend_from_slice(&42u32.to_le_bytes());
        b.extend_from_slice(&[7, 0, 0, 0]);
        b.extend_from_slice(b"BYE sip:x SIP/2.0\r\n\r\n");
        let p = parse(&b).unwrap();
        assert_eq!(p.version, 2);
        assert_eq!(p.src, "192.0.2.10:5071".parse().unwrap());
        assert_eq!(p.ts, Some(Timestamp::from_parts(1_795_000_000, 42)));
        assert_eq!(p.capture_id, Some(7));
        assert_eq!(p.payload, Payload::Plain(b"BYE sip:x SIP/2.0\r\n\r\n"));
        assert_eq!(parse(&b[..20]), Err(HepError::Truncated));
        b[1] = 40;
        assert_eq!(parse(&b), Err(HepError::BadLength));
    }

    #[test]
    fn inflate_is_bounded() {
        use std::io::Write;
        let big = vec![b'a'; 100_000];
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&big).unwrap();
        let z = z.finish().unwrap();
        let mut out = Vec::new();
        assert_eq!(inflate(&z, 65_535, &mut out), Err(HepError::TooLarge));
        assert!(out.is_empty());
        inflate(&z, 100_000, &mut out).unwrap();
        assert_eq!(out.len(), 100_000);
        let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        g.write_all(b"INVITE").unwrap();
        inflate(&g.finish().unwrap(), 100, &mut out).unwrap();
        assert_eq!(out, b"INVITE");
        assert_eq!(
            inflate(b"\x78garbage", 100, &mut out),
            Err(HepError::Inflate)
        );
    }
}
