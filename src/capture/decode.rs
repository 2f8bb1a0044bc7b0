//! Packet decode: link layer → IP (tunnels, fragments) → UDP/TCP → framed SIP messages.
//!
//! Borrowed views all the way down: a frame is never copied unless it must be held (IP
//! fragments, TCP segments waiting for their predecessors), and those copies live in bounded,
//! recycled buffers owned by [`Defragmenter`] and [`TcpReassembler`]. Malformed packets are
//! counted by kind in [`DecodeStats`]; nothing here may panic or trust a length field it has
//! not checked against the bytes actually present.

use super::dedup::{CopyFilter, CopyStats};
use super::defrag::{DefragLimits, Defragmenter, Fragment, FragmentKey, Pushed};
use super::hep::{self, HepError};
use super::hep_reorder::Reorder;
use super::packet::{SipPayload, Transport};
use super::tcp::{TcpFlags, TcpLimits, TcpReassembler, TcpSegment};
use crate::clock::Timestamp;
use crate::sip::framing::{self, FrameMode, FrameOutcome};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Encapsulations deeper than this are refused: a packet of nested tunnels is an attack.
const MAX_DEPTH: u8 = 8;
const MAX_VLAN_TAGS: usize = 4;
const MAX_IPV6_EXTENSIONS: usize = 8;
const VXLAN_PORT: u16 = 4789;

/// Why a frame could not be decoded. `kind()` is the metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("link type {0} is not supported")]
    UnsupportedLinkType(i32),
    #[error("frame shorter than its link-layer header")]
    TruncatedLink,
    #[error("IP header truncated or malformed")]
    BadIpHeader,
    #[error("IP length field disagrees with the bytes captured")]
    BadIpLength,
    #[error("IPv6 extension header chain truncated or too long")]
    BadIpv6Extension,
    #[error("UDP header truncated or length field invalid")]
    BadUdp,
    #[error("TCP header truncated or data offset invalid")]
    BadTcp,
    #[error("GRE header truncated or of an unsupported kind")]
    BadGre,
    #[error("encapsulation nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("payload on a SIP port is not SIP")]
    NotSip,
    #[error("SIP message larger than capture.max_message_bytes")]
    SipTooLarge,
    #[error("SIP framing: {0}")]
    Framing(#[from] framing::FramingError),
    #[error("IP fragment dropped: {0}")]
    Fragment(super::defrag::DefragError),
    #[error(transparent)]
    Hep(#[from] HepError),
}

impl DecodeError {
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::UnsupportedLinkType(_) => "unsupported_link_type",
            DecodeError::TruncatedLink => "truncated_link",
            DecodeError::BadIpHeader => "bad_ip_header",
            DecodeError::BadIpLength => "bad_ip_length",
            DecodeError::BadIpv6Extension => "bad_ipv6_extension",
            DecodeError::BadUdp => "bad_udp",
            DecodeError::BadTcp => "bad_tcp",
            DecodeError::BadGre => "bad_gre",
            DecodeError::TooDeep => "encapsulation_too_deep",
            DecodeError::NotSip => "not_sip",
            DecodeError::SipTooLarge => "sip_too_large",
            DecodeError::Framing(e) => e.kind(),
            DecodeError::Fragment(e) => e.kind(),
            DecodeError::Hep(e) => e.kind(),
        }
    }
}

/// What the decoder counts itself; the fragment and TCP tables keep their own stats.
#[derive(Clone, Debug, Default)]
pub struct DecodeStats {
    pub frames: u64,
    pub bytes: u64,
    /// Frames that are not ours to look at (ARP, other ports, other protocols).
    pub ignored: u64,
    pub sip_messages: u64,
    /// Problems by kind. Most mean the frame was dropped; `sip_truncated_body` and
    /// `sip_bad_content_length` (a datagram's Content-Length short or not a number) are counted
    /// but the message is still delivered, framed by the datagram's end.
    pub errors: BTreeMap<&'static str, u64>,
}

impl DecodeStats {
    fn error(&mut self, e: DecodeError) {
        *self.errors.entry(e.kind()).or_insert(0) += 1;
    }

    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Which payloads are SIP: a port bitmap (checked twice per packet, so O(1)) and the limits.
#[derive(Clone, Debug)]
pub struct DecodeSettings {
    sip_ports: Box<[u64; 1024]>,
    pub detect_sip_on_any_port: bool,
    pub max_message: usize,
    pub defrag: DefragLimits,
    pub tcp: TcpLimits,
    /// Linux cooked captures: drop a packet seen again within this many µs (a copy from a
    /// second interface of "any"); 0 keeps every copy.
    pub dedup_window_us: i64,
    pub hep: HepSettings,
}

/// How HEP packets are decoded, from the listener or found inside a capture.
#[derive(Clone, Debug, Default)]
pub struct HepSettings {
    /// UDP destination ports whose payload is HEP when read from libpcap (replay of a HEP feed).
    pub pcap_ports: Vec<u16>,
    /// When set, a packet without this exact auth key chunk is refused.
    pub auth_key: Option<Vec<u8>>,
    /// When not empty, only messages to or from one of these ports enter the pipeline (a proxy
    /// that keeps the Call-ID mirrors both legs of a call; the sensor follows one).
    pub leg_ports: Vec<u16>,
    /// Hold of HEP-delivered SIP (see `hep_reorder`), µs of arrival time, and its bound.
    pub reorder_us: i64,
    pub reorder_max: usize,
}

impl HepSettings {
    pub fn from_config(c: &crate::config::HepConfig) -> Self {
        HepSettings {
            pcap_ports: c.pcap_ports.clone(),
            auth_key: (!c.auth_key.is_empty()).then(|| c.auth_key.as_bytes().to_vec()),
            leg_ports: c.leg_ports.clone(),
            reorder_us: (c.reorder_ms as i64) * 1000,
            reorder_max: c.queue_frames,
        }
    }
}

impl DecodeSettings {
    pub fn new(ports: &[u16], detect_sip_on_any_port: bool, max_message: usize) -> Self {
        let mut sip_ports = Box::new([0u64; 1024]);
        for &p in ports {
            sip_ports[usize::from(p) / 64] |= 1 << (p % 64);
        }
        DecodeSettings {
            sip_ports,
            detect_sip_on_any_port,
            max_message,
            defrag: DefragLimits::default(),
            tcp: TcpLimits {
                max_message,
                ..TcpLimits::default()
            },
            hep: HepSettings::default(),
            dedup_window_us: 0,
        }
    }

    pub fn from_config(c: &crate::config::CaptureConfig) -> Self {
        let mut s = Self::new(&c.sip_ports, c.detect_sip_on_any_port, c.max_message_bytes);
        s.defrag = DefragLimits {
            max_datagrams: c.defrag.max_datagrams,
            max_bytes: c.defrag.max_bytes_mb << 20,
            timeout_us: (c.defrag.timeout_s as i64) * 1_000_000,
        };
        s.tcp = TcpLimits {
            max_streams: c.tcp.max_streams,
            max_stream_bytes: c.tcp.max_stream_kb << 10,
            max_total_bytes: c.tcp.max_total_mb << 20,
            idle_timeout_us: (c.tcp.idle_timeout_s as i64) * 1_000_000,
            max_message: c.max_message_bytes,
        };
        s.hep = HepSettings::from_config(&c.hep);
        s.dedup_window_us = (c.dedup_window_ms as i64) * 1_000;
        s
    }

    fn is_sip_port(&self, p: u16) -> bool {
        self.sip_ports[usize::from(p) / 64] & (1 << (p % 64)) != 0
    }
}

/// Link-layer types we decode (libpcap LINKTYPE_* values).
pub mod linktype {
    pub const NULL: i32 = 0;
    pub const ETHERNET: i32 = 1;
    pub const RAW_OPENBSD: i32 = 12;
    pub const RAW_BSDOS: i32 = 14;
    pub const RAW: i32 = 101;
    pub const LOOP: i32 = 108;
    pub const LINUX_SLL: i32 = 113;
    pub const IPV4: i32 = 228;
    pub const IPV6: i32 = 229;
    pub const LINUX_SLL2: i32 = 276;
}

/// One decoder per capture thread: it owns that thread's reassembly tables.
pub struct Decoder {
    settings: DecodeSettings,
    defrag: Defragmenter,
    tcp: TcpReassembler,
    /// Only for Linux cooked frames, and only when `dedup_window_us` > 0.
    copies: Option<CopyFilter>,
    pub stats: DecodeStats,
    /// Inflated HEP payloads (chunk 0x0010), reused; at most `max_message` bytes.
    inflated: Vec<u8>,
    /// SIP from HEP held for reordering; None when the hold is off.
    reorder: Option<Reorder>,
}

type Out<'o> = dyn FnMut(SipPayload<'_>) + 'o;

fn be16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(off)?, *b.get(off + 1)?]))
}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

impl Decoder {
    pub fn new(settings: DecodeSettings) -> Self {
        Decoder {
            defrag: Defragmenter::new(settings.defrag),
            tcp: TcpReassembler::new(settings.tcp),
            reorder: (settings.hep.reorder_us > 0)
                .then(|| Reorder::new(settings.hep.reorder_us, settings.hep.reorder_max)),
            copies: (settings.dedup_window_us > 0)
                .then(|| CopyFilter::new(settings.dedup_window_us)),
            settings,
            stats: DecodeStats::default(),
            inflated: Vec::new(),
        }
    }

    /// Releases the HEP messages held long enough at `now` (arrival time).
    pub fn release_held(&mut self, now: Timestamp, out: &mut Out<'_>) {
        if let Some(r) = self.reorder.as_mut() {
            r.release(now, out);
        }
    }

    /// Releases every held HEP message (end of input).
    pub fn flush_held(&mut self, out: &mut Out<'_>) {
        if let Some(r) = self.reorder.as_mut() {
            r.flush(out);
        }
    }

    /// Delivers what one HEP packet carried: through the hold when it is on.
    #[allow(clippy::too_many_arguments)]
    fn hep_datagram(
        &mut self,
        arrival: Timestamp,
        p: &hep::HepPacket<'_>,
        transport: Transport,
        body: &[u8],
        out: &mut Out<'_>,
    ) -> Result<(), DecodeError> {
        let ts = p.ts.unwrap_or(arrival);
        let Some(mut r) = self.reorder.take() else {
            return self.datagram(ts, p.src, p.dst, transport, p.capture_id, body, out);
        };
        let res = self.datagram(ts, p.src, p.dst, transport, p.capture_id, body, &mut |m| {
            r.push(arrival, &m, out)
        });
        if r.overflowed > 0 {
            self.stats.errors.insert("hep_reorder_full", r.overflowed);
        }
        self.reorder = Some(r);
        res
    }

    /// Decodes one HEP packet received by the HEP listener at `arrival` (the time used when the
    /// packet carries none).
    pub fn decode_hep(&mut self, arrival: Timestamp, packet: &[u8], out: &mut Out<'_>) {
        self.release_held(arrival, out);
        self.stats.frames += 1;
        self.stats.bytes += packet.len() as u64;
        if let Err(e) = self.hep(arrival, packet, out) {
            self.stats.error(e);
        }
    }

    fn hep(
        &mut self,
        arrival: Timestamp,
        packet: &[u8],
        out: &mut Out<'_>,
    ) -> Result<(), DecodeError> {
        let p = hep::parse(packet)?;
        if let Some(key) = &self.settings.hep.auth_key {
            if p.auth_key != Some(key.as_slice()) {
                return Err(HepError::AuthFailed.into());
            }
        }
        let legs = &self.settings.hep.leg_ports;
        let on_leg =
            legs.is_empty() || legs.contains(&p.src.port()) || legs.contains(&p.dst.port());
        // RTCP, logs and QoS reports share HEP feeds with SIP: not ours, not an error.
        if p.proto_type != hep::PROTO_SIP || !on_leg {
            self.stats.ignored += 1;
            return Ok(());
        }
        // Kamailio reports TLS and WebSocket as 22: stream transports, like TCP.
        let transport = match p.ip_proto {
            6 | 22 => Transport::Tcp,
            _ => Transport::Udp,
        };
        match p.payload {
            hep::Payload::Plain(body) => self.hep_datagram(arrival, &p, transport, body, out),
            hep::Payload::Compressed(z) => {
                let mut buf = std::mem::take(&mut self.inflated);
                let r = hep::inflate(z, self.settings.max_message, &mut buf)
                    .map_err(DecodeError::from)
                    .and_then(|()| self.hep_datagram(arrival, &p, transport, &buf, out));
                self.inflated = buf;
                r
            }
        }
    }

    /// Decodes one captured frame; `out` is called once per complete SIP message it yields
    /// (none, one, or several: a TCP segment may complete many).
    pub fn decode(&mut self, linktype: i32, ts: Timestamp, frame: &[u8], out: &mut Out<'_>) {
        self.release_held(ts, out);
        self.stats.frames += 1;
        self.stats.bytes += frame.len() as u64;
        if let Err(e) = self.link(linktype, ts, frame, out) {
            self.stats.error(e);
        }
    }

    /// Drops reassembly state older than its timeout.
    pub fn expire(&mut self, now: Timestamp) {
        self.defrag.expire(now);
        self.tcp.expire(now);
    }

    pub fn defrag(&self) -> &Defragmenter {
        &self.defrag
    }

    pub fn tcp(&self) -> &TcpReassembler {
        &self.tcp
    }

    /// What the copy filter of Linux cooked captures dropped and forgot.
    pub fn copies(&self) -> CopyStats {
        self.copies.as_ref().map(|c| c.stats).unwrap_or_default()
    }

    /// A Linux cooked frame's IP packet already seen on another interface (see `dedup`).
    fn is_copy(&mut self, proto: u16, ts: Timestamp, ip: &[u8]) -> bool {
        match &mut self.copies {
            Some(c) if matches!(proto, 0x0800 | 0x86DD) => c.is_copy(ts, ip),
            _ => false,
        }
    }

    fn link(
        &mut self,
        lt: i32,
        ts: Timestamp,
        f: &[u8],
        out: &mut Out<'_>,
    ) -> Result<(), DecodeError> {
        match lt {
            linktype::ETHERNET => self.ethernet(ts, f, 0, out),
            linktype::LINUX_SLL => {
                let proto = be16(f, 14).ok_or(DecodeError::TruncatedLink)?;
                if self.is_copy(proto, ts, &f[16..]) {
                    return Ok(());
                }
                self.ethertype(proto, ts, &f[16..], 0, out)
            }
            linktype::LINUX_SLL2 => {
                let proto = be16(f, 0).ok_or(DecodeError::TruncatedLink)?;
                let rest = f.get(20..).ok_or(DecodeError::TruncatedLink)?;
                if self.is_copy(proto, ts, rest) {
                    return Ok(());
                }
                self.ethertype(proto, ts, rest, 0, out)
            }
            linktype::NULL | linktype::LOOP => {
                let fam = f.get(..4).ok_or(DecodeError::TruncatedLink)?;
                // The family is in the capturing host's byte order for NULL: accept either.
                let family = if fam[0] == 0 && fam[1] == 0 {
                    u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]])
                } else {
                    u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]])
                };
                match family {
                    2 | 10 | 24 | 28 | 30 => self.ip(ts, &f[4..], 0, out),
                    _ => {
                        self.stats.ignored += 1;
                        Ok(())
                    }
                }
            }
            linktype::RAW
            | linktype::RAW_OPENBSD
            | linktype::RAW_BSDOS
            | linktype::IPV4
            | linktype::IPV6 => self.ip(ts, f, 0, out),
            other => Err(DecodeError::UnsupportedLinkType(other)),
        }
    }

    fn ethernet(
        &mut self,
        ts: Timestamp,
        f: &[u8],
        depth: u8,
        out: &mut Out<'_>,
    ) -> Result<(), DecodeError> {
        let mut proto = be16(f, 12).ok_or(DecodeError::TruncatedLink)?;
        let mut off = 14;
        // 802.1Q, 802.1ad (QinQ) and the legacy 0x9100 tag: skip up to MAX_VLAN_TAGS.
        for _ in 0..MAX_VLAN_TAGS {
            if !matches!(proto, 0x8100 | 0x88A8 | 0x9100) {
                break;
            }
            proto = be16(f, off + 2).ok_or(DecodeError::TruncatedLink)?;
            off += 4;
        }
        self.ethertype(proto, ts, &f[off..], depth, out)
    }

    fn ethertype(
        &mut self,
        proto: u16,
        ts: Timestamp,
        p: &[u8],
        depth: u8,
        out: &mut Out<'_>,
    ) -> Result<(), DecodeError> {
        match proto {
            0x0800 | 0x86DD => self.ip(ts, p, depth, out),
            // PPPoE session: 6-byte header, then a PPP protocol field.
            0x8864 => self.ppp(
                ts,
                p.get(6..).ok_or(DecodeError::TruncatedLink)?,
                depth,
                out,
            ),
            // MPLS unicast/multicast: pop labels to the bottom of the stack, then IP.
            0x8847 | 0x8848 => {
                let mut off = 0;
                for _ in 0..16 {
                    let label = be32(p, off).ok_or(DecodeError::TruncatedLink)?;
                    off += 4;
                    if label & 0x100 != 0 {
                        return self.ip(ts, &p[off..], depth, out);
                    }
                }
                Err(DecodeError::TooDeep)
            }
            _ => {
                self.stats.ignored += 1;
                Ok(())
            }
        }
    }

    fn ppp(
        &mut self,
        ts: Timestamp,
        p: &[u8],
        depth: u8,
        out: &mut Out<'_>,
    ) -> Result<(), DecodeError> {
        let p = p.strip_prefix(&[0xFF, 0x03]).unwrap_or(p);
        let first = *p.first().ok_or(DecodeError::TruncatedLink)?;
        // Protocol-field compression: an odd first byte is a one-byte protocol.
        let (proto, rest) = if first & 1 == 1 {
            (u16::from(first), &p[1..])
        } else {
            (be16(p, 0).ok_or(DecodeError::TruncatedLink)?, &p[2..])
        };
        match proto {
            0x21 | 0x57 => self.ip(ts, rest, depth, out),
            _ => {
                self.stats.ignored += 1;
                Ok(())
            }
        }
    }

    fn ip(
        &mut self,
        ts: Timestamp,
        p: &[u8],
        depth: u8,
        out: &mut Out<'_>,
    ) -> Result<(), DecodeError> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        match p.first().map(|b| b >> 4) {
            Some(4) => self.ipv4(ts, p, depth, out),
            Some(6) => self.ipv6(ts, p, depth, out),
            _ => Err(DecodeError::BadIpHeader),
        }
    }

    fn ipv4(
        &mut self,
        ts: Timestamp,
        p: &[u8],
        depth: u8,
        out: &mut Out<'_>,
    ) -> Result<(), DecodeError> {
        if p.len() < 20 {
            return Err(DecodeError::BadIpHeader);
        }
        let ihl = usize::from(p[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
        if ihl < 20 || ihl > p.len() {
            return Err(DecodeError::BadIpHeader);
        }
        // total == 0 happens with TCP segmentation offload on the capturing host: use what we have.
        let end = if total == 0 { p.len() } else { total };
        if end < ihl || end > p.len() {
            return Err(DecodeError::BadIpLength);
        }
        let src = IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15]));
        let dst = IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19]));
        let proto = p[9];
        let frag = u16::from_be_bytes([p[6], p[7]]);
        let payload = &p[ihl..end];
        let more = frag & 0x2000 != 0;
        let offset = usize::from(frag & 0x1fff) * 8;
        if more || offset != 0 {
            let key = FragmentKey {
                src,
                dst,
                id: u32::from(u16::from_be_bytes([p[4], p[5]])),
                proto,
            };
            return self.fragment(ts, key, offset, more, payload, depth, out);
        }
        self.upper(proto, ts, src, dst, payload, depth, out)
    }

    fn ipv6(
        &mut self,
        ts: Timestamp,
        p: &[u8],
        depth: u8,
        out: &mut Out<'_>,
    ) -> Result<(), DecodeError> {
        if p.len() < 40 {
            return Err(DecodeError::BadIpHeader);
        }
        let plen = usize::from(u16::from_be_bytes([p[4], p[5]]));
        // A zero payload length means a jumbogram (or offload): take the captured bytes.
        let end = if plen == 0 { p.len() } else { 40 + plen };
        if end > p.len() {
            return Err(DecodeError::BadIpLength);
        }
        let addr = |o: usize| {
            let mut a = [0u8; 16];
            a.copy_from_slice(&p[o..o + 16]);
            IpAddr::V6(Ipv6Addr::from(a))
        };
        let (src, dst) = (addr(8), addr(24));
        let mut next = p[6];
        let mut off = 40;
        for _ in 0..MAX_IPV6_EXTENSIONS {
            match next {
                0 | 43 | 51 | 60 | 135 | 139 | 140 => {
                    let h = p
                        .get(off..off + 2)
                        .filter(|_| off + 2 <= end)
                        .ok_or(DecodeError::BadIpv6Extension)?;
                    // AH counts 4-byte words minus 2; the others 8-byte units minus 1.
                    off += if next == 51 {
                        (usize::from(h[1]) + 2) * 4
                    } else {
                        (usize::from(h[1]) + 1) * 8
                    };
                    next = h[0];
                }
                44 => {
                    let h = p
                        .get(off..off + 8)
                        .filter(|_| off + 8 <= end)
                        .ok_or(DecodeError::BadIpv6Extension)?;
                    let fo = u16::from_be_bytes([h[2], h[3]]);
                    let key = FragmentKey {
                        src,
                        dst,
                        id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                        proto: h[0],
                    };
                    let data = &p[off + 8..end];
                    return self.fragment(
                        ts,
                        key,
                        usize::from(fo & 0xfff8),
                        fo & 1 != 0,
                        data,
                        depth,
                        out,
                    );
                }
                _ => {
                    let payload = p.get(off..end).ok_or(DecodeError::BadIpv6Extension)?;
                    return self.upper(next, ts, src, dst, payload, depth, out);
                }
            }
        }
        Err(DecodeError::BadIpv6Extension)
    }

    #[allow(clippy::too_many_arguments)]
    fn fragment(
        &mut self,
        ts: Timestamp,
        key: FragmentKey,
        offset: usize,
        more: bool,
        data: &[u8],
        depth: u8,
        out: &mut Out<'_>,
    ) -> Result<(), DecodeError> {
        if offset == 0 && !more {
            // An "atomic fragment" (RFC 6946): nothing to reassemble.
            return self.upper(key.proto, ts, key.src, key.dst, data, depth, out);
        }
        let frag = Fragment {
            key,
            offset,
            more,
            data,
            ts,
        };
        match self.defrag.push(frag) {
            Pushed::Pending => Ok(()),
            Pushed::Dropped(e) => Err(DecodeError::Fragment(e)),
            Pushed::Complete(whole) => {
                let k = whole.key;
                let result = self.upper(k.proto, ts, k.src, k.dst, &whole.payload, depth + 1, out);
                self.defrag.recycle(whole.payload);
                result
            }
        }
    }

    /// The protocol above IP: transports, tunnels, and IPv6 extension headers met after
    /// reassembly.
    #[allow(clippy::too_many_arguments)]
    fn upper(
        &mut self,
        proto: u8,
        ts: Timestamp,
        src: IpAddr,
        dst: IpAddr,
        p: &[u8],
        depth: u8,
        out: &mut Out<'_>,
    ) -> Result<(), DecodeError> {
        match proto {
            17 => self.udp(ts, src, dst, p, depth, out),
            6 => self.tcp_segment(ts, src, dst, p, out),
            4 | 41 => self.ip(ts, p, depth + 1, out),
            47 => self.gre(ts, p, depth + 1, out),
            0 | 43 | 60 if src.is_ipv6() => {
                let h = p.get(..2).ok_or(DecodeError::BadIpv6Extension)?;
                let len = (usize::from(h[1]) + 1) * 8;
                let rest = p.get(len..).ok_or(DecodeError::BadIpv6Extension)?;
                if depth >= MAX_DEPTH {
                    return Err(DecodeError::TooDeep);
                }
                self.upper(h[0], ts, src, dst, rest, depth + 1, out)
            }
            _ => {
                self.stats.ignored += 1;
                Ok(())
            }
        }
    }

    fn gre(
        &mut self,
        ts: Timestamp,
        p: &[u8],
        depth: u8,
        out: &mut Out<'_>,
    ) -> Result<(), DecodeError> {
        let flags = be16(p, 0).ok_or(DecodeError::BadGre)?;
        let proto = be16(p, 2).ok_or(DecodeError::BadGre)?;
        let version = flags & 7;
        let mut off = 4;
        match version {
            0 => {
                if flags & 0x4000 != 0 {
                    return Err(DecodeError::BadGre); // source routing (RFC 1701), long deprecated
                }
                off += 4 * [0x8000, 0x2000, 0x1000]
                    .iter()
                    .filter(|&&b| flags & b != 0)
                    .count();
            }
            1 => {
                // Enhanced GRE (PPTP, RFC 2637): the key is mandatory; sequence and ack optional.
                off += 4 + 4 * [0x1000, 0x0080].iter().filter(|&&b| flags & b != 0).count();
            }
            _ => return Err(DecodeError::BadGre),
        }
        let inner = p.get(off..).ok_or(DecodeError::BadGre)?;
        match proto {
            0x0800 | 0x86DD => self.ip(ts, inner, depth, out),
            0x6558 => self.ethernet(ts, inner, depth, out),
            0x880B => self.ppp(ts, inner, depth, out),
            // ERSPAN type II (8-byte header) and III (12 bytes, +8 with the optional subheader).
            0x88BE => self.ethernet(ts, inner.get(8..).ok_or(DecodeError::BadGre)?, depth, out),
            0x22EB => {
                let o = if inner.get(11).is_some_and(|b| b & 1 != 0) {
                    20
                } else {
                    12
                };
                self.ethernet(ts, inner.get(o..).ok_or(DecodeError::BadGre)?, depth, out)
            }
            _ => {
                self.stats.ignored += 1;
                Ok(())
            }
        }
    }

    fn udp(
        &mut self,
        ts: Timestamp,
        src: IpAddr,
        dst: IpAddr,
        p: &[u8],
        depth: u8,
        out: &mut Out<'_>,
    ) -> Result<(), DecodeError> {
        if p.len() < 8 {
            return Err(DecodeError::BadUdp);
        }
        let (sport, dport) = (
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        );
        let ulen = usize::from(u16::from_be_bytes([p[4], p[5]]));
        // ulen == 0 is legal for IPv6 jumbograms and seen with offload: take the captured bytes.
        let end = if ulen == 0 { p.len() } else { ulen };
        if end < 8 || end > p.len() {
            return Err(DecodeError::BadUdp);
        }
        let payload = &p[8..end];
        if self.settings.hep.pcap_ports.contains(&dport) {
            return self.hep(ts, payload, out);
        }
        if dport == VXLAN_PORT && payload.len() >= 8 && payload[0] & 0x08 != 0 {
            return self.ethernet(ts, &payload[8..], depth + 1, out);
        }
        let on_port = self.settings.is_sip_port(sport) || self.settings.is_sip_port(dport);
        let sniffed =
            self.settings.detect_sip_on_any_port && framing::looks_like_sip_start(payload);
        if !(on_port || sniffed) {
            self.stats.ignored += 1;
            return Ok(());
        }
        let src = SocketAddr::new(src, sport);
        let dst = SocketAddr::new(dst, dport);
        self.datagram(ts, src, dst, Transport::Udp, None, payload, out)
    }

    /// One datagram's worth of SIP (a UDP payload, or one message a HEP agent mirrored).
    #[allow(clippy::too_many_arguments)]
    fn datagram(
        &mut self,
        ts: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
        transport: Transport,
        agent: Option<u32>,
        payload: &[u8],
        out: &mut Out<'_>,
    ) -> Result<(), DecodeError> {
        if payload.len() > self.settings.max_message {
            return Err(DecodeError::SipTooLarge);
        }
        // NAT keep-alives: CRLFs (RFC 5626), or runs of spaces or NULs some phones send.
        if payload
            .iter()
            .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0))
        {
            self.stats.ignored += 1;
            return Ok(());
        }
        let mut pos = framing::keepalive_len(payload);
        let mut delivered = false;
        while pos < payload.len() {
            let rest = &payload[pos..];
            match framing::frame(rest, FrameMode::Datagram, self.settings.max_message) {
                FrameOutcome::Complete(f) => {
                    self.stats.sip_messages += 1;
                    // Delivered, but counted: a peer sending these is broken or probing.
                    if f.truncated_body {
                        *self.stats.errors.entry("sip_truncated_body").or_insert(0) += 1;
                    }
                    if f.bad_content_length {
                        *self
                            .stats
                            .errors
                            .entry("sip_bad_content_length")
                            .or_insert(0) += 1;
                    }
                    out(SipPayload {
                        ts,
                        src,
                        dst,
                        transport,
                        bytes: &rest[..f.len],
                        call_id: f.call_id,
                        agent,
                    });
                    delivered = true;
                    pos += f.len.max(1);
                    pos += framing::keepalive_len(&payload[pos.min(payload.len())..]);
                }
                // Bytes after a complete message that are not another message: padding.
                FrameOutcome::NotSip | FrameOutcome::Incomplete if delivered => break,
                FrameOutcome::NotSip | FrameOutcome::Incomplete => return Err(DecodeError::NotSip),
                FrameOutcome::Invalid(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn tcp_segment(
        &mut self,
        ts: Timestamp,
        src: IpAddr,
        dst: IpAddr,
        p: &[u8],
        out: &mut Out<'_>,
    ) -> Result<(), DecodeError> {
        if p.len() < 20 {
            return Err(DecodeError::BadTcp);
        }
        let doff = usize::from(p[12] >> 4) * 4;
        if doff < 20 || doff > p.len() {
            return Err(DecodeError::BadTcp);
        }
        let (sport, dport) = (
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        );
        // Streams on other ports cannot be recognised mid-flow, so TCP follows the SIP ports only.
        if !self.settings.is_sip_port(sport) && !self.settings.is_sip_port(dport) {
            self.stats.ignored += 1;
            return Ok(());
        }
        let flags = p[13];
        let seg = TcpSegment {
            ts,
            src: SocketAddr::new(src, sport),
            dst: SocketAddr::new(dst, dport),
            seq: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            flags: TcpFlags {
                syn: flags & 0x02 != 0,
                fin: flags & 0x01 != 0,
                rst: flags & 0x04 != 0,
            },
            payload: &p[doff..],
        };
        let stats = &mut self.stats;
        self.tcp.push(seg, &mut |msg| {
            stats.sip_messages += 1;
            out(msg)
        });
        Ok(())
    }
}
