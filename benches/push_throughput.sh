#!/bin/sh
# End-to-end push throughput to the local reference collector (release build).
#   benches/push_throughput.sh [CALLS] [BATCH_MAX_RECORDS] [MAX_IN_FLIGHT]
# 1. replay CALLS generated calls with push on and the collector up: records/s from capture to
#    the collector's SQLite (spooling, gzip, HTTP, dedup insert all included);
# 2. backlog drain: the same records spooled while the collector is down, then delivered by a
#    restarted sensor: pure push records/s out of the spool (spool scan at start included).
# Each line also gives the CPU seconds the sensor and the collector used, so the figure can be
# read against the machine's cores. BIN_DIR=dir runs other binaries (e.g. a baseline build).
# COLLECTOR_ARGS="--synchronous normal" passes options to the collector.
set -eu
CALLS=${1:-100000}
BATCH=${2:-2000}
IN_FLIGHT=${3:-4}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
W=${TMPDIR:-/tmp}/push-bench
rm -rf "$W" && mkdir -p "$W"
[ -n "${SKIP_BUILD:-}" ] || (cd "$ROOT" && cargo build --release --workspace --bins -q)
python3 "$ROOT/benches/gen_calls.py" "$W/calls.pcap" "$CALLS"
python3 "$ROOT/benches/gen_calls.py" "$W/empty.pcap" 0

start_collector() { # $1 = db, $2 = bind
  "$BIN/shaken-collector" --bind "$2" --db "$1" --token bench ${COLLECTOR_ARGS:-} > "$W/collector.out" 2>/dev/null &
  CPID=$!
  ADDR=
  while [ -z "$ADDR" ]; do
    kill -0 "$CPID" 2>/dev/null || { echo "collector did not start" >&2; exit 1; }
    sleep 0.1
    ADDR=$(sed -n 's/^listening on \([0-9.]*:[0-9]*\)$/\1/p' "$W/collector.out")
  done
}
config() { # $1 = addr, $2 = drain_timeout_s
  cat > "$W/sensor.toml" <<TOML
[sensor]
id = "bench"
[push]
enabled = true
url = "http://$1"
allow_http = true
token = "bench"
spool_dir = "$W/spool"
dead_letter_dir = "$W/dead"
batch_max_records = $BATCH
batch_max_bytes = 4194304
max_in_flight = $IN_FLIGHT
drain_timeout_s = $2
backoff_initial_ms = 50
backoff_max_ms = 200
TOML
}
now() { date +%s.%N; }
# CPU seconds (user + system) of a live process.
cpu() { python3 -c "import os,sys;f=open(f'/proc/{sys.argv[1]}/stat').read().rsplit(')',1)[1].split();print((int(f[11])+int(f[12]))/os.sysconf('SC_CLK_TCK'))" "$1"; }
# Runs the sensor, recording its CPU seconds in $W/sensor.cpu.
sensor() { /usr/bin/time -f "%U %S" -o "$W/sensor.cpu" "$BIN/shaken-sensor" "$@"; }
cpus() { python3 -c "import sys;u,s=open(sys.argv[1]).read().split()[-2:];print(f'sensor {float(u)+float(s):.1f} s CPU, collector {float(sys.argv[2]):.1f} s CPU')" "$W/sensor.cpu" "$1"; }
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), load $(cut -d' ' -f1-3 /proc/loadavg); batch_max_records $BATCH, max_in_flight $IN_FLIGHT"
rate() { python3 -c "import sys;n,a,b=int(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]);print(f'{n} records in {b-a:.2f} s: {n/(b-a):,.0f} records/s')" "$@"; }
count() { python3 -c "import sqlite3,sys;print(sqlite3.connect(sys.argv[1]).execute('select count(*) from records').fetchone()[0])" "$1"; }

start_collector "$W/c1.sqlite" 127.0.0.1:0
config "$ADDR" 3600
t0=$(now)
sensor replay "$W/calls.pcap" --config "$W/sensor.toml" --out "" -q
t1=$(now)
ccpu=$(cpu "$CPID")
kill "$CPID"; wait "$CPID" 2>/dev/null || true
n=$(count "$W/c1.sqlite")
echo "replay + push, collector up: $(rate "$n" "$t0" "$t1"); $(cpus "$ccpu")"

rm -rf "$W/spool"
PORT=$(python3 -c "import socket;s=socket.socket();s.bind(('127.0.0.1',0));print(s.getsockname()[1])")
config "127.0.0.1:$PORT" 0
"$BIN/shaken-sensor" replay "$W/calls.pcap" --config "$W/sensor.toml" --out "" -q 2>/dev/null
start_collector "$W/c2.sqlite" "127.0.0.1:$PORT"
config "$ADDR" 3600
t0=$(now)
sensor replay "$W/empty.pcap" --config "$W/sensor.toml" --out "" -q
t1=$(now)
ccpu=$(cpu "$CPID")
kill "$CPID"; wait "$CPID" 2>/dev/null || true
n=$(count "$W/c2.sqlite")
echo "backlog drain from the spool: $(rate "$n" "$t0" "$t1"); $(cpus "$ccpu")"
du -sh "$W/c2.sqlite" | sed 's/^/collector db: /'
