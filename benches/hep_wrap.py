#!/usr/bin/env python3
"""Turn a SIP capture into the HEP feed an agent would have sent for it, for benches/hep_ingest.sh.

  wrap IN.pcap OUT.pcap   every UDP SIP datagram of IN (classic pcap, Ethernet/IPv4/UDP, not
                          fragmented) becomes a HEPv3 packet (original addresses, ports and
                          time in its chunks, capture id 2001) from agent 10.0.0.9:40000 to
                          10.0.0.1:9060, at the same capture time
  send IN.pcap HOST:PORT  sends the HEPv3 packets for IN's datagrams over UDP as fast as this
                          process can, their times shifted to start now; prints "sent N in S s"
Standard library only.
"""
import socket
import struct
import sys
import time

ETH = b"\x00\x00\x00\x00\x00\x02" + b"\x00\x00\x00\x00\x00\x01" + b"\x08\x00"


def packets(path):
    data = open(path, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic != 0xA1B2C3D4:
        sys.exit("%s: only little-endian classic pcap (µs) is supported" % path)
    if struct.unpack("<I", data[20:24])[0] != 1:
        sys.exit("%s: only Ethernet captures are supported" % path)
    pos = 24
    while pos + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack("<IIII", data[pos:pos + 16])
        frame = data[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        if len(frame) < 42 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 17 or struct.unpack("!H", ip[6:8])[0] & 0x3FFF:
            continue
        src, dst = ip[12:16], ip[16:20]
        sport, dport, ulen = struct.unpack("!HHH", ip[ihl:ihl + 6])
        yield sec, usec, src, dst, sport, dport, ip[ihl + 8:ihl + ulen]


def chunk(kind, value):
    return struct.pack("!HHH", 0, kind, 6 + len(value)) + value


def hep3(sec, usec, src, dst, sport, dport, payload):
    body = (chunk(1, b"\x02") + chunk(2, b"\x11") + chunk(3, src) + chunk(4, dst)
            + chunk(7, struct.pack("!H", sport)) + chunk(8, struct.pack("!H", dport))
            + chunk(9, struct.pack("!I", sec)) + chunk(10, struct.pack("!I", usec))
            + chunk(11, b"\x01") + chunk(12, struct.pack("!I", 2001)) + chunk(15, payload))
    return b"HEP3" + struct.pack("!H", 6 + len(body)) + body


def wrap(inp, out):
    agent, collector = bytes([10, 0, 0, 9]), bytes([10, 0, 0, 1])
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for n, (sec, usec, src, dst, sport, dport, payload) in enumerate(packets(inp)):
            h = hep3(sec, usec, src, dst, sport, dport, payload)
            udp = struct.pack("!HHHH", 40000, 9060, 8 + len(h), 0) + h
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n & 0xFFFF, 0, 64, 17, 0,
                             agent, collector) + udp
            frame = ETH + ip
            f.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)


def send(inp, target):
    host, port = target.rsplit(":", 1)
    # An agent stamps what it mirrors with its clock: shift the capture's times to start now.
    pkts = list(packets(inp))
    shift = int(time.time()) - pkts[0][0] if pkts else 0
    msgs = [hep3(p[0] + shift, *p[1:]) for p in pkts]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.connect((host, int(port)))
    start = time.monotonic()
    for m in msgs:
        s.send(m)
    took = time.monotonic() - start
    print("sent %d in %.3f s (%.0f packets/s)" % (len(msgs), took, len(msgs) / took))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "wrap":
        wrap(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "send":
        send(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
