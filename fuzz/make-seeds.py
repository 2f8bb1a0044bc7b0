#!/usr/bin/env python3
"""Writes the fuzz seed inputs into fuzz/seeds/<target>/ from the repo's own captures
(pcaps/*.pcap) and SIP samples (tests/data/sip), in each target's record format (see the
doc comment of each fuzz_targets/*.rs), plus crafted certificate seeds.

Certificate seeds (a throw-away root, intermediate and SHAKEN leaf with a TNAuthList, made
with the `cryptography` package) are only written with --certs, which also rewrites
fuzz/anchor.pem: the committed corpus was made against the committed anchor.

Never reads ../shared or any third-party capture: seeds come only from this repository.
Usage: fuzz/make-seeds.py [--certs]
"""
import glob
import os
import re
import struct
import sys
import zlib
import base64
import json

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SEEDS = os.path.join(HERE, "seeds")
# Index into LINKTYPES of fuzz_targets/decode.rs.
LINK_SELECTOR = {1: 0, 0: 1, 101: 4, 108: 5, 113: 6, 228: 7, 229: 8, 276: 9}


def read_pcap(path):
    data = open(path, "rb").read()
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    frames, pos = [], 24
    while pos + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[pos:pos + 16])
        frames.append(data[pos + 16:pos + 16 + incl])
        pos += 16 + incl
    return linktype, frames


def ip_of(linktype, frame):
    """(version, ip bytes) or None: strips Ethernet (+VLAN), SLL, SLL2."""
    if linktype == 1:
        off, et = 12, None
        while off + 2 <= len(frame):
            et = struct.unpack(">H", frame[off:off + 2])[0]
            if et in (0x8100, 0x88A8):
                off += 4
                continue
            off += 2
            break
    elif linktype == 113:
        et, off = struct.unpack(">H", frame[14:16])[0], 16
    elif linktype == 276:
        et, off = struct.unpack(">H", frame[0:2])[0], 20
    else:
        return None
    if et == 0x0800:
        return 4, frame[off:]
    if et == 0x86DD:
        return 6, frame[off:]
    return None


def rec16(b):
    return struct.pack(">H", len(b)) + b


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def fragments(ver, ip):
    """(id, offset_units, more, data) of an IP fragment, else None."""
    if ver == 4 and len(ip) >= 20:
        ihl = (ip[0] & 15) * 4
        ident, fo = struct.unpack(">HH", ip[4:8])
        more, off = bool(fo & 0x2000), fo & 0x1FFF
        if more or off:
            tot = struct.unpack(">H", ip[2:4])[0]
            return ident, off, more, ip[ihl:tot]
    if ver == 6 and len(ip) >= 48 and ip[6] == 44:
        fh = ip[40:48]
        fo = struct.unpack(">H", fh[2:4])[0]
        return struct.unpack(">I", fh[4:8])[0], fo >> 3, bool(fo & 1), ip[48:]
    return None


def tcp_segment(ver, ip):
    """(sport, seq, flags, payload) of a TCP segment, else None."""
    if ver == 4 and len(ip) >= 20 and ip[9] == 6:
        ihl, tot = (ip[0] & 15) * 4, struct.unpack(">H", ip[2:4])[0]
        t = ip[ihl:tot]
    elif ver == 6 and len(ip) >= 40 and ip[6] == 6:
        t = ip[40:]
    else:
        return None
    if len(t) < 20:
        return None
    sport, _, seq = struct.unpack(">HHI", t[:8])
    doff, fl = (t[12] >> 4) * 4, t[13]
    return sport, seq, fl, t[doff:]


def udp_payload(ver, ip):
    if ver == 4 and len(ip) >= 20 and ip[9] == 17:
        fo = struct.unpack(">H", ip[6:8])[0]
        if fo & 0x3FFF:
            return None
        ihl = (ip[0] & 15) * 4
        return ip[ihl + 8:]
    if ver == 6 and len(ip) >= 48 and ip[6] == 17:
        return ip[48:]
    return None


def sip_messages():
    """(name, bytes) of every SIP message in tests/data/sip and in the UDP/TCP pcaps."""
    out = []
    for p in sorted(glob.glob(os.path.join(REPO, "tests/data/sip/*.sip"))):
        out.append((os.path.basename(p), open(p, "rb").read()))
    return out


def main():
    certs = "--certs" in sys.argv
    seen_identity = set()
    for msg_name, m in sip_messages():
        write("sip", "data-" + msg_name, m)
        for v in re.findall(rb"(?im)^(?:identity|y)[ \t]*:[ \t]*(.+?)\r?$", m):
            seen_identity.add(v)
    for path in sorted(glob.glob(os.path.join(REPO, "pcaps/*.pcap"))):
        base = os.path.splitext(os.path.basename(path))[0]
        lt, frames = read_pcap(path)
        sel = LINK_SELECTOR.get(lt)
        if sel is not None:
            # Decode: the capture in chunks of 12 frames (keeps each seed small).
            for i in range(0, len(frames), 12):
                chunk = frames[i:i + 12]
                write("decode", f"{base}-{i:04d}", bytes([sel]) + b"".join(rec16(f) for f in chunk))
        frag_recs, tcp_recs, streams = [], [], {}
        for f in frames:
            r = ip_of(lt, f)
            if not r:
                continue
            ver, ip = r
            fr = fragments(ver, ip)
            if fr:
                ident, off, more, data = fr
                sel_b = (ident & 7) | (8 if ver == 6 else 0)
                frag_recs.append(bytes([sel_b]) + struct.pack(">HB", off, int(more)) + rec16(data))
                continue
            seg = tcp_segment(ver, ip)
            if seg:
                sport, seq, fl, payload = seg
                idx = streams.setdefault(sport, len(streams))
                flags = (1 if fl & 2 else 0) | (2 if fl & 1 else 0) | (4 if fl & 4 else 0)
                sel_b = (idx & 3) | (4 if sport == 5060 else 0)
                tcp_recs.append(bytes([sel_b]) + struct.pack(">IB", seq, flags) + rec16(payload))
                continue
            pl = udp_payload(ver, ip)
            if pl and pl[:1].isalpha():
                write("sip", f"{base}-{len(seen_identity)}-{zlib.crc32(pl):08x}", pl)
                for v in re.findall(rb"(?im)^(?:identity|y)[ \t]*:[ \t]*(.+?)\r?$", pl):
                    seen_identity.add(v)
        for i in range(0, len(frag_recs), 8):
            write("defrag", f"{base}-{i:04d}", b"".join(frag_recs[i:i + 8]))
        for i in range(0, len(tcp_recs), 16):
            write("tcp", f"{base}-{i:04d}", b"".join(tcp_recs[i:i + 16]))
    for n, v in enumerate(sorted(seen_identity)):
        write("identity", f"identity-{n:03d}", v.strip())
    for n, v in enumerate(crafted_identities()):
        write("identity", f"crafted-{n:03d}", v)
    if certs:
        make_cert_seeds()


def b64u(obj):
    raw = obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def crafted_identities():
    """PASSporTs of each kind (shaken, div, wrong alg, missing claims) with a 64-byte signature."""
    sig = b64u(bytes(range(64)))
    x5u = "https://cert.example.org/sp.pem"
    shaken = ({"alg": "ES256", "ppt": "shaken", "typ": "passport", "x5u": x5u},
              {"attest": "A", "dest": {"tn": ["13035550177"]}, "iat": 1736528452,
               "orig": {"tn": "12025550143"}, "origid": "e32f4189-cb86-460f-bb92-bd3acb89f29c"})
    div = ({"alg": "ES256", "ppt": "div", "typ": "passport", "x5u": x5u},
           {"div": {"tn": "13035550177"}, "dest": {"tn": ["17205550199"]}, "iat": 1736528453,
            "orig": {"tn": "12025550143"}})
    bad_alg = ({"alg": "RS256", "ppt": "shaken", "typ": "passport", "x5u": x5u}, shaken[1])
    no_orig = (shaken[0], {"attest": "C", "dest": {"uri": ["sip:a@b"]}, "iat": 1})
    out = []
    for (h, p), params in [(shaken, b";info=<" + x5u.encode() + b">;alg=ES256;ppt=shaken"),
                           (div, b";info=<" + x5u.encode() + b">;ppt=\"div\""),
                           (bad_alg, b""), (no_orig, b";info=<x>")]:
        out.append(b64u(h) + b"." + b64u(p) + b"." + sig + params)
    return out


def make_cert_seeds():
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    tnauth = bytes.fromhex("3008a0061604") + b"123J"
    t0 = datetime.datetime(2024, 1, 1)
    t1 = datetime.datetime(2034, 1, 1)
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]

    def cert(subject, key, issuer, ikey, ca, pathlen, leaf):
        b = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(t0).not_valid_after(t1)
             .add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
        if issuer != subject:
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ikey.public_key()), critical=False)
        if ca:
            b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        if leaf:
            b = b.add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            b = b.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.5.5.7.1.26"), tnauth), critical=False)
            b = b.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                [x509.UniformResourceIdentifier("http://127.0.0.1:8931/ca.crl")], None, None, None)]), critical=False)
        return b.sign(ikey, hashes.SHA256())

    root = cert("Fuzz STI-CA", keys[0], "Fuzz STI-CA", keys[0], True, 1, False)
    inter = cert("Fuzz STI-SP CA", keys[1], "Fuzz STI-CA", keys[0], True, 0, False)
    leaf = cert("Fuzz SHAKEN 123J", keys[2], "Fuzz STI-SP CA", keys[1], False, None, True)
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)
    der = lambda c: c.public_bytes(serialization.Encoding.DER)
    with open(os.path.join(HERE, "anchor.pem"), "wb") as f:
        f.write(pem(root))
    write("certs", "0-leaf-der", b"\x00" + der(leaf))
    write("certs", "0-root-der", b"\x00" + der(root))
    write("certs", "1-bundle-pem", b"\x01" + pem(leaf) + pem(inter))
    write("certs", "1-leaf-der", b"\x01" + der(leaf))
    write("certs", "2-tnauth-spc", b"\x02" + tnauth)
    write("certs", "2-tnauth-range", b"\x02" + bytes.fromhex("3012a1103008160431323334020101a1") + bytes.fromhex("00"))
    write("certs", "2-tnauth-one", b"\x02" + bytes.fromhex("300ea20c160a3132303235353530313433"))
    write("certs", "3-chain", b"\x03" + pem(leaf) + pem(inter))


if __name__ == "__main__":
    main()
