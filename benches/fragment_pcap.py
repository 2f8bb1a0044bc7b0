#!/usr/bin/env python3
"""Rewrite a classic pcap (Ethernet or Linux-cooked, IPv4) so that every IPv4 datagram larger
than MTU is split into RFC 791 fragments, as a path with that MTU would carry it.
benches/perf.sh makes capture (c) from the sipp capture (b) with it. Standard library only.

usage: fragment_pcap.py IN.pcap OUT.pcap [MTU]   (default MTU 1500)
"""
import struct
import sys


def fragments(packet, mtu, ident):
    # Linux sends DF datagrams with IP ID 0; fragments need distinct IDs to be reassembled
    ihl = (packet[0] & 0x0F) * 4
    header, payload = packet[:ihl], packet[ihl:]
    step = (mtu - ihl) // 8 * 8
    out = []
    for off in range(0, len(payload), step):
        chunk = payload[off:off + step]
        more = 0x2000 if off + step < len(payload) else 0
        h = bytearray(header)
        struct.pack_into("!H", h, 2, ihl + len(chunk))
        struct.pack_into("!H", h, 4, ident & 0xFFFF)
        struct.pack_into("!H", h, 6, more | (off // 8))
        struct.pack_into("!H", h, 10, 0)
        csum = sum((h[i] << 8) | h[i + 1] for i in range(0, ihl, 2))
        csum = (csum & 0xFFFF) + (csum >> 16)
        struct.pack_into("!H", h, 10, ~((csum & 0xFFFF) + (csum >> 16)) & 0xFFFF)
        out.append(bytes(h) + chunk)
    return out


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
