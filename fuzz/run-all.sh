#!/bin/sh
# Runs every fuzz target in turn for SECONDS each (default 60), niced, one process each (no
# -jobs: libFuzzer would then log to ./fuzz-N.log instead of the per-target log), on its
# committed corpus (new finds are added there; minimise with `cargo fuzz cmin` before
# committing). Crashes land in fuzz/artifacts/<target>/. Needs a nightly toolchain and
# cargo-fuzz (`cargo install cargo-fuzz --locked`). Prints one summary line per target.
# Usage: fuzz/run-all.sh [SECONDS] [TARGET...]
set -eu
cd "$(dirname "$0")/.."
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-"decode defrag tcp sip identity certs hep"}
logdir=fuzz/logs
mkdir -p "$logdir"
cargo +nightly fuzz build -O
status=0
for t in $targets; do
    mkdir -p "fuzz/corpus/$t"
    seeds=""
    [ -d "fuzz/seeds/$t" ] && seeds="fuzz/seeds/$t"
    start=$(date +%s)
    if nice -n 10 cargo +nightly fuzz run -O "$t" "fuzz/corpus/$t" $seeds -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 >"$logdir/$t.log" 2>&1; then
        result=ok
    else
        result="FAILED (see $logdir/$t.log and fuzz/artifacts/$t/)"
        status=1
    fi
    end=$(date +%s)
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logdir/$t.log" | grep -o '[0-9]*$' | tail -1)
    echo "$t: $((end - start)) s, ${execs:-?} execs, $result"
done
exit $status
