#!/usr/bin/env python3
"""Rewrite a classic pcap (Ethernet or Linux-cooked, IPv4) so that every IPv4 datagram larger
than MTU is split into RFC 791 fragments, as a path with that MTU would carry it.
benches/perf.sh makes capture (c) from the sipp capture (b) with it. Standard library only.

usage: fragment_pcap.py IN.pcap OUT.pcap [MTU]   (default MTU 1500)
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_calls import fragments  # noqa: E402  (one fragmenter for both tools)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    mtu = int(sys.argv[3]) if len(sys.argv) > 3 else 1500
    with open(src, "rb") as f, open(dst, "wb") as o:
        ghdr = f.read(24)
        magic, = struct.unpack("<I", ghdr[:4])
        if magic not in (0xA1B2C3D4, 0xA1B23C4D):
            sys.exit("fragment_pcap.py: only little-endian classic pcap is supported")
        linktype, = struct.unpack("<I", ghdr[20:24])
        link_len = {1: 14, 113: 16}.get(linktype)
        if link_len is None:
            sys.exit("fragment_pcap.py: link type %d not supported" % linktype)
        ident = 0
        o.write(ghdr[:16] + struct.pack("<I", 65535) + ghdr[20:])
        while True:
            rh = f.read(16)
            if len(rh) < 16:
                break
            sec, frac, incl, orig = struct.unpack("<IIII", rh)
            frame = f.read(incl)
            link, ip = frame[:link_len], frame[link_len:]
            is_v4 = len(ip) > 20 and ip[0] >> 4 == 4
            if is_v4 and len(ip) > mtu and not (struct.unpack("!H", ip[6:8])[0] & 0x3FFF):
                ident += 1
                for p in fragments(ip, mtu, ident):
                    o.write(struct.pack("<IIII", sec, frac, len(link) + len(p), len(link) + len(p)))
                    o.write(link + p)
            else:
                o.write(rh + frame)


if __name__ == "__main__":
    main()
