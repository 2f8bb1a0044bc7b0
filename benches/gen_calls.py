#!/usr/bin/env python3
"""Write a large synthetic SIP capture (classic pcap, Ethernet/IPv4/UDP) for throughput runs.

Every call has its own Call-ID, tags, numbers and media port, so no cache or table flatters
the figures. Packets are written in timestamp order (calls overlap: 1 s ringing, 4 s talk).
Standard library only; a few seconds per 100k calls.

usage: gen_calls.py OUT.pcap CALLS [--invites-only] [--cps N] [--identity-bytes N]
                    [--sign-key KEY.pem --x5u URL] [--mtu N] [--pad N] [--start UNIX]
  default: full dialogs (INVITE, 100, 180, 200, ACK, BYE, 200 = 7 messages per call)
  --invites-only: one INVITE per call (like the reference capture in shared/PERF-ANCHORS.md)
  --cps: calls per second of capture time (default 10000)
  --identity-bytes: add an Identity header of about that size to each INVITE (0 = none)
  --sign-key/--x5u: give each INVITE a distinct, valid ES256 SHAKEN PASSporT (iat = its packet
      time), signed with that PKCS#8 P-256 key (needs python3-cryptography)
  --mtu: split IPv4 datagrams larger than this into fragments, as a 1500-byte path would
  --pad: add an X-Padding header of N bytes to each INVITE (signed INVITEs are ~1.6 KB)
  --start: capture start time, Unix seconds (default 1795000000; signed runs use "now" so the
      certificate is valid at every iat)
"""
import argparse
import heapq
import struct

ETH = b"\x00\x00\x00\x00\x00\x02" + b"\x00\x00\x00\x00\x00\x01" + b"\x08\x00"
UAC, UAS = bytes([198, 51, 100, 10]), bytes([192, 0, 2, 1])


def ip_udp(src, dst, sport, dport, payload, ident):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident & 0xFFFF, 0, 64, 17, 0, src, dst)
    csum = 0
    for i in range(0, 20, 2):
        csum += (hdr[i] << 8) | hdr[i + 1]
    csum = (csum & 0xFFFF) + (csum >> 16)
    csum = ~((csum & 0xFFFF) + (csum >> 16)) & 0xFFFF
    return hdr[:10] + struct.pack("!H", csum) + hdr[12:] + udp


def fragments(packet, mtu, ident=None):
    """IPv4 fragments of `packet` (a full IPv4 datagram) for an MTU, RFC 791 style; `ident`
    replaces the datagram's IP ID (Linux sends DF datagrams with ID 0, which fragments of
    different datagrams must not share)."""
    ihl = (packet[0] & 0x0F) * 4
    header, payload = packet[:ihl], packet[ihl:]
    step = (mtu - ihl) // 8 * 8
    out = []
    for off in range(0, len(payload), step):
        chunk = payload[off:off + step]
        more = 0x2000 if off + step < len(payload) else 0
        h = bytearray(header)
        struct.pack_into("!H", h, 2, ihl + len(chunk))
        if ident is not None:
            struct.pack_into("!H", h, 4, ident & 0xFFFF)
        struct.pack_into("!H", h, 6, more | (off // 8))
        struct.pack_into("!H", h, 10, 0)
        csum = sum((h[i] << 8) | h[i + 1] for i in range(0, ihl, 2))
        csum = (csum & 0xFFFF) + (csum >> 16)
        struct.pack_into("!H", h, 10, ~((csum & 0xFFFF) + (csum >> 16)) & 0xFFFF)
        out.append(bytes(h) + chunk)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("calls", type=int)
    ap.add_argument("--invites-only", action="store_true")
    ap.add_argument("--cps", type=int, default=10000)
    ap.add_argument("--identity-bytes", type=int, default=0)
    ap.add_argument("--sign-key")
    ap.add_argument("--x5u", default="https://cert.example.org/sp.pem")
    ap.add_argument("--mtu", type=int, default=0)
    ap.add_argument("--pad", type=int, default=0)
    ap.add_argument("--start", type=int, default=1795000000)
    a = ap.parse_args()
    signer = None
    if a.sign_key:
        import base64
        import json
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        key = serialization.load_pem_private_key(open(a.sign_key, "rb").read(), None)
        b64u = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
        hdr = b64u(json.dumps({"alg": "ES256", "ppt": "shaken", "typ": "passport", "x5u": a.x5u},
                              separators=(",", ":")).encode())

        def signer(orig, dest, iat, n):
            claims = {"attest": "A", "dest": {"tn": [dest]}, "iat": iat, "orig": {"tn": orig},
                      "origid": "%08x-0000-4000-8000-%012x" % (n & 0xFFFFFFFF, n)}
            body = hdr + "." + b64u(json.dumps(claims, separators=(",", ":")).encode())
            r, s_ = decode_dss_signature(key.sign(body.encode(), ec.ECDSA(hashes.SHA256())))
            sig = b64u(r.to_bytes(32, "big") + s_.to_bytes(32, "big"))
            return "Identity: %s.%s;info=<%s>;alg=ES256;ppt=shaken\r\n" % (body, sig, a.x5u)
    start = a.start
    with open(a.out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        ident = 0

        pending = []  # (time, seq, src, dst, payload): later messages of calls in progress
        seq = 0

        def write(t_us, src, dst, text):
            nonlocal ident
            ident += 1
            packet = ip_udp(src, dst, 5060, 5060, text, ident)
            parts = fragments(packet, a.mtu) if a.mtu and len(packet) > a.mtu else [packet]
            for p in parts:
                frame = ETH + p
                f.write(struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(frame), len(frame)))
                f.write(frame)

        def emit(t_us, src, dst, sport, dport, text):
            nonlocal seq
            seq += 1
            heapq.heappush(pending, (t_us, seq, src, dst, text))

        for n in range(a.calls):
            t = start * 1_000_000 + n * 1_000_000 // a.cps
            while pending and pending[0][0] <= t:
                pt, _, src, dst, text = heapq.heappop(pending)
                write(pt, src, dst, text)
            caller = "+1202%07d" % (n % 10_000_000)
            callee = "+1303%07d" % ((n * 7919) % 10_000_000)
            cid = "%08x-%d@198.51.100.10" % (n * 2654435761 & 0xFFFFFFFF, n)
            ftag, ttag, branch = "f%d" % n, "t%d" % n, "z9hG4bK-%d" % n
            port = 20000 + (n % 40000)
            sdp = (
                "v=0\r\no=uac %d 1 IN IP4 198.51.100.10\r\ns=-\r\nc=IN IP4 198.51.100.10\r\nt=0 0\r\n"
                "m=audio %d RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
                "a=rtpmap:101 telephone-event/8000\r\n" % (n, port)
            )
            identity = ""
            if signer:
                identity = signer(caller[1:], callee[1:], t // 1_000_000, n)
            elif a.identity_bytes:
                body = ("eyJhbGciOiJFUzI1NiJ9." + ("A" * a.identity_bytes))[: a.identity_bytes]
                identity = "Identity: %s.sig%d;info=<https://cert.example.org/sp.pem>;alg=ES256;ppt=shaken\r\n" % (body, n)
            common = (
                "From: <sip:%s@198.51.100.10;user=phone>;tag=%s\r\n"
                "Call-ID: %s\r\n" % (caller, ftag, cid)
            )
            invite = (
                "INVITE sip:%s@192.0.2.1:5060;user=phone SIP/2.0\r\n"
                "Via: SIP/2.0/UDP 198.51.100.10:5060;branch=%s\r\n"
                "Max-Forwards: 70\r\n%s"
                "To: <sip:%s@192.0.2.1;user=phone>\r\n"
                "CSeq: 1 INVITE\r\n"
                "P-Asserted-Identity: <sip:%s@198.51.100.10;user=phone>\r\n"
                "Contact: <sip:%s@198.51.100.10:5060>\r\n"
                "User-Agent: gen-calls/1\r\n%s%s"
                "Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s"
                % (callee, branch, common, callee, caller, caller, identity,
                   "X-Padding: %s\r\n" % ("p" * a.pad) if a.pad else "", len(sdp), sdp)
            )
            emit(t, UAC, UAS, 5060, 5060, invite.encode())
            if a.invites_only:
                continue
            via = "Via: SIP/2.0/UDP 198.51.100.10:5060;branch=%s\r\n" % branch
            to_tagged = "To: <sip:%s@192.0.2.1;user=phone>;tag=%s\r\n" % (callee, ttag)

            def resp(code, reason, cseq="1 INVITE", body=""):
                ct = "Content-Type: application/sdp\r\n" if body else ""
                return (
                    "SIP/2.0 %d %s\r\n%s%s%sCSeq: %s\r\nServer: gen-uas/1\r\n%sContent-Length: %d\r\n\r\n%s"
                    % (code, reason, via, common, to_tagged if code > 100 else "To: <sip:%s@192.0.2.1>\r\n" % callee,
                       cseq, ct, len(body), body)
                ).encode()

            emit(t + 2_000, UAS, UAC, 5060, 5060, resp(100, "Trying"))
            emit(t + 50_000, UAS, UAC, 5060, 5060, resp(180, "Ringing"))
            emit(t + 1_000_000, UAS, UAC, 5060, 5060, resp(200, "OK", body=sdp.replace("uac", "uas")))
            req = lambda m, cseq: (
                "%s sip:%s@192.0.2.1:5060 SIP/2.0\r\n%sMax-Forwards: 70\r\n%s%sCSeq: %s\r\nContent-Length: 0\r\n\r\n"
                % (m, callee, via, common, to_tagged, cseq)
            ).encode()
            emit(t + 1_010_000, UAC, UAS, 5060, 5060, req("ACK", "1 ACK"))
            emit(t + 5_000_000, UAC, UAS, 5060, 5060, req("BYE", "2 BYE"))
            emit(t + 5_020_000, UAS, UAC, 5060, 5060, resp(200, "OK", cseq="2 BYE"))
        while pending:
            pt, _, src, dst, text = heapq.heappop(pending)
            write(pt, src, dst, text)


if __name__ == "__main__":
    main()
