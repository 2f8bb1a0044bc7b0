#!/usr/bin/env bash
# perf.sh -- the performance workflow (issue 7) in one command, as root:
#
#   benches/perf.sh [--calls N] [--runs K] [--rate-a CPS] [--rate-b CPS] [--live-rate CPS]
#                   [--live-s S] [--work DIR] [--no-peers] [--no-live]
#
# Captures, made with real tools on loopback (sipp places the calls, tcpdump records them):
#   (a) N unsigned calls with full dialogs (INVITE 100 180 200 ACK BYE 200), distinct numbers
#       and media ports (pcaps/scenarios/uac-answered.xml, uas-answered.xml);
#   (b) N INVITEs each carrying a distinct valid ES256 PASSporT (make_passport_csv.py signs
#       them with the leaf key of make-pki.sh; the certificate is pre-seeded, nothing fetched);
#   (c) (b) fragmented for a 1500-byte MTU (fragment_pcap.py);
#   (g) the same dialogs as (a) from the project's own generator (gen_calls.py), which has no
#       sipp retransmissions or timing noise.
# Then, on the same files in the same run: shaken-sensor replay with 1 and 2 workers (every
# CallRecord written as JSON to /dev/null; K runs, median), tshark and sngrep extracting the
# INVITEs (one run each; they are slow), the ratios, and peak RSS (/usr/bin/time) of each.
# Finally (unless --no-live) sipp calls into `shaken-sensor run` on lo: drops inside the
# sensor, kernel drops, CPU per 1,000 calls/s.
# Results: printed, and written to WORK/results.md. Default N = 200000; .ci/run runs a small
# N only to prove the workflow still works (figures from CI mean nothing).
set -euo pipefail

calls=200000 runs=3 rate_a=4000 rate_b=10000 live_rate=2000 live_s=20
work=target/perf peers=1 live=1
while (($#)); do
    case $1 in
        --calls) calls=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --rate-a) rate_a=$2; shift 2 ;;
        --rate-b) rate_b=$2; shift 2 ;;
        --live-rate) live_rate=$2; shift 2 ;;
        --live-s) live_s=$2; shift 2 ;;
        --work) work=$2; shift 2 ;;
        --no-peers) peers=0; shift ;;
        --no-live) live=0; shift ;;
        *) echo "perf.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
[[ $(id -u) -eq 0 ]] || { echo "perf.sh: must run as root (tcpdump and live capture on lo)" >&2; exit 1; }
for t in sipp tcpdump python3 openssl /usr/bin/time; do
    command -v "$t" >/dev/null || { echo "perf.sh: $t is missing" >&2; exit 1; }
done
if ((peers)); then
    for t in tshark sngrep; do
        command -v "$t" >/dev/null || { echo "perf.sh: $t is missing (or pass --no-peers)" >&2; exit 1; }
    done
fi
mkdir -p "$work"
work=$(cd "$work" && pwd)
SC=$repo/pcaps/scenarios
UAS_PORT=15060 UAC_PORT=15061 HTTP=127.0.0.1:19464
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
log() { printf '== %s\n' "$*" >&2; }

cargo build --release --locked --quiet
bin=$repo/target/release/shaken-sensor
[[ -x $bin ]] || bin=${CARGO_TARGET_DIR:-$repo/target}/release/shaken-sensor

# ------------------------------------------------------------------ captures
[[ -f $work/pki/root.pem ]] || bash benches/make-pki.sh "$work/pki" >/dev/null

# capture FILE -- start tcpdump on lo for the sipp ports
capture_start() {
    tcpdump -i lo -n -s 0 -B 262144 -U --immediate-mode -w "$1" \
        "udp and (port $UAS_PORT or port $UAC_PORT or (ip[6:2] & 0x1fff != 0))" 2>"$1.log" &
    CAP=$!
    PIDS+=("$CAP")
    local i
    for i in $(seq 100); do grep -q 'listening on' "$1.log" && return 0; sleep 0.1; done
    echo "perf.sh: tcpdump did not start" >&2
    exit 1
}
capture_stop() {
    sleep 1
    kill -INT "$CAP"
    wait "$CAP" || true
    grep -E 'captured|dropped by kernel' "$1.log" | sed 's/^/   tcpdump: /' >&2
}

# sipp_calls UAC.xml UAS.xml CSV RATE COUNT
sipp_calls() {
    local uac=$1 uas=$2 csv=$3 rate=$4 count=$5
    timeout $((count / rate + 120)) sipp -sf "$uas" -inf "$csv" -i 127.0.0.1 -p $UAS_PORT \
        -nostdin -bg >/dev/null 2>&1 || true
    sleep 0.5
    timeout $((count / rate + 120)) sipp 127.0.0.1:$UAS_PORT -sf "$uac" -inf "$csv" \
        -i 127.0.0.1 -p $UAC_PORT -r "$rate" -m "$count" -l 200000 -nostdin \
        -timeout $((count / rate + 60))s >"$work/sipp-uac.log" 2>&1 || true
    sleep 2
    pkill -f "sipp -sf $uas" || true
}

if [[ ! -f $work/a.pcap ]]; then
    log "capture (a): $calls answered calls at $rate_a calls/s (sipp -> sipp on lo, tcpdump)"
    python3 - "$work/a.csv" "$calls" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("SEQUENTIAL\n")
    for n in range(int(sys.argv[2])):
        f.write("+1202%07d;+1303%07d;%d;%d\n" % (n % 10**7, (n * 7919) % 10**7,
                20000 + 2 * (n % 20000), 40000 + 2 * (n % 10000)))
PY
    capture_start "$work/a.pcap"
    sipp_calls "$SC/uac-answered.xml" "$SC/uas-answered.xml" "$work/a.csv" "$rate_a" "$calls"
    capture_stop "$work/a.pcap"
fi
if [[ ! -f $work/b.pcap ]]; then
    log "capture (b): $calls signed INVITEs at $rate_b/s (distinct PASSporTs)"
    python3 benches/make_passport_csv.py "$work/b.csv" "$calls" "$work/pki/leaf.key"
    capture_start "$work/b.pcap"
    sipp_calls benches/sipp/uac-invite-signed.xml benches/sipp/uas-sink.xml "$work/b.csv" "$rate_b" "$calls"
    capture_stop "$work/b.pcap"
fi
[[ -f $work/c.pcap ]] || python3 benches/fragment_pcap.py "$work/b.pcap" "$work/c.pcap" 1500
[[ -f $work/g.pcap ]] || python3 benches/gen_calls.py "$work/g.pcap" "$calls"

for w in 1 2; do
    cat >"$work/w$w.toml" <<TOML
[sensor]
workers = $w
[capture]
sip_ports = [5060, $UAS_PORT, $UAC_PORT]
[traceback]
enabled = false
[shaken]
trust_anchors = ["$work/pki/root.pem"]
certs = [{ url = "https://cert.example.org/sp.pem", file = "$work/pki/leaf-bundle.pem" }]
# the PASSporTs are signed before the capture is made; freshness is not what is measured
max_iat_age_s = 86400
[shaken.x5u]
fetch = false
TOML
done

# ------------------------------------------------------------------ sensor replays
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
declare -A RATE INV RSS MSGS
for cap in a g b c; do
    for w in 1 2; do
        : >"$work/rates.txt"
        for _ in $(seq "$runs"); do
            /usr/bin/time -f '%M' -o "$work/rss.txt" "$bin" replay "$work/$cap.pcap" \
                --config "$work/w$w.toml" --out /dev/null -q --summary-json "$work/s.json" \
                --metrics-out "$work/m-$cap-$w.txt"
            python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["sip_messages_per_s"], s["invites_per_s"], s["invites"], s["sip_messages"])' \
                "$work/s.json" | tr ' ' '\t' >>"$work/rates.txt"
            cat "$work/rss.txt" >>"$work/rss-$cap-$w.txt"
        done
        MSGS[$cap$w]=$(cut -f1 "$work/rates.txt" | median)
        RATE[$cap$w]=$(cut -f2 "$work/rates.txt" | median)
        INV[$cap]=$(cut -f3 "$work/rates.txt" | head -1)
        RSS[$cap$w]=$(($(sort -g "$work/rss-$cap-$w.txt" | tail -1) / 1024))
        rm -f "$work/rss-$cap-$w.txt"
    done
done
passed() { awk '/^shaken_sensor_verifications_total\{.*TN-Validation-Passed/ {s+=$2} END {print s+0}' "$1"; }

# ------------------------------------------------------------------ peers, same files
declare -A TSHARK SNGREP TRSS SRSS
if ((peers)); then
    for cap in a b c; do
        log "tshark and sngrep on ($cap)"
        s=$(date +%s.%N)
        /usr/bin/time -f '%M' -o "$work/rss.txt" tshark -r "$work/$cap.pcap" -Y 'sip.Method == "INVITE"' \
            -T fields -e sip.from.user -e sip.to.user -e sip.Call-ID >"$work/tshark.out" 2>/dev/null
        e=$(date +%s.%N)
        TSHARK[$cap]=$(python3 -c "print(round($(wc -l <"$work/tshark.out") / ($e - $s)))")
        TRSS[$cap]=$(($(cat "$work/rss.txt") / 1024))
        s=$(date +%s.%N)
        /usr/bin/time -f '%M' -o "$work/rss.txt" sngrep -N -q -l $((calls * 2)) -I "$work/$cap.pcap" \
            -O "$work/sngrep-out.pcap" >/dev/null 2>&1 || true
        e=$(date +%s.%N)
        SNGREP[$cap]=$(python3 -c "print(round(${INV[$cap]} / ($e - $s)))")
        SRSS[$cap]=$(($(cat "$work/rss.txt") / 1024))
    done
fi

# ------------------------------------------------------------------ live
live_line="not run (--no-live)"
if ((live)); then
    log "live: sipp at $live_rate calls/s for ${live_s}s into shaken-sensor run on lo"
    cat >"$work/live.toml" <<TOML
[sensor]
workers = 2
[capture]
interfaces = ["lo"]
sip_ports = [$UAS_PORT, $UAC_PORT]
[traceback]
enabled = false
[http]
bind = "$HTTP"
[output]
records = "$work/live-records.jsonl"
TOML
    "$bin" run --config "$work/live.toml" --metrics-out "$work/live-metrics.txt" 2>"$work/live.log" &
    SENSOR=$!
    PIDS+=("$SENSOR")
    sleep 2
    ticks0=$(awk '{print $14 + $15}' "/proc/$SENSOR/stat")
    t0=$(date +%s.%N)
    n=$((live_rate * live_s))
    python3 - "$work/live.csv" "$n" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("SEQUENTIAL\n")
    for n in range(int(sys.argv[2])):
        f.write("+1404%07d;+1505%07d;%d;%d\n" % (n % 10**7, (n * 7919) % 10**7,
                20000 + 2 * (n % 20000), 40000 + 2 * (n % 10000)))
PY
    sipp_calls "$SC/uac-answered.xml" "$SC/uas-answered.xml" "$work/live.csv" "$live_rate" "$n"
    t1=$(date +%s.%N)
    ticks1=$(awk '{print $14 + $15}' "/proc/$SENSOR/stat")
    kill -TERM "$SENSOR"
    wait "$SENSOR" || true
    hz=$(getconf CLK_TCK)
    made=$(grep -c '"call_id"' "$work/live-records.jsonl" || true)
    placed=$(awk -F';' '/Successful call/ {print $0}' "$work/sipp-uac.log" | grep -oE '[0-9]+' | tail -1 || true)
    drops=$(awk '/^shaken_sensor_capture_drops_total/ {print $1"="$2}' "$work/live-metrics.txt" | tr '\n' ' ')
    cps=$(python3 -c "print(round($n / ($t1 - $t0)))")
    cpu=$(python3 -c "print('%.3f' % ((($ticks1 - $ticks0) / $hz) / ($t1 - $t0) / ($n / ($t1 - $t0) / 1000)))")
    live_line="$n calls offered at $live_rate/s ($cps/s over the window); records $made; sensor drops: ${drops:-none}; CPU ${cpu} cores per 1,000 calls/s"
fi

# ------------------------------------------------------------------ report
{
    echo "# benches/perf.sh results, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, calls=$calls, median of $runs"
    echo
    echo "| capture | INVITEs | sensor 1 worker | sensor 2 workers | RSS MB (1w/2w) | tshark | sngrep | ratio vs tshark |"
    echo "|---|---|---|---|---|---|---|---|"
    for cap in a g b c; do
        unit="INVITE/s"
        t=${TSHARK[$cap]:-} sg=${SNGREP[$cap]:-}
        ratio=""
        [[ -n $t && $t != 0 ]] && ratio=$(python3 -c "print('x%.0f' % (${RATE[${cap}2]} / $t))")
        printf '| %s | %s | %.0f %s (%.0f msg/s) | %.0f %s (%.0f msg/s) | %s / %s | %s | %s | %s |\n' \
            "$cap" "${INV[$cap]}" "${RATE[${cap}1]}" "$unit" "${MSGS[${cap}1]}" "${RATE[${cap}2]}" "$unit" \
            "${MSGS[${cap}2]}" "${RSS[${cap}1]}" "${RSS[${cap}2]}" \
            "${t:+$t INVITE/s (${TRSS[$cap]} MB)}" "${sg:+$sg INVITE/s (${SRSS[$cap]} MB)}" "$ratio"
    done
    echo
    echo "verified (b, 2 workers): $(passed "$work/m-b-2.txt") TN-Validation-Passed of ${INV[b]}; (c): $(passed "$work/m-c-2.txt")"
    echo "1 -> 2 workers on (b): x$(python3 -c "print('%.2f' % (${RATE[b2]} / ${RATE[b1]}))"); (c)/(b): $(python3 -c "print('%.0f%%' % (100 * ${RATE[c2]} / ${RATE[b2]}))")"
    echo "live: $live_line"
} | tee "$work/results.md"
