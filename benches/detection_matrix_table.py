#!/usr/bin/env python3
"""Summarises benches/detection-matrix.sh runs (WORKDIR/<variant>-<seed>/evaluation.json) as
the Markdown tables of docs/detection-evaluation.md; exits 1 when a goal of issue #13 is
missed: a campaign of >= 30 calls undetected, later than 60 s or on the wrong peer, a median
first-event time above 20 s, or any event resting only on background or legitimate senders.
usage: detection_matrix_table.py WORKDIR VARIANT..."""
import json
import os
import statistics
import sys


def main():
    work, variants = sys.argv[1], sys.argv[2:]
    runs = {}
    for name in sorted(os.listdir(work)):
        path = os.path.join(work, name, "evaluation.json")
        if os.path.exists(path):
            variant, _, seed = name.rpartition("-")
            runs.setdefault(variant, []).append((int(seed), json.load(open(path))))
    kinds = sorted({c["kind"] for rs in runs.values() for _, e in rs for c in e["campaigns"]})
    failed = []
    print("| campaign kind | " + " | ".join(variants) + " |")
    print("|---|" + "---|" * len(variants))
    for kind in kinds:
        cells = []
        for v in variants:
            camps = [(s, c) for s, e in runs.get(v, []) for c in e["campaigns"] if c["kind"] == kind]
            if not camps:
                cells.append("-")
                continue
            det = sum(c["detected"] for _, c in camps)
            peer = sum(c["right_peer"] is True for _, c in camps)
            lat = [c["latency_s"] for _, c in camps if c["latency_s"] is not None]
            cell = f"{det}/{len(camps)} det, {peer} peer"
            if lat:
                cell += f", {statistics.median(lat):.1f}/{max(lat):.1f} s"
            cells.append(cell)
            for s, c in camps:
                ok = c["detected"] and c["right_peer"] and (c["latency_s"] or 1e9) <= 60
                if c["calls"] >= 30 and not ok:
                    failed.append(f"{v} seed {s}: {c['id']} ({kind}) detected={c['detected']} "
                                  f"peer={c['right_peer']} latency={c['latency_s']}")
        print(f"| {kind} | " + " | ".join(cells) + " |")
    print()
    print("| variant | runs | campaigns detected | median / max first event | "
          "events on background or legit | first rules |")
    print("|---|---|---|---|---|---|")
    for v in variants:
        rs = runs.get(v, [])
        camps = [c for _, e in rs for c in e["campaigns"]]
        lat = [c["latency_s"] for c in camps if c["latency_s"] is not None]
        fp = sum(e["events_on_background"] for _, e in rs)
        rules = {}
        for c in camps:
            if c["first_rule"]:
                rules[c["first_rule"]] = rules.get(c["first_rule"], 0) + 1
        med = statistics.median(lat) if lat else float("nan")
        print(f"| {v} | {len(rs)} | {sum(c['detected'] for c in camps)}/{len(camps)} | "
              f"{med:.1f} / {max(lat, default=float('nan')):.1f} s | {fp} | "
              + ", ".join(f"{k} {n}" for k, n in sorted(rules.items())) + " |")
        if lat and med > 20:
            failed.append(f"{v}: median first event {med:.1f} s > 20 s")
        for s, e in rs:
            for f in e["false_positives"]:
                failed.append(f"{v} seed {s}: event {f['detection_id']} ({f['rule']}) on {f['owner']}")
    print()
    if failed:
        print("FAIL:")
        for f in failed:
            print(f"- {f}")
        sys.exit(1)
    print("PASS: every campaign detected within 60 s on its peer, no event on background")


if __name__ == "__main__":
    main()
