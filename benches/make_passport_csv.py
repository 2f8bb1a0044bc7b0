#!/usr/bin/env python3
"""Write a sipp injection file (-inf) of INVITEs that each carry a distinct, valid SHAKEN
PASSporT (ES256), for benches/perf.sh capture (b).

usage: make_passport_csv.py OUT.csv COUNT KEY.pem [--x5u URL] [--iat UNIX]
  KEY.pem: the PKCS#8 P-256 key of the leaf certificate made by benches/make-pki.sh
  fields: caller;callee;media port;compact PASSporT (distinct numbers, origid and media port
  per call, so no cache or table flatters the figures). Needs python3-cryptography.
"""
import argparse
import base64
import json
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("count", type=int)
    ap.add_argument("key")
    ap.add_argument("--x5u", default="https://cert.example.org/sp.pem")
    ap.add_argument("--iat", type=int, default=int(time.time()))
    a = ap.parse_args()
    key = serialization.load_pem_private_key(open(a.key, "rb").read(), None)
    header = b64u(json.dumps({"alg": "ES256", "ppt": "shaken", "typ": "passport", "x5u": a.x5u},
                             separators=(",", ":")).encode())
    with open(a.out, "w") as out:
        out.write("SEQUENTIAL\n")
        for n in range(a.count):
            caller = "+1202%07d" % (n % 10_000_000)
            callee = "+1303%07d" % ((n * 7919) % 10_000_000)
            claims = {"attest": "A", "dest": {"tn": [callee[1:]]}, "iat": a.iat,
                      "orig": {"tn": caller[1:]},
                      "origid": "%08x-0000-4000-8000-%012x" % (n & 0xFFFFFFFF, n)}
            body = header + "." + b64u(json.dumps(claims, separators=(",", ":")).encode())
            r, s = decode_dss_signature(key.sign(body.encode(), ec.ECDSA(hashes.SHA256())))
            sig = b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
            out.write("%s;%s;%d;%s.%s\n" % (caller, callee, 20000 + 2 * (n % 20000), body, sig))


if __name__ == "__main__":
    main()
