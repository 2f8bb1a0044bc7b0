#!/usr/bin/env bash
# make-samples.sh -- regenerate the shaken-sensor sample captures with real tools.
#
# sipp (Debian package sip-tester) places the calls, tcpdump records them, iproute2
# builds the veth/netns pair for the fragmentation sample, tshark checks the results,
# and make-malformed.py (python3, stdlib only) writes malformed.pcap.
#
# Usage (as root):  pcaps/make-samples.sh [OUTDIR]     (default OUTDIR: the pcaps/ folder)
#
# All traffic stays on loopback (127.0.0.1, ::1) or on a veth pair between the root
# namespace and a namespace this script creates (198.18.0.0/30, RFC 2544 benchmark range).
# Every sipp/tcpdump run is bounded (-m, -timeout, coreutils timeout); whatever this
# script started is stopped, and the namespace and veth are removed, on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SC=$HERE/scenarios
OUT=$(cd "${1:-$HERE}" && pwd)

UAS_PORT=5060          # the UAS (callee side) listens here
UAC_PORT=5061          # the UAC (caller side) sends from here
NS=shaken-samples      # network namespace for the fragmentation sample
VETH_ROOT=ssamp0       # veth end in the root namespace, 198.18.0.1/30
VETH_NS=ssamp1         # veth end inside $NS, 198.18.0.2/30
SIPP_TIMEOUT=45        # sipp -timeout (s); coreutils timeout kills at +15 s
RATE=5                 # calls per second

PIDS=()                # every background process this script started
NS_CREATED=0
VETH_CREATED=0
OK=0

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'make-samples.sh: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- prerequisites
check_deps() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (tcpdump, ip netns)"
    local missing=() pair cmd pkg
    for pair in sipp:sip-tester tcpdump:tcpdump ip:iproute2 ss:iproute2 \
                tshark:tshark capinfos:tshark python3:python3 timeout:coreutils; do
        cmd=${pair%%:*}; pkg=${pair#*:}
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        die "missing tools; install them with: apt-get install $(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')"
    fi
    local p
    for p in $UAS_PORT $UAC_PORT; do
        if [[ -n $(ss -Hlnu "sport = :$p") || -n $(ss -Hlnt "sport = :$p") ]]; then
            die "port $p is in use on this host; stop whatever listens there first"
        fi
    done
    if ip netns list | grep -qw "$NS"; then
        die "network namespace $NS already exists (left by an aborted run?): ip netns del $NS"
    fi
    if ip link show "$VETH_ROOT" >/dev/null 2>&1; then
        die "interface $VETH_ROOT already exists (left by an aborted run?): ip link del $VETH_ROOT"
    fi
}

# ---------------------------------------------------------------- cleanup
cleanup() {
    local rc=$? p all=()
    trap - EXIT INT TERM
    # our background processes and their direct children (sipp under coreutils timeout)
    for p in "${PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null || continue
        all+=("$p" $(cat "/proc/$p/task/$p/children" 2>/dev/null || true))
    done
    for p in "${all[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    ((${#all[@]})) && sleep 0.5
    for p in "${all[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    if ((NS_CREATED)); then
        for p in $(ip netns pids "$NS" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
        ip netns del "$NS" 2>/dev/null || true
    fi
    if ((VETH_CREATED)); then ip link del "$VETH_ROOT" 2>/dev/null || true; fi
    if ((OK)); then
        rm -rf "$WORK"
    elif [[ -n ${WORK:-} ]]; then
        printf 'make-samples.sh: FAILED (rc=%s); sipp/tcpdump logs kept in %s\n' "$rc" "$WORK" >&2
    fi
    exit "$rc"
}

# ---------------------------------------------------------------- capture
# start_capture FILE IFACE FILTER [tcpdump options...]
start_capture() {
    local file=$1 iface=$2 filter=$3; shift 3
    CAP_ERR=$WORK/$(basename "$file").tcpdump.log
    # --immediate-mode: without it libpcap (TPACKET_V3) holds packets in a ring block for
    # up to 1 s and tcpdump loses the last ones when it is interrupted
    tcpdump -i "$iface" -U -s 0 -n -Z root --immediate-mode "$@" -w "$file" "$filter" 2>"$CAP_ERR" &
    CAP_PID=$!
    PIDS+=("$CAP_PID")
    local i
    for i in $(seq 100); do
        grep -q 'listening on' "$CAP_ERR" && return 0
        kill -0 "$CAP_PID" 2>/dev/null || { cat "$CAP_ERR" >&2; die "tcpdump failed to start"; }
        sleep 0.1
    done
    die "tcpdump did not start listening within 10 s"
}

# stop_capture: SIGINT, then wait for tcpdump to flush and exit
stop_capture() {
    sleep 1                         # let the last packets reach the capture
    kill -INT "$CAP_PID"
    local i
    for i in $(seq 100); do
        kill -0 "$CAP_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$CAP_PID" 2>/dev/null && kill -TERM "$CAP_PID"
    wait "$CAP_PID" || true
    grep -E 'captured|dropped' "$CAP_ERR" | sed 's/^/   tcpdump: /' >&2
    if grep -Eq '^[1-9][0-9]* packets dropped by kernel' "$CAP_ERR"; then
        die "tcpdump reports kernel drops"
    fi
}

# wait_listen PORT PROTO(u|t) [netns]
wait_listen() {
    local port=$1 proto=$2 ns=${3:-} i
    local pre=()
    [[ -n $ns ]] && pre=(ip netns exec "$ns")
    for i in $(seq 100); do
        [[ -n $("${pre[@]}" ss -Hln"$proto" "sport = :$port") ]] && return 0
        sleep 0.1
    done
    die "sipp UAS did not start listening on port $port"
}

# ---------------------------------------------------------------- calls
# run_calls NAME UAS_XML UAC_XML CSV N TRANSPORT UAS_IP UAC_IP TARGET [extra UAS sipp args...]
#   Starts a sipp UAS (in namespace $UAS_NETNS if set), waits for it to listen, runs a
#   sipp UAC for exactly N calls, then waits for the UAS to finish its N calls.
#   Call-IDs are NAME-<call number>@uac.shaken-sensor.test (sipp -cid_str).
run_calls() {
    local name=$1 uas_xml=$2 uac_xml=$3 csv=$4 n=$5 tr=$6 uas_ip=$7 uac_ip=$8 target=$9
    shift 9
    local pre=() proto=u
    [[ -n ${UAS_NETNS:-} ]] && pre=(ip netns exec "$UAS_NETNS")
    [[ $tr == t1 ]] && proto=t
    log "  sipp: $n x $uac_xml -> $uas_xml ($name, -t $tr, $uac_ip -> $target)"

    "${pre[@]}" timeout $((SIPP_TIMEOUT + 15)) \
        sipp -sf "$SC/$uas_xml" -inf "$SC/$csv" -t "$tr" -i "$uas_ip" -bind_local \
             -p "$UAS_PORT" -mp 16000 -m "$n" -nostdin \
             -timeout "${SIPP_TIMEOUT}s" -timeout_error \
             -trace_err -error_file "$WORK/$name-uas.errors" "$@" \
             >"$WORK/$name-uas.log" 2>&1 &
    local uas=$!
    PIDS+=("$uas")
    wait_listen "$UAS_PORT" "$proto" "${UAS_NETNS:-}"

    local rc=0
    timeout $((SIPP_TIMEOUT + 15)) \
        sipp -sf "$SC/$uac_xml" -inf "$SC/$csv" -t "$tr" -i "$uac_ip" -bind_local \
             -p "$UAC_PORT" -mp 17000 -m "$n" -r "$RATE" -nostdin \
             -cid_str "$name-%u@uac.shaken-sensor.test" \
             -timeout "${SIPP_TIMEOUT}s" -timeout_error \
             -trace_err -error_file "$WORK/$name-uac.errors" \
             "$target" >"$WORK/$name-uac.log" 2>&1 || rc=$?
    [[ $rc -eq 0 ]] || { tail -n 30 "$WORK/$name-uac.log" >&2; die "sipp UAC ($name) exited with $rc"; }
    rc=0
    wait "$uas" || rc=$?
    [[ $rc -eq 0 ]] || { tail -n 30 "$WORK/$name-uas.log" >&2; die "sipp UAS ($name) exited with $rc"; }
}

# ---------------------------------------------------------------- netns + veth
setup_veth() {
    log "creating namespace $NS and veth $VETH_ROOT <-> $VETH_NS (MTU 1500)"
    ip netns add "$NS"; NS_CREATED=1
    ip link add "$VETH_ROOT" type veth peer name "$VETH_NS"; VETH_CREATED=1
    ip link set "$VETH_NS" netns "$NS"
    # no IPv6 (no ND/MLD chatter on the wire), fixed MACs, static neighbours (no ARP)
    sysctl -q -w "net.ipv6.conf.$VETH_ROOT.disable_ipv6=1" 2>/dev/null || true
    ip netns exec "$NS" sysctl -q -w "net.ipv6.conf.$VETH_NS.disable_ipv6=1" 2>/dev/null || true
    ip link set dev "$VETH_ROOT" address 02:00:c6:12:00:01 mtu 1500
    ip -n "$NS" link set dev "$VETH_NS" address 02:00:c6:12:00:02 mtu 1500
    ip addr add 198.18.0.1/30 dev "$VETH_ROOT"
    ip -n "$NS" addr add 198.18.0.2/30 dev "$VETH_NS"
    ip link set "$VETH_ROOT" up
    ip -n "$NS" link set lo up
    ip -n "$NS" link set "$VETH_NS" up
    ip neigh replace 198.18.0.2 lladdr 02:00:c6:12:00:02 dev "$VETH_ROOT" nud permanent
    ip -n "$NS" neigh replace 198.18.0.1 lladdr 02:00:c6:12:00:01 dev "$VETH_NS" nud permanent
}

teardown_veth() {
    local p
    for p in $(ip netns pids "$NS" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
    ip link del "$VETH_ROOT" 2>/dev/null || true; VETH_CREATED=0
    ip netns del "$NS"; NS_CREATED=0
}

# ---------------------------------------------------------------- checks
# sip_msgs FILE: number of SIP messages tshark decodes (a TCP frame can carry several)
sip_msgs() {
    tshark -r "$1" -Y sip -T fields -E occurrence=a -E aggregator=, -e sip.CSeq.method \
        | awk -F, '{n += NF} END {print n + 0}'
}
count() { tshark -r "$1" -Y "$2" | wc -l; }
callids() { tshark -r "$1" -Y sip -T fields -e sip.Call-ID | tr ',' '\n' | sort -u | grep -c . || true; }

# expect FILE FILTER|@msgs|@callids N
expect() {
    local f=$1 what=$2 want=$3 got
    case $what in
        @msgs) got=$(sip_msgs "$f") ;;
        @callids) got=$(callids "$f") ;;
        *) got=$(count "$f" "$what") ;;
    esac
    if [[ $got != "$want" ]]; then
        die "$(basename "$f"): '$what' gives $got, expected $want"
    fi
    printf '   check %-22s %-45s = %s\n' "$(basename "$f")" "$what" "$got" >&2
}

# answered FILE N: N answered calls, released by BYE + 200, no retransmissions
check_answered() {
    local f=$1 n=$2
    expect "$f" 'sip.Method == "INVITE"' "$n"
    expect "$f" @msgs $((7 * n))
    expect "$f" @callids "$n"
    expect "$f" 'sip.Status-Code == 200 && sip.CSeq.method == "INVITE"' "$n"
    expect "$f" 'sip.Method == "BYE"' "$n"
    expect "$f" 'sip.resend == 1' 0
}

linktype() { capinfos -E "$1" | sed -n 's/^File encapsulation: *//p'; }

# ---------------------------------------------------------------- samples
main() {
    check_deps
    WORK=$(mktemp -d /tmp/make-samples.XXXXXX)
    chmod 755 "$WORK"
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    cd "$WORK"
    local f

    # a. 10 answered calls, UDP/IPv4 loopback, caller hangs up
    f=$WORK/udp-answered.pcap
    log "udp-answered.pcap"
    start_capture "$f" lo 'udp port 5060'
    run_calls udp-answered uas-answered.xml uac-answered.xml udp-answered.csv 10 u1 \
        127.0.0.1 127.0.0.1 127.0.0.1:$UAS_PORT
    stop_capture
    check_answered "$f" 10

    # b. non-answered outcomes + callee-released calls, UDP/IPv4 loopback, one capture
    f=$WORK/udp-outcomes.pcap
    log "udp-outcomes.pcap"
    start_capture "$f" lo 'udp port 5060'
    run_calls outcome-cancel uas-cancel.xml uac-cancel.xml outcomes-cancel.csv 4 u1 \
        127.0.0.1 127.0.0.1 127.0.0.1:$UAS_PORT
    run_calls outcome-busy uas-busy.xml uac-reject.xml outcomes-busy.csv 4 u1 \
        127.0.0.1 127.0.0.1 127.0.0.1:$UAS_PORT
    run_calls outcome-notfound uas-notfound.xml uac-reject.xml outcomes-notfound.csv 4 u1 \
        127.0.0.1 127.0.0.1 127.0.0.1:$UAS_PORT
    run_calls outcome-callee-bye uas-callee-bye.xml uac-callee-bye.xml outcomes-callee-bye.csv 2 u1 \
        127.0.0.1 127.0.0.1 127.0.0.1:$UAS_PORT
    stop_capture
    expect "$f" 'sip.Method == "INVITE"' 14
    expect "$f" @msgs 74                     # 4*7 + 4*4 + 4*4 + 2*7
    expect "$f" @callids 14
    expect "$f" 'sip.Method == "CANCEL"' 4
    expect "$f" 'sip.Status-Code == 487' 4
    expect "$f" 'sip.Status-Code == 486' 4
    expect "$f" 'sip.Status-Code == 404' 4
    expect "$f" 'sip.Method == "ACK"' 14
    expect "$f" 'sip.Method == "BYE" && udp.srcport == 5060' 2
    expect "$f" 'sip.resend == 1' 0

    # c. 10 answered calls over TCP (sipp -t t1: one connection for all calls)
    f=$WORK/tcp-answered.pcap
    log "tcp-answered.pcap"
    start_capture "$f" lo 'tcp port 5060'
    run_calls tcp-answered uas-answered.xml uac-answered.xml tcp-answered.csv 10 t1 \
        127.0.0.1 127.0.0.1 127.0.0.1:$UAS_PORT
    stop_capture
    check_answered "$f" 10
    expect "$f" 'tcp.flags.syn == 1 && tcp.flags.ack == 0' 1

    # d. 5 answered calls, UDP over IPv6 loopback
    f=$WORK/ipv6-answered.pcap
    log "ipv6-answered.pcap"
    start_capture "$f" lo 'ip6 and udp port 5060'
    run_calls ipv6-answered uas-answered.xml uac-answered.xml ipv6-answered.csv 5 u1 \
        ::1 ::1 "[::1]:$UAS_PORT"
    stop_capture
    check_answered "$f" 5

    # e. 8 answered calls whose ~2.3 KB INVITEs the kernel fragments on a 1500-MTU veth
    f=$WORK/udp-fragmented.pcap
    log "udp-fragmented.pcap"
    setup_veth
    # no port filter: it would drop the non-first fragments
    start_capture "$f" "$VETH_ROOT" 'ip and host 198.18.0.2'
    UAS_NETNS=$NS run_calls udp-fragmented uas-answered.xml uac-identity.xml fragmented.csv 8 u1 \
        198.18.0.2 198.18.0.1 198.18.0.2:$UAS_PORT
    stop_capture
    teardown_veth
    check_answered "$f" 8
    expect "$f" 'ip.flags.mf == 1' 8                     # one non-last fragment per INVITE
    expect "$f" 'ip.flags.mf == 0 && ip.frag_offset > 0' 8  # ... and one last fragment
    expect "$f" 'sip.Method == "INVITE" && ip.fragment.count == 2' 8
    expect "$f" 'sip.Method == "INVITE" && sip.Identity' 8

    # f. Linux cooked captures (tcpdump -i any), one of each header version
    local lt
    for lt in LINUX_SLL LINUX_SLL2; do
        local name csv
        if [[ $lt == LINUX_SLL ]]; then name=linux-sll; csv=sll.csv; else name=linux-sll2; csv=sll2.csv; fi
        f=$WORK/$name.pcap
        log "$name.pcap (tcpdump -i any -y $lt)"
        start_capture "$f" any 'udp port 5060 and host 127.0.0.1' -y "$lt"
        run_calls "$name" uas-answered.xml uac-answered.xml "$csv" 5 u1 \
            127.0.0.1 127.0.0.1 127.0.0.1:$UAS_PORT
        stop_capture
        check_answered "$f" 5
    done

    # g. hostile frames, written directly (no capture)
    f=$WORK/malformed.pcap
    log "malformed.pcap (make-malformed.py)"
    python3 "$HERE/make-malformed.py" "$f"
    expect "$f" 'sip.Call-ID == "valid-1@malformed.shaken-sensor.test"' 1
    expect "$f" 'sip.Call-ID == "valid-2@malformed.shaken-sensor.test"' 1

    # all good: move the samples into place and print a summary
    log "summary (written to $OUT)"
    printf '%-20s %-22s %6s %7s %8s %8s %8s %8s\n' file linktype bytes frames INVITEs sipframes sipmsgs callids
    for f in udp-answered udp-outcomes tcp-answered ipv6-answered udp-fragmented \
             linux-sll linux-sll2 malformed; do
        local p=$WORK/$f.pcap
        printf '%-20s %-22s %6s %7s %8s %8s %8s %8s\n' "$f.pcap" "$(linktype "$p" | cut -c1-22)" \
            "$(stat -c %s "$p")" "$(tshark -r "$p" | wc -l)" \
            "$(count "$p" 'sip.Method == "INVITE"')" "$(count "$p" sip)" \
            "$(sip_msgs "$p")" "$(callids "$p")"
        [[ $(stat -c %s "$p") -lt 2000000 ]] || die "$f.pcap is over 2 MB"
        chmod 644 "$p"
        mv -f "$p" "$OUT/$f.pcap"
    done
    OK=1
}

main "$@"
