#!/usr/bin/env python3
"""Writes the sipp injection files (-inf) used by ../make-samples.sh.

Run once by hand; the CSVs are committed, make-samples.sh only reads them.
Every call in every sample gets its own index NN (00..56):
  caller  +120255501NN  (From, P-Asserted-Identity)  -- fictional 555-01XX numbers
  callee  +130355501NN  (Request-URI, To)
  UAC media port 30000+2*NN, UAS media port 40000+2*NN
fragmented.csv adds field4 = a dummy PASSporT-shaped compact JWS (real base64url JSON
header and claims matching the call's numbers, but a made-up 64-byte "signature": it
does not verify) and field5 = X-Padding filler.
"""
import base64, hashlib, json, os, uuid

HERE = os.path.dirname(os.path.abspath(__file__))

SETS = [  # file, first NN, count
    ("udp-answered.csv", 0, 10),
    ("outcomes-cancel.csv", 10, 4),
    ("outcomes-busy.csv", 14, 4),
    ("outcomes-notfound.csv", 18, 4),
    ("outcomes-callee-bye.csv", 22, 2),
    ("tcp-answered.csv", 24, 10),
    ("ipv6-answered.csv", 34, 5),
    ("fragmented.csv", 39, 8),
    ("sll.csv", 47, 5),
    ("sll2.csv", 52, 5),
]


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(nn: int) -> str:
    hdr = {"alg": "ES256", "ppt": "shaken", "typ": "passport",
           "x5u": "https://cert.example.org/sp.pem"}
    origid = str(uuid.UUID(bytes=hashlib.sha256(b"origid%d" % nn).digest()[:16], version=4))
    claims = {
        "attest": "A",
        "dest": {"tn": ["130355501%02d" % nn]},
        "iat": 1767225600,  # 2026-01-01T00:00:00Z, so always stale: this is a dummy
        "orig": {"tn": "120255501%02d" % nn},
        "origid": origid,
        "rcd": {"nam": "Shaken Sensor Sample Caller %02d" % nn,
                "icn": "https://cert.example.org/logos/sample-caller-%02d.png" % nn},
        "crn": "dummy PASSporT from shaken-sensor pcaps/make-samples.sh: "
               "the signature is random bytes and does not verify, "
               "it only makes the INVITE large enough to be IP-fragmented",
    }
    sig = hashlib.sha512(b"sig%d" % nn).digest()[:64]  # ES256 raw r||s is 64 bytes
    return ".".join([b64u(json.dumps(hdr, separators=(",", ":"), sort_keys=True).encode()),
                     b64u(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()),
                     b64u(sig)])


def main():
    for name, first, count in SETS:
        lines = ["SEQUENTIAL"]
        for nn in range(first, first + count):
            f = ["+120255501%02d" % nn, "+130355501%02d" % nn, str(30000 + 2 * nn), str(40000 + 2 * nn)]
            if name == "fragmented.csv":
                f.append(token(nn))
                f.append(hashlib.sha256(b"pad%d" % nn).hexdigest() * 9)  # 576 bytes
            lines.append(";".join(f) + ";")
        with open(os.path.join(HERE, name), "w") as fh:
            fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
