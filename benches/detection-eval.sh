#!/usr/bin/env bash
# Campaign detection evaluation at full size (issue #4): generates the labelled scenario
# (200,000 background calls over an hour, a pharmacy and a school district, 16 injected
# campaigns of the 8 kinds), replays it with --detections, and scores the DetectionEvents.
# Prints generation and replay wall time, peak RSS, pcap size and the evaluation table;
# exits non-zero when `evaluate` fails (a campaign missed, late, wrong peer, or a false positive).
# usage: benches/detection-eval.sh [WORKDIR] [SEED] [SCALE]   (needs openssl and GNU time)
set -euo pipefail
work=${1:-target/detection-eval}
seed=${2:-1}
scale=${3:-full}
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/shaken-sensor
rm -rf "$work/scenario"
mkdir -p "$work"
/usr/bin/time -v "$bin" scenario --out "$work/scenario" --scale "$scale" --seed "$seed" \
  > "$work/generate.json" 2> "$work/generate.time"
/usr/bin/time -v "$bin" replay "$work/scenario/scenario.pcap" --config "$work/scenario/sensor.toml" \
  --detections "$work/detections.jsonl" --summary-json "$work/replay.json" -q 2> "$work/replay.time"
wall() { awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$1"; }
rss() { awk '/Maximum resident/ {printf "%.0f MB", $6/1024}' "$1"; }
echo "scenario: $(tr -d '\n ' < "$work/generate.json")"
echo "generate: $(wall "$work/generate.time") wall, $(rss "$work/generate.time") peak RSS;" \
  "pcap $(du -m "$work/scenario/scenario.pcap" | cut -f1) MB"
echo "replay --detections: $(wall "$work/replay.time") wall, $(rss "$work/replay.time") peak RSS;" \
  "$(wc -l < "$work/detections.jsonl") event lines"
"$bin" evaluate --scenario "$work/scenario" --detections "$work/detections.jsonl"
