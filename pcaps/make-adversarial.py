#!/usr/bin/env python3
"""Writes adversarial captures (classic pcap, Ethernet) into OUTDIR, for the hardening tests
(tests/adversarial.rs) and for anyone who wants to see the sensor's limits being hit:

  frag-flood.pcap      30,000 incomplete IPv4/IPv6 datagrams (first fragments only, middle
                       fragments only) plus 100 datagrams cut into more than 64 tiny pieces
  tcp-streams.pcap     100,000 TCP streams, each a partial SIP header block and an
                       out-of-order segment after a gap; one stream whose header never ends
  header-bombs.pcap    INVITEs with 5,000 headers, a 60,000-byte header line, 3,000 Identity
                       headers, 200 Identity headers, 2,000-deep nested quotes, angle brackets,
                       comments and 800 quoted parameters; and a TCP stream whose header block never ends
  dialogs.pcap         100,000 INVITEs (distinct Call-IDs) that never get a response
  x5u-private.pcap     signed INVITEs whose x5u names loopback, private, link-local and
                       metadata addresses, localhost, and userinfo URLs (port --x5u-port)
  x5u-huge.pcap        signed INVITEs whose x5u is --huge-url (a server sending an endless
                       body) and --huge-url + "-len" (a 100 MB Content-Length)

Python 3 stdlib only, deterministic (same bytes on every run: fixed times, fixed PRNG seed).
Never sends anything anywhere; it only writes files. The big files are not committed.
Usage: pcaps/make-adversarial.py OUTDIR [--only NAME[,NAME]] [--x5u-port P] [--huge-url URL]
                                 [--scale F]   (F < 1 makes every flood proportionally smaller)
       pcaps/make-adversarial.py --inject IFACE FILE...   (root: sends each frame of the
                                 captures on IFACE through an AF_PACKET socket, for live tests
                                 on lo; nothing else ever sends)
"""
import argparse
import base64
import json
import os
import random
import struct

T0 = 1_700_000_000  # capture start, Unix seconds
MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
SIG = base64.urlsafe_b64encode(bytes(64)).rstrip(b"=")


class Pcap:
    """A classic pcap writer (microsecond timestamps, LINKTYPE_ETHERNET)."""

    def __init__(self, path):
        self.f = open(path, "wb")
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        self.frames = 0

    def write(self, t_us, frame):
        sec, usec = divmod(t_us, 1_000_000)
        self.f.write(struct.pack("<IIII", T0 + sec, usec, len(frame), len(frame)) + frame)
        self.frames += 1

    def close(self):
        self.f.close()


def ip4(n):
    return bytes([10, (n >> 16) & 255, (n >> 8) & 255, n & 255])


def eth(ethertype, payload):
    return MAC_B + MAC_A + struct.pack(">H", ethertype) + payload


def ipv4(src, dst, proto, payload, ident=0, flags_frag=0):
    hdr = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF,
                      flags_frag, 64, proto, 0, src, dst)
    return eth(0x0800, hdr + payload)


def ipv6_frag(src, dst, ident, offset, more, payload):
    frag = struct.pack(">BBHI", 17, 0, offset | int(more), ident)
    hdr = struct.pack(">IHBB16s16s", 0x60000000, len(frag) + len(payload), 44, 64, src, dst)
    return eth(0x86DD, hdr + frag + payload)


def udp(sport, dport, payload):
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(sport, dport, seq, payload, flags=0x18):
    return struct.pack(">HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, 0, 5 << 4, flags, 65535, 0, 0) + payload


def b64u(obj):
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=")


def invite(call_id, extra=b"", frm=b'<sip:+12025550143@198.51.100.10;user=phone>;tag=a1',
           body=b""):
    return (b"INVITE sip:+13035550177@192.0.2.1;user=phone SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK-" + call_id + b"\r\n"
            b"Max-Forwards: 70\r\n"
            b"From: " + frm + b"\r\n"
            b"To: <sip:+13035550177@192.0.2.1;user=phone>\r\n"
            b"Call-ID: " + call_id + b"\r\n"
            b"CSeq: 1 INVITE\r\n" + extra +
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def identity(x5u, iat):
    hdr = {"alg": "ES256", "ppt": "shaken", "typ": "passport", "x5u": x5u}
    claims = {"attest": "A", "dest": {"tn": ["13035550177"]}, "iat": iat,
              "orig": {"tn": "12025550143"}, "origid": "e32f4189-cb86-460f-bb92-bd3acb89f29c"}
    return (b"Identity: " + b64u(hdr) + b"." + b64u(claims) + b"." + SIG +
            b";info=<" + x5u.encode() + b">;alg=ES256;ppt=shaken\r\n")


def udp_sip(p, t_us, n, msg):
    p.write(t_us, ipv4(ip4(n), bytes([192, 0, 2, 1]), 17, udp(5060, 5060, msg), ident=n))


def frag_flood(path, scale):
    """First-only and middle-only fragments of distinct datagrams, IPv4 and IPv6, then
    datagrams in more than 64 disjoint tiny pieces."""
    p = Pcap(path)
    rnd = random.Random(8)
    dst4, dst6 = bytes([192, 0, 2, 1]), bytes(15) + b"\x01"
    n = int(30_000 * scale)
    for i in range(n):
        data = bytes(rnd.getrandbits(8) for _ in range(8)) * 128  # 1024 bytes
        t = i * 20
        src = ip4(i // 65536 + 1)
        if i % 3 == 0:  # first fragment only: UDP header to 5060 and the start of an INVITE
            first = udp(5060, 5060, b"INVITE sip:x@y SIP/2.0\r\n" + data)[:1024]
            p.write(t, ipv4(src, dst4, 17, first, ident=i, flags_frag=0x2000))
        elif i % 3 == 1:  # a middle fragment only
            p.write(t, ipv4(src, dst4, 17, data, ident=i, flags_frag=0x2000 | 128))
        else:  # IPv6: a first or a middle fragment
            src6 = b"\x20\x01\x0d\xb8" + bytes(8) + struct.pack(">I", i)
            p.write(t, ipv6_frag(src6, dst6, i, (i % 2) * 1024, True, data))
    t = n * 20
    for d in range(int(100 * scale) or 1):
        for k in range(80):  # 80 disjoint 8-byte pieces: more ranges than the table keeps
            t += 1
            p.write(t, ipv4(ip4(7_000_000 + d), dst4, 17, bytes(8), ident=d,
                            flags_frag=0x2000 | (2 * k + 1)))
    p.close()
    return p.frames


def tcp_streams(path, scale):
    """Many streams with a partial header block each, then a segment after a gap."""
    p = Pcap(path)
    dst = bytes([192, 0, 2, 1])
    n = int(100_000 * scale)
    for i in range(n):
        src = ip4(i % 60_000 + 1)
        sport = 10_000 + i // 60_000
        head = (b"INVITE sip:+13035550177@192.0.2.1 SIP/2.0\r\n"
                b"Via: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK-" + str(i).encode() + b"\r\n"
                b"Call-ID: stream-" + str(i).encode() + b"\r\n")
        seq = 1000 + i
        p.write(2 * i * 10, ipv4(src, dst, 6, tcp(sport, 5060, seq, head)))
        # Out of order, 600 bytes after a 400-byte hole: held until the stream budget says no.
        p.write((2 * i + 1) * 10, ipv4(src, dst, 6, tcp(sport, 5060, seq + len(head) + 400,
                                                          b"X-Pad: " + b"p" * 591 + b"\r\n")))
    # One stream whose header block never ends: 300 segments of 1,000 bytes of headers.
    t = 2 * n * 10
    seq = 5
    src = bytes([10, 250, 0, 1])
    start = b"INVITE sip:endless@192.0.2.1 SIP/2.0\r\nCall-ID: endless\r\n"
    p.write(t, ipv4(src, dst, 6, tcp(40000, 5060, seq, start)))
    seq += len(start)
    for k in range(int(300 * scale) or 1):
        chunk = b"X-Endless-" + str(k).encode().rjust(5, b"0") + b": " + b"e" * 981 + b"\r\n"
        t += 10
        p.write(t, ipv4(src, dst, 6, tcp(40000, 5060, seq, chunk)))
        seq += len(chunk)
    p.close()
    return p.frames


def header_bombs(path, scale):
    p = Pcap(path)
    t = 0
    bombs = [
        ("many-headers", b"".join(b"X-H-%d: v\r\n" % k for k in range(5000))),
        ("long-line", b"X-Long: " + b"L" * 60_000 + b"\r\n"),
        ("identity-3000", b"y: a.b.c\r\n" * 3000),
        ("identity-200", b"".join(b"Identity: a.b.c;info=<https://x.example/%d>\r\n" % k
                                  for k in range(200))),
    ]
    for name, extra in bombs:
        for rep in range(int(20 * scale) or 1):
            t += 100
            udp_sip(p, t, 1, invite(b"%s-%d" % (name.encode(), rep), extra))
    nested = [
        # Deep but under max_header_line (8192), so that the URI and name-addr parsers see them.
        ("quotes", b'"' + b'\\"' * 2000 + b'" <sip:+12025550143@h>;tag=q'),
        ("angles", b"<" * 2000 + b"sip:+12025550143@h" + b">" * 2000 + b";tag=a"),
        ("comments", b"(" * 2000 + b"<sip:+12025550143@h>" + b")" * 2000 + b";tag=c"),
        ("params", b"<sip:+12025550143@h>" + b";p=\"\\\"\"" * 800 + b";tag=p"),
    ]
    for name, frm in nested:
        for rep in range(int(20 * scale) or 1):
            t += 100
            udp_sip(p, t, 1, invite(b"nested-%s-%d" % (name.encode(), rep), frm=frm))
    # TCP: a header block that never ends (well past max_message_bytes).
    src, dst, seq = bytes([10, 251, 0, 1]), bytes([192, 0, 2, 1]), 77
    msg = b"INVITE sip:bomb@192.0.2.1 SIP/2.0\r\nCall-ID: tcp-bomb\r\n"
    for k in range(int(100 * scale) or 1):
        t += 100
        p.write(t, ipv4(src, dst, 6, tcp(40001, 5060, seq, msg)))
        seq += len(msg)
        msg = b"X-Bomb-" + str(k).encode().rjust(5, b"0") + b": " + b"b" * 1400 + b"\r\n"
    p.close()
    return p.frames


def dialogs(path, scale):
    p = Pcap(path)
    for i in range(int(100_000 * scale)):
        udp_sip(p, i * 100, i, invite(b"never-ends-%06d@adversarial.test" % i))
    p.close()
    return p.frames


def x5u_urls(port):
    return [
        "http://127.0.0.1:%d/cert.pem" % port,
        "https://127.0.0.1:%d/cert.pem" % port,
        "https://10.0.0.1/cert.pem",
        "https://[::1]:%d/cert.pem" % port,
        "https://169.254.169.254/latest/meta-data",
        "https://localhost:%d/cert.pem" % port,
        "https://user:secret@127.0.0.1:%d/cert.pem" % port,
        "https://cert.example.org@127.0.0.1:%d/cert.pem" % port,
    ]


def x5u_calls(path, urls):
    p = Pcap(path)
    for i, url in enumerate(urls):
        t = i * 1000
        udp_sip(p, t, i + 1, invite(b"x5u-%d" % i, identity(url, T0)))
    p.close()
    return p.frames


def inject(iface, files):
    """Sends every frame of the given (Ethernet) captures on iface, in order, as fast as the
    socket takes them. Live tests use it on lo, which has no wire: frames go to capturers only."""
    import socket
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    sent = 0
    for path in files:
        data = open(path, "rb").read()
        pos = 24
        while pos + 16 <= len(data):
            incl = struct.unpack("<I", data[pos + 8:pos + 12])[0]
            s.send(data[pos + 16:pos + 16 + incl])
            sent += 1
            pos += 16 + incl
    s.close()
    print("sent %d frames on %s" % (sent, iface))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir", nargs="?")
    ap.add_argument("--inject", metavar="IFACE")
    ap.add_argument("files", nargs="*")
    ap.add_argument("--only", default="")
    ap.add_argument("--x5u-port", type=int, default=8443)
    ap.add_argument("--huge-url", default="http://127.0.0.1:8080/huge.pem")
    ap.add_argument("--scale", type=float, default=1.0)
    a = ap.parse_args()
    if a.inject:
        return inject(a.inject, ([a.outdir] if a.outdir else []) + a.files)
    if not a.outdir:
        ap.error("OUTDIR is required")
    os.makedirs(a.outdir, exist_ok=True)
    makers = {
        "frag-flood": lambda f: frag_flood(f, a.scale),
        "tcp-streams": lambda f: tcp_streams(f, a.scale),
        "header-bombs": lambda f: header_bombs(f, a.scale),
        "dialogs": lambda f: dialogs(f, a.scale),
        "x5u-private": lambda f: x5u_calls(f, x5u_urls(a.x5u_port)),
        "x5u-huge": lambda f: x5u_calls(f, [a.huge_url, a.huge_url.rstrip("/") + "-len"]),
    }
    only = [n for n in a.only.split(",") if n]
    for n in only:
        if n not in makers:
            ap.error("unknown capture %r (one of %s)" % (n, ", ".join(makers)))
    for name, make in makers.items():
        if only and name not in only:
            continue
        path = os.path.join(a.outdir, name + ".pcap")
        frames = make(path)
        print("%s: %d frames, %d bytes" % (path, frames, os.path.getsize(path)))


if __name__ == "__main__":
    main()
