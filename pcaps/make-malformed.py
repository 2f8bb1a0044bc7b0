#!/usr/bin/env python3
"""make-malformed.py OUT.pcap -- write malformed.pcap: hostile frames for shaken-sensor's decoder.

Standard library only (struct). Writes a classic pcap (magic a1b2c3d4, v2.4, microsecond
timestamps, LINKTYPE_ETHERNET = 1, snaplen 262144). The output is byte-for-byte
deterministic: fixed addresses, IP IDs, ports and timestamps (1 ms apart from
2026-01-01T00:00:00Z).

Addresses are from the documentation ranges: 192.0.2.10 (caller side) -> 198.51.100.20
(callee side), 2001:db8::10 -> 2001:db8::20. SIP is always to port 5060.

The two VALID small INVITEs (UDP, IPv4, one frame each) a parser must still find amid
the garbage have the Call-IDs
    valid-1@malformed.shaken-sensor.test   (caller +12025550190 -> callee +13035550190)
    valid-2@malformed.shaken-sensor.test   (caller +12025550191 -> callee +13035550191)
Every other frame is hostile in the way its comment says; see README.md for what tshark
makes of each.
"""
import struct
import sys

SRC4, DST4 = bytes([192, 0, 2, 10]), bytes([198, 51, 100, 20])
SRC6 = bytes.fromhex("20010db8000000000000000000000010")
DST6 = bytes.fromhex("20010db8000000000000000000000020")
MAC_DST, MAC_SRC = bytes.fromhex("020000000002"), bytes.fromhex("020000000001")
T0 = 1767225600  # 2026-01-01T00:00:00Z


# ---------------------------------------------------------------- builders
def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def eth(payload: bytes, ethertype: int = 0x0800) -> bytes:
    return MAC_DST + MAC_SRC + struct.pack("!H", ethertype) + payload


def ipv4(payload: bytes, proto: int = 17, ident: int = 1, mf: bool = False, offset8: int = 0,
         ihl: int = 5, total_len=None, src=SRC4, dst=DST4, options: bytes = b"") -> bytes:
    """IPv4 header + payload. total_len/ihl may lie; the checksum is always right for
    the header bytes actually written."""
    if total_len is None:
        total_len = 20 + len(options) + len(payload)
    flags_frag = (0x2000 if mf else 0) | (offset8 & 0x1FFF)
    hdr = struct.pack("!BBHHHBBH4s4s", (4 << 4) | (ihl & 0xF), 0, total_len & 0xFFFF, ident,
                      flags_frag, 64, proto, 0, src, dst) + options
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + payload


def udp(payload: bytes, sport: int = 5060, dport: int = 5060, length=None,
        src=SRC4, dst=DST4, v6: bool = False) -> bytes:
    """UDP header + payload with a correct checksum (unless the length lies: then 0)."""
    ulen = 8 + len(payload) if length is None else length
    hdr = struct.pack("!HHHH", sport, dport, ulen & 0xFFFF, 0)
    if length is not None:
        return hdr + payload  # checksum 0 = "none" (IPv4 only)
    if v6:
        pseudo = src + dst + struct.pack("!I3xB", ulen, 17)
    else:
        pseudo = src + dst + struct.pack("!xBH", 17, ulen)
    c = csum(pseudo + hdr + payload) or 0xFFFF
    return hdr[:6] + struct.pack("!H", c) + payload


def tcp(payload: bytes, seq: int, ack: int, flags: str, sport: int = 40000, dport: int = 5060,
        doff: int = 5, src=SRC4, dst=DST4) -> bytes:
    bits = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10}
    fl = sum(bits[c] for c in flags)
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      (doff & 0xF) << 4, fl, 65535, 0, 0)
    pseudo = src + dst + struct.pack("!xBH", 6, len(hdr) + len(payload))
    c = csum(pseudo + hdr + payload)
    return hdr[:16] + struct.pack("!H", c) + hdr[18:] + payload


def ipv6(payload: bytes, nh: int, plen=None, src=SRC6, dst=DST6) -> bytes:
    if plen is None:
        plen = len(payload)
    return struct.pack("!IHBB16s16s", 6 << 28, plen, nh, 64, src, dst) + payload


def fragments(datagram: bytes, ident: int, size: int = 1480, proto: int = 17):
    """Split an IP payload (UDP header + data) into IPv4 fragments of `size` bytes."""
    out = []
    for off in range(0, len(datagram), size):
        chunk = datagram[off:off + size]
        out.append(eth(ipv4(chunk, proto=proto, ident=ident, mf=off + size < len(datagram),
                            offset8=off // 8)))
    return out


def invite(call_id, caller="+12025550199", callee="+13035550199", extra: str = "",
           from_hdr=None, content_length=None, body=None, media_port=31000) -> bytes:
    """A small SIP INVITE over UDP (same shape as the sipp samples)."""
    if body is None:
        body = ("v=0\r\no=malformed %d 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n"
                "t=0 0\r\nm=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
                "a=rtpmap:101 telephone-event/8000\r\n" % (media_port, media_port)).encode()
    if from_hdr is None:
        from_hdr = ("From: <sip:%s@192.0.2.10;user=phone>;tag=mf-%s\r\n" % (caller, call_id[:8])).encode()
    head = ("INVITE sip:%s@198.51.100.20:5060;user=phone SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-mf-%s\r\n"
            "Max-Forwards: 70\r\n" % (callee, call_id[:12])).encode()
    head += from_hdr
    head += ("To: <sip:%s@198.51.100.20;user=phone>\r\n" % callee).encode()
    if call_id:
        head += ("Call-ID: %s\r\n" % call_id).encode()
    head += ("CSeq: 1 INVITE\r\n"
             "Contact: <sip:%s@192.0.2.10:5060>\r\n"
             "P-Asserted-Identity: <sip:%s@192.0.2.10;user=phone>\r\n"
             "User-Agent: make-malformed.py shaken-sensor-samples\r\n" % (caller, caller)).encode()
    head += extra.encode()
    cl = len(body) if content_length is None else content_length
    head += ("Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n" % cl).encode()
    return head + body


# ---------------------------------------------------------------- the frames
def frames():
    """Yields (frame bytes, original length or None) in capture order."""
    # 1. Truncated Ethernet frame: 10 bytes, shorter than the 14-byte Ethernet header.
    yield eth(b"")[:10], None

    # 2. IPv4 with IHL = 3 (12 bytes), below the minimum of 5 (20 bytes).
    yield eth(ipv4(udp(b"OPTIONS sip:x SIP/2.0\r\n\r\n"), ihl=3, ident=2)), None

    # 3. IPv4 total length (1400) larger than the bytes actually in the frame.
    yield eth(ipv4(udp(b"INVITE sip:+13035550199@198.51.100.20 SIP/2.0\r\n"), ident=3,
                   total_len=1400)), None

    # 4. IPv4 total length (12) smaller than its own 20-byte header.
    yield eth(ipv4(udp(b"INVITE sip:+13035550199@198.51.100.20 SIP/2.0\r\n"), ident=4,
                   total_len=12)), None

    # 5. UDP length field (1000) larger than the datagram (8 + 30 bytes).
    yield eth(ipv4(udp(b"REGISTER sip:x SIP/2.0\r\nVia: x\r\n"[:30], length=1000), ident=5)), None

    # 6. 200 bytes of garbage (deterministic LCG, not text) on UDP port 5060.
    x, junk = 12345, bytearray()
    for _ in range(200):
        x = (1103515245 * x + 12345) & 0x7FFFFFFF
        junk.append(x >> 16 & 0xFF)
    yield eth(ipv4(udp(bytes(junk), sport=5062), ident=6)), None

    # 7. VALID INVITE #1 (one UDP datagram, correct checksums, Content-Length matches).
    yield eth(ipv4(udp(invite("valid-1@malformed.shaken-sensor.test", "+12025550190",
                              "+13035550190", media_port=31180)), ident=7)), None

    # 8. INVITE whose Content-Length (5000) is larger than the body that follows (163 bytes).
    yield eth(ipv4(udp(invite("bad-clen@malformed.shaken-sensor.test", content_length=5000)),
                   ident=8)), None

    # 9. INVITE with a 60,000-byte header line, as ONE UDP datagram (~60.6 KB) sent as 41
    #    IPv4 fragments of 1480 bytes (the frames are in order; reassembly is needed).
    longline = "X-Long: " + "a" * (60000 - len("X-Long: ")) + "\r\n"
    dgram = udp(invite("long-udp@malformed.shaken-sensor.test", extra=longline))
    for fr in fragments(dgram, ident=9):
        yield fr, None

    # 10. INVITE with a 70,000-byte header line over TCP: 3-way handshake, then the message
    #     in 1460-byte segments (no single UDP datagram can hold it), the server ACKing
    #     every 10th segment, then FIN from the client.
    cseq, sseq = 1000, 5000
    cli = dict(sport=40000, dport=5060)
    srv = dict(sport=5060, dport=40000, src=DST4, dst=SRC4)
    yield eth(ipv4(tcp(b"", cseq, 0, "S", **cli), proto=6, ident=10)), None
    yield eth(ipv4(tcp(b"", sseq, cseq + 1, "SA", **srv), proto=6, ident=11,
                   src=DST4, dst=SRC4)), None
    yield eth(ipv4(tcp(b"", cseq + 1, sseq + 1, "A", **cli), proto=6, ident=12)), None
    longline = "X-Long: " + "b" * (70000 - len("X-Long: ")) + "\r\n"
    msg = invite("long-tcp@malformed.shaken-sensor.test", extra=longline).replace(
        b"SIP/2.0/UDP", b"SIP/2.0/TCP")
    seq, ident = cseq + 1, 13
    for i, off in enumerate(range(0, len(msg), 1460)):
        seg = msg[off:off + 1460]
        last = off + 1460 >= len(msg)
        yield eth(ipv4(tcp(seg, seq, sseq + 1, "PA" if last else "A", **cli), proto=6,
                       ident=ident)), None
        seq += len(seg)
        ident += 1
        if i % 10 == 9 or last:
            yield eth(ipv4(tcp(b"", sseq + 1, seq, "A", **srv), proto=6, ident=ident,
                           src=DST4, dst=SRC4)), None
            ident += 1
    yield eth(ipv4(tcp(b"", seq, sseq + 1, "FA", **cli), proto=6, ident=ident)), None

    # 11. INVITE with 500 extra headers (X-Hdr-000 .. X-Hdr-499), ~11 KB in ONE frame (as a
    #     loopback or GRO capture would show it; no fragmentation).
    many = "".join("X-Hdr-%03d: value-%03d\r\n" % (i, i) for i in range(500))
    yield eth(ipv4(udp(invite("many-headers@malformed.shaken-sensor.test", extra=many)),
                   ident=200)), None

    # 12. Overlapping IPv4 fragments with CONFLICTING data (teardrop-like), UDP to 5060:
    #     A: offset 0, 48 bytes (UDP header for a 96-byte datagram + 40 x 'A'), MF
    #     B: offset 24, 48 bytes of 'B' (overlaps A's last 24 bytes with different data), MF
    #     C: offset 16, 8 bytes of 'C' (lies entirely inside A: classic teardrop), MF
    #     D: offset 72, 24 bytes of 'D', last fragment (datagram ends at 96)
    udph = struct.pack("!HHHH", 5060, 5060, 96, 0)
    yield eth(ipv4(udph + b"A" * 40, ident=201, mf=True, offset8=0)), None
    yield eth(ipv4(b"B" * 48, ident=201, mf=True, offset8=3)), None
    yield eth(ipv4(b"C" * 8, ident=201, mf=True, offset8=2)), None
    yield eth(ipv4(b"D" * 24, ident=201, mf=False, offset8=9)), None

    # 13. Duplicate fragments: a small SIP OPTIONS (Call-ID dup-frag@...) in 3 fragments,
    #     the first and second each sent twice (identical bytes). Reassembles to a
    #     well-formed OPTIONS; a parser must not see it twice or corrupt it.
    opts = ("OPTIONS sip:198.51.100.20:5060 SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-mf-dupfrag\r\n"
            "Max-Forwards: 70\r\n"
            "From: <sip:probe@192.0.2.10>;tag=dupfrag\r\n"
            "To: <sip:198.51.100.20>\r\n"
            "Call-ID: dup-frag@malformed.shaken-sensor.test\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "User-Agent: make-malformed.py shaken-sensor-samples\r\n"
            "Content-Length: 0\r\n\r\n").encode()
    frs = fragments(udp(opts), ident=202, size=128)
    assert len(frs) == 3
    for fr in (frs[0], frs[0], frs[1], frs[1], frs[2]):
        yield fr, None

    # 14. Fragment whose offset + length passes 65535 (ping-of-death): offset 65528
    #     (8191 * 8) with 100 bytes, last fragment, after a normal first fragment.
    yield eth(ipv4(struct.pack("!HHHH", 5060, 5060, 0, 0) + b"E" * 64, ident=203, mf=True)), None
    yield eth(ipv4(b"F" * 100, ident=203, mf=False, offset8=8191)), None

    # 15. INVITE with a non-UTF-8 From header (Latin-1 display name, a lone continuation
    #     byte, an overlong encoding and 0xFF).
    bad_from = (b'From: "Jos\xe9 \x80\xc0\xaf\xff" <sip:+12025550199@192.0.2.10;user=phone>'
                b";tag=mf-nonutf8\r\n")
    yield eth(ipv4(udp(invite("non-utf8@malformed.shaken-sensor.test", from_hdr=bad_from)),
                   ident=204)), None

    # 16. INVITE without any Call-ID header.
    yield eth(ipv4(udp(invite("")), ident=205)), None

    # 17. IPv6 whose extension-header chain runs past the end of the packet:
    #     Hop-by-Hop (8 bytes, next = Routing) -> Routing header claiming 8*(1+10) = 88
    #     bytes while only 16 remain. Payload length matches the bytes actually present.
    hbh = struct.pack("!BB6s", 43, 0, b"\x01\x04\0\0\0\0")      # next=Routing, PadN
    rth = struct.pack("!BBBB4s", 17, 10, 0, 0, b"\0" * 4) + b"\0" * 8  # claims 88 bytes
    yield eth(ipv6(hbh + rth, nh=0), 0x86DD), None

    # 18. TCP segment with data offset 2 (< 5) carrying SIP-looking bytes.
    yield eth(ipv4(tcp(b"INVITE sip:+13035550199@198.51.100.20 SIP/2.0\r\n\r\n", 77, 0, "PA",
                       sport=40001, doff=2), proto=6, ident=206)), None

    # 19. Record truncated by the snaplen: incl_len 120 < orig_len (a whole INVITE).
    full = eth(ipv4(udp(invite("snapped@malformed.shaken-sensor.test")), ident=207))
    yield full[:120], len(full)

    # 20. IPv6 UDP INVITE whose UDP checksum is wrong (0x0000 is illegal over IPv6).
    body = invite("v6-zero-csum@malformed.shaken-sensor.test").replace(b"192.0.2.10", b"[2001:db8::10]")
    u = udp(body, src=SRC6, dst=DST6, v6=True)
    yield eth(ipv6(u[:6] + b"\0\0" + u[8:], nh=17), 0x86DD), None

    # 21. VALID INVITE #2, last frame of the file.
    yield eth(ipv4(udp(invite("valid-2@malformed.shaken-sensor.test", "+12025550191",
                              "+13035550191", media_port=31182)), ident=208)), None


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make-malformed.py OUT.pcap")
    with open(sys.argv[1], "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for i, (fr, orig) in enumerate(frames()):
            usec = i * 1000
            fh.write(struct.pack("<IIII", T0 + usec // 1000000, usec % 1000000, len(fr),
                                 orig if orig is not None else len(fr)))
            fh.write(fr)


if __name__ == "__main__":
    main()
