#!/usr/bin/env bash
# Replay throughput on generated captures (not committed: they are hundreds of MB).
#   (a) CALLS full dialogs, unsigned (7 SIP messages per call)
#   (b) CALLS INVITEs, each with a distinct valid SHAKEN PASSporT (certificate pre-seeded)
#   (c) (b) fragmented for a 1500-byte MTU
# Each is replayed 3 times with 1 and 2 workers; prints rates and peak RSS (/usr/bin/time -v).
# usage: benches/throughput.sh [CALLS] [WORKDIR]   (needs python3-cryptography, openssl, time)
set -euo pipefail
calls=${1:-200000}
work=${2:-target/bench-captures}
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
mkdir -p "$work"
cargo build --release --quiet
bin=target/release/shaken-sensor
start=$(date +%s)
[ -f "$work/pki/root.pem" ] || bash benches/make-pki.sh "$work/pki" >/dev/null
[ -f "$work/a.pcap" ] || python3 benches/gen_calls.py "$work/a.pcap" "$calls"
python3 benches/gen_calls.py "$work/b.pcap" "$calls" --invites-only --sign-key "$work/pki/leaf.key" --pad 480 --start "$start"
python3 benches/gen_calls.py "$work/c.pcap" "$calls" --invites-only --sign-key "$work/pki/leaf.key" --pad 480 --start "$start" --mtu 1500
for w in 1 2; do
  cat > "$work/w$w.toml" <<TOML
[sensor]
workers = $w
[output]
records = ""
[shaken]
trust_anchors = ["$work/pki/root.pem"]
certs = [{ url = "https://cert.example.org/sp.pem", file = "$work/pki/leaf-bundle.pem" }]
[shaken.x5u]
fetch = false
TOML
done
printf '%-8s %-7s %14s %12s %10s %8s\n' capture workers "SIP msg/s" "INVITE/s" "passed" "RSS MB"
for cap in a b c; do
  for w in 1 2; do
    for run in 1 2 3; do
      /usr/bin/time -v "$bin" replay "$work/$cap.pcap" --config "$work/w$w.toml" -q \
        --summary-json "$work/s.json" --metrics-out "$work/m.txt" 2> "$work/time.txt"
      rss=$(awk '/Maximum resident/ {printf "%.0f", $6/1024}' "$work/time.txt")
      passed=$(awk '/^shaken_sensor_verifications_total\{.*TN-Validation-Passed/ {s+=$2} END {print s+0}' "$work/m.txt")
      python3 - "$work/s.json" "$cap" "$w" "$passed" "$rss" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print("%-8s %-7s %14.0f %12.0f %10s %8s" % (sys.argv[2], sys.argv[3], s["sip_messages_per_s"], s["invites_per_s"], sys.argv[4], sys.argv[5]))
PY
    done
  done
done
