#!/usr/bin/env bash
# Detection evaluation over what real originators vary (issue #13): for every scenario variant
# (stable-origid, fresh-origid, ua-rotate, ua-copy, slow-start, fast, busiest-peer) and SEEDS
# seeds, generates the labelled scenario, replays it with --detections and scores it with
# `shaken-sensor evaluate --json`; then prints the table of docs/detection-evaluation.md (per
# campaign kind and variant: detected, time to first event, right peer; events on background
# and legitimate senders) and exits non-zero when any run misses a goal.
# usage: benches/detection-matrix.sh [WORKDIR] [SEEDS] [SCALE] [BIN]
#   (needs openssl and python3; BIN defaults to a fresh release build)
set -euo pipefail
work=${1:-target/detection-matrix}
seeds=${2:-5}
scale=${3:-small}
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
bin=${4:-}
if [ -z "$bin" ]; then
  cargo build --release --quiet
  bin=${CARGO_TARGET_DIR:-target}/release/shaken-sensor
fi
variants="stable-origid fresh-origid ua-rotate ua-copy slow-start fast busiest-peer"
mkdir -p "$work"
for v in $variants; do
  for seed in $(seq 1 "$seeds"); do
    d="$work/$v-$seed"
    rm -rf "$d"
    mkdir -p "$d"
    "$bin" scenario --out "$d/s" --scale "$scale" --seed "$seed" --variant "$v" > "$d/generate.json"
    "$bin" replay "$d/s/scenario.pcap" --config "$d/s/sensor.toml" \
      --detections "$d/detections.jsonl" -q
    "$bin" evaluate --scenario "$d/s" --detections "$d/detections.jsonl" --json \
      > "$d/evaluation.json" || true
    rm -f "$d/s/scenario.pcap"
    echo "$v seed $seed: $(python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); print("PASS" if e["passed"] else "FAIL")' "$d/evaluation.json")" >&2
  done
done
python3 "$repo/benches/detection_matrix_table.py" "$work" $variants
