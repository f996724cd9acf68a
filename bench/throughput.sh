#!/usr/bin/env bash
# sockit beside its peers, one section per comparison, the tools interleaved round by round
# in the same run, printing the ratios the speed targets of issue 16 are stated in and the
# CPU-wait figure of each section. Not a test: run it by hand when the machine is quiet.
# Everything binds and connects to 127.0.0.1 only.
#
#   bash bench/throughput.sh                    # every default section, 3 rounds
#   ROUNDS=5 bash bench/throughput.sh forward   # one section
#   BASELINE=/path/to/old/sockit bash bench/throughput.sh forward   # also "today's" binary
#
# Sections (add one: write section_NAME, add NAME to SECTIONS, use timed/median/cpu_mark):
#   pipe     1 GiB from a pipe (head -c … /dev/zero |) into a discard listener: sockit connect
#            (splice(2)), sockit connect --no-splice, nc -N, ncat --send-only, socat; and
#            iperf3's direct rate; the whole machine's CPU per GiB and the rate bound it
#            implies. Targets: connect >= 0.8x iperf3 direct; connect vs nc.
#   forward  iperf3 -n 1G directly, through sockit forward (zero-copy), through sockit
#            forward --no-splice (the copying relay as it was), through socat
#            TCP-LISTEN,fork, through haproxy (tcp mode, splice-auto: a zero-copy peer)
#            (and through $BASELINE's forward when given). Rates, each forwarder's CPU
#            seconds per GiB (/proc/PID/stat), and the whole machine's busy CPU seconds per
#            GiB with the rate bound it implies (cores / all-CPU per GiB). Targets: forward
#            >= 0.75x direct; forward's CPU/GiB <= 0.5x the copying relay's (BASELINE's).
#   proxy    socat pushing 1 GiB directly and through sockit proxy (SOCKS4A CONNECT, the
#            forward relay): rate and the proxy's CPU per GiB.
#   scan     ports 1-65535: sockit vs nc -z vs nmap -sT (-sS as root), in bench/ratios.sh
#            (the scan helper's script, run from here when it is present).
#   idle     100,000 idle connections on one echo-server (bench/echo_idle.py --fit): RSS,
#            then one echo each.
#   echo     (not by default: ~6 min; ECHO_FLAGS adds echo-server flags, for example
#            ECHO_FLAGS="--busy-poll 50") ../shared/bench/run.sh with sockit beside its peers:
#            sockit / best peer per case (median of rounds, and the worst round), server
#            CPU per round trip. Targets: >= 1 every case, no round < 0.9; CPU/rt <= 0.8 at
#            c50, c500, udp50.
#
# The CPU-wait figure: the share of the section's wall time in which some task was
# runnable but waiting for a CPU (/proc/pressure/cpu "some"), beside the /proc/stat shares;
# a run where it is above a few percent was disturbed by other load.
#
# Needs: python3, /usr/bin/time, socat, iperf3, nc (OpenBSD), ncat, nmap; the missing ones
# are installed with apt-get when this runs as root (else their rows are left out).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
SIZE_MIB=${SIZE_MIB:-1024}
SECTIONS=(pipe forward proxy scan idle)
SOCKIT=$PWD/target/release/sockit
BASELINE=${BASELINE:-}

# ---- helpers shared by the sections -------------------------------------------------

# need, timed, median, cpu_mark, cpu_report: bench/lib.sh
. bench/lib.sh

# free_port: a free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_port PORT: until something listens on 127.0.0.1:PORT (10 s at most).
wait_port() {
    local i=0
    while [ $i -lt 100 ] && ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; do sleep 0.1; i=$((i + 1)); done
}

# busy_cpu: the machine's busy CPU seconds so far (/proc/stat: all but idle and iowait).
busy_cpu() { awk -v hz="$(getconf CLK_TCK)" 'NR == 1 {printf "%.3f\n", ($2 + $3 + $4 + $7 + $8 + $9) / hz}' /proc/stat; }

# proc_cpu PID: user+system seconds of PID and of its reaped children (/proc/PID/stat).
proc_cpu() { awk -v hz="$(getconf CLK_TCK)" '{sub(/.*\) /, ""); printf "%.3f\n", ($12 + $13 + $14 + $15) / hz}' "/proc/$1/stat"; }

# Background processes of the running section, stopped by PID at its end (and on exit).
PIDS=()
stop_all() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}

# iperf3_rate PORT: MB/s of one iperf3 -n SIZE_MIB run to 127.0.0.1:PORT ("-" on failure).
iperf3_rate() {
    local i out
    for i in 1 2 3; do
        out=$(iperf3 -c 127.0.0.1 -p "$1" -n "${SIZE_MIB}M" -J 2>/dev/null || true)
        if echo "$out" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 8e6))' 2>/dev/null; then
            return
        fi
        sleep 1 # the server still finishing the previous test
    done
    echo -
}

# ratio A B [DIGITS]: A / B, or "-" when either is missing.
ratio() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.*f\n", d, a / b }'; }

# col FILE NAME FIELD: the median of FIELD (3: rate, 4: CPU) over the rounds of NAME.
col() { awk -v t="$2" -v f="$3" '$2 == t && $f != "-" {print $f}' "$1" | median; }

# per_gib A B: (B - A) CPU seconds per GiB of SIZE_MIB.
per_gib() { awk -v a="$1" -v b="$2" -v m="$SIZE_MIB" 'BEGIN {printf "%.3f", (b - a) * 1024 / m}'; }

# rate_table FILE LABEL_FN HEADING NAME…: one row per NAME present in FILE (rounds of
# "ROUND NAME MB/s CPU ALL"): medians of the rate, the tool's CPU per GiB, the whole
# machine's CPU per GiB, and the rate the machine's cores allow at that cost.
rate_table() {
    local file=$1 label=$2 heading=$3 name all cores
    shift 3
    cores=$(nproc)
    printf '%-40s %9s %11s %11s %12s\n' "$heading" "MB/s" "CPU s/GiB" "all s/GiB" "bound MB/s"
    for name in "$@"; do
        grep -q " $name " "$file" || continue
        all=$(col "$file" "$name" 5)
        printf '%-40s %9s %11s %11s %12s\n' "$("$label" "$name")" "$(col "$file" "$name" 3)" "$(col "$file" "$name" 4)" \
            "$all" "$(awk -v c="$cores" -v a="$all" 'BEGIN {if (a == "-" || a + 0 == 0) print "-"; else printf "%.0f", c * 1073.741824 / a}')"
    done
}

# ---- section: pipe -------------------------------------------------------------------

section_pipe() {
    need socat socat || return 0
    need iperf3 iperf3 || return 0
    local have_nc=1 have_ncat=1
    need nc netcat-openbsd || have_nc=0
    need ncat ncat || have_ncat=0
    echo "== pipe: ${SIZE_MIB} MiB from a pipe into a discard listener, $ROUNDS rounds interleaved"
    local sink ip before after
    sink=$(free_port)
    socat -b 1048576 -u "TCP-LISTEN:$sink,bind=127.0.0.1,reuseaddr,fork" GOPEN:/dev/null &
    PIDS+=($!)
    ip=$(free_port)
    iperf3 -s -B 127.0.0.1 -p "$ip" >/dev/null 2>&1 &
    PIDS+=($!)
    wait_port "$sink"
    wait_port "$ip"
    : >"$TMP/pipe"
    local tools=(sockit sockit-copy socat)
    [ $have_nc = 1 ] && tools+=(nc)
    [ $have_ncat = 1 ] && tools+=(ncat)
    before=$(cpu_mark)
    local r t cmd wall cpu
    local m0 m1 rate
    for r in $(seq "$ROUNDS"); do
        m0=$(busy_cpu)
        rate=$(iperf3_rate "$ip")
        m1=$(busy_cpu)
        echo "$r iperf3 $rate - $(per_gib "$m0" "$m1")" >>"$TMP/pipe"
        for t in "${tools[@]}"; do
            case $t in
                sockit) cmd=("$SOCKIT" connect 127.0.0.1 "$sink") ;;
                sockit-copy) cmd=("$SOCKIT" connect --no-splice 127.0.0.1 "$sink") ;;
                nc) cmd=(nc -N 127.0.0.1 "$sink") ;;
                ncat) cmd=(ncat --send-only 127.0.0.1 "$sink") ;;
                socat) cmd=(socat -u STDIN "TCP:127.0.0.1:$sink") ;;
            esac
            m0=$(busy_cpu)
            read -r wall cpu < <(head -c "$((SIZE_MIB << 20))" /dev/zero | timed /dev/null timeout 300 "${cmd[@]}")
            m1=$(busy_cpu)
            echo "$r $t $(awk -v m="$SIZE_MIB" -v w="$wall" 'BEGIN {printf "%.0f", m * 1.048576 / (w > 0 ? w : 0.001)}') $(awk -v m="$SIZE_MIB" -v c="$cpu" 'BEGIN {printf "%.2f", c * 1024 / m}') $(per_gib "$m0" "$m1")" >>"$TMP/pipe"
        done
    done
    after=$(cpu_mark)
    stop_all
    rate_table "$TMP/pipe" pipe_label tool iperf3 "${tools[@]}"
    echo "(all s/GiB: the whole machine's busy CPU per GiB, producer (head) and discard listener included; bound: the rate $(nproc) cores allow at that cost)"
    local s sc n
    s=$(col "$TMP/pipe" sockit 3)
    sc=$(col "$TMP/pipe" sockit 4)
    n=$(col "$TMP/pipe" nc 3)
    printf 'ratio connect / iperf3 direct (rate): %s (target >= 0.8)\n' "$(ratio "$s" "$(col "$TMP/pipe" iperf3 3)")"
    printf 'ratio connect / nc -N (rate): %s; CPU per GiB connect / nc -N: %s; connect / connect --no-splice: %s\n' \
        "$(ratio "$s" "$n")" "$(ratio "$sc" "$(col "$TMP/pipe" nc 4)")" "$(ratio "$sc" "$(col "$TMP/pipe" sockit-copy 4)")"
    cpu_report "$before" "$after"
}

pipe_label() {
    case $1 in
        iperf3) echo "iperf3 direct (memory to memory)" ;;
        sockit) echo "sockit connect (splice)" ;;
        sockit-copy) echo "sockit connect --no-splice" ;;
        nc) echo "nc -N" ;;
        ncat) echo "ncat --send-only" ;;
        socat) echo "socat -u STDIN TCP" ;;
    esac
}

# ---- section: forward ------------------------------------------------------------------

# start_forwarder NAME PORT COMMAND…: starts it in the background, records its PID.
start_forwarder() {
    local name=$1 port=$2
    shift 2
    "$@" >/dev/null 2>&1 &
    PIDS+=($!)
    echo "$name $port $!" >>"$TMP/forwarders"
    wait_port "$port"
}

section_forward() {
    need iperf3 iperf3 || return 0
    need socat socat || return 0
    echo "== forward: iperf3 -n ${SIZE_MIB}M directly and through forwarders, $ROUNDS rounds interleaved"
    local ip p before after
    ip=$(free_port)
    iperf3 -s -B 127.0.0.1 -p "$ip" >/dev/null 2>&1 &
    PIDS+=($!)
    wait_port "$ip"
    : >"$TMP/forwarders"
    : >"$TMP/fwd"
    p=$(free_port)
    start_forwarder sockit "$p" "$SOCKIT" forward "127.0.0.1:$p" "127.0.0.1:$ip"
    p=$(free_port)
    start_forwarder sockit-copy "$p" "$SOCKIT" forward --no-splice "127.0.0.1:$p" "127.0.0.1:$ip"
    p=$(free_port)
    start_forwarder socat "$p" socat "TCP-LISTEN:$p,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$ip"
    if need haproxy haproxy; then
        p=$(free_port)
        cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread 1
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option splice-auto
frontend f
    bind 127.0.0.1:$p
    default_backend b
backend b
    server s 127.0.0.1:$ip
EOF
        start_forwarder haproxy "$p" haproxy -db -f "$TMP/haproxy.cfg"
    fi
    if [ -n "$BASELINE" ]; then
        p=$(free_port)
        start_forwarder baseline "$p" "$BASELINE" forward "127.0.0.1:$p" "127.0.0.1:$ip"
    fi
    before=$(cpu_mark)
    local r name port pid c0 c1 rate
    local m0 m1
    for r in $(seq "$ROUNDS"); do
        m0=$(busy_cpu)
        rate=$(iperf3_rate "$ip")
        m1=$(busy_cpu)
        echo "$r direct $rate - $(per_gib "$m0" "$m1")" >>"$TMP/fwd"
        while read -r name port pid; do
            c0=$(proc_cpu "$pid")
            m0=$(busy_cpu)
            rate=$(iperf3_rate "$port")
            m1=$(busy_cpu)
            sleep 0.2 # socat's child exits and is reaped: its CPU joins the parent's
            c1=$(proc_cpu "$pid")
            echo "$r $name $rate $(per_gib "$c0" "$c1") $(per_gib "$m0" "$m1")" >>"$TMP/fwd"
        done <"$TMP/forwarders"
    done
    after=$(cpu_mark)
    stop_all
    rate_table "$TMP/fwd" fwd_label path direct sockit sockit-copy haproxy socat baseline
    echo "(all s/GiB: the whole machine's busy CPU per GiB moved; bound: the rate $(nproc) cores allow at that cost)"
    local d s sc
    d=$(col "$TMP/fwd" direct 3)
    s=$(col "$TMP/fwd" sockit 3)
    sc=$(col "$TMP/fwd" sockit 4)
    printf 'ratio through forward / direct: %s (target >= 0.75); --no-splice / direct: %s; socat / direct: %s\n' \
        "$(ratio "$s" "$d")" "$(ratio "$(col "$TMP/fwd" sockit-copy 3)" "$d")" "$(ratio "$(col "$TMP/fwd" socat 3)" "$d")"
    printf 'ratio forward CPU per GiB, zero-copy / copying relay (--no-splice): %s (target <= 0.5)' "$(ratio "$sc" "$(col "$TMP/fwd" sockit-copy 4)")"
    if [ -n "$BASELINE" ]; then
        printf '; zero-copy / BASELINE: %s' "$(ratio "$sc" "$(col "$TMP/fwd" baseline 4)")"
    fi
    printf '; zero-copy / socat: %s; zero-copy / haproxy: %s\n' "$(ratio "$sc" "$(col "$TMP/fwd" socat 4)")" "$(ratio "$sc" "$(col "$TMP/fwd" haproxy 4)")"
    cpu_report "$before" "$after"
}

fwd_label() {
    case $1 in
        direct) echo "iperf3 direct" ;;
        sockit) echo "through sockit forward (zero-copy)" ;;
        sockit-copy) echo "through sockit forward --no-splice" ;;
        socat) echo "through socat TCP-LISTEN,fork TCP" ;;
        haproxy) echo "through haproxy (splice-auto)" ;;
        baseline) echo "through BASELINE forward" ;;
    esac
}

# ---- section: proxy --------------------------------------------------------------------

section_proxy() {
    need socat socat || return 0
    echo "== proxy: socat pushing ${SIZE_MIB} MiB directly and through sockit proxy (SOCKS4A), $ROUNDS rounds"
    local sink p pid before after r wall cpu c0 c1
    sink=$(free_port)
    socat -b 1048576 -u "TCP-LISTEN:$sink,bind=127.0.0.1,reuseaddr,fork" GOPEN:/dev/null &
    PIDS+=($!)
    p=$(free_port)
    "$SOCKIT" proxy "127.0.0.1:$p" >/dev/null 2>&1 &
    pid=$!
    PIDS+=($pid)
    wait_port "$sink"
    wait_port "$p"
    : >"$TMP/proxy"
    before=$(cpu_mark)
    for r in $(seq "$ROUNDS"); do
        read -r wall cpu < <(head -c "$((SIZE_MIB << 20))" /dev/zero | timed /dev/null socat -b 1048576 -u STDIN "TCP:127.0.0.1:$sink")
        echo "$r direct $(awk -v m="$SIZE_MIB" -v w="$wall" 'BEGIN {printf "%.0f", m * 1.048576 / w}') -" >>"$TMP/proxy"
        c0=$(proc_cpu "$pid")
        read -r wall cpu < <(head -c "$((SIZE_MIB << 20))" /dev/zero | timed /dev/null socat -b 1048576 -u STDIN "SOCKS4A:127.0.0.1:127.0.0.1:$sink,socksport=$p")
        c1=$(proc_cpu "$pid")
        echo "$r proxy $(awk -v m="$SIZE_MIB" -v w="$wall" 'BEGIN {printf "%.0f", m * 1.048576 / w}') $(awk -v a="$c0" -v b="$c1" -v m="$SIZE_MIB" 'BEGIN {printf "%.3f", (b - a) * 1024 / m}')" >>"$TMP/proxy"
    done
    after=$(cpu_mark)
    stop_all
    printf '%-40s %9s %11s\n' path "MB/s" "CPU s/GiB"
    printf '%-40s %9s %11s\n' "socat direct" "$(col "$TMP/proxy" direct 3)" "-"
    printf '%-40s %9s %11s\n' "through sockit proxy (SOCKS4A CONNECT)" "$(col "$TMP/proxy" proxy 3)" "$(col "$TMP/proxy" proxy 4)"
    printf 'ratio through proxy / direct: %s\n' "$(ratio "$(col "$TMP/proxy" proxy 3)" "$(col "$TMP/proxy" direct 3)")"
    cpu_report "$before" "$after"
}

# ---- section: scan ---------------------------------------------------------------------

section_scan() {
    if [ -f bench/ratios.sh ]; then
        SOCKIT_BENCH_NESTED=1 ROUNDS=$ROUNDS bash bench/ratios.sh scan
    else
        echo "== scan: bench/ratios.sh (the scan helper's sections) is not in this tree yet; left out"
    fi
}

# ---- section: idle ---------------------------------------------------------------------

section_idle() {
    echo "== idle: 100,000 idle TCP connections on one echo-server, then one echo each"
    local before after
    before=$(cpu_mark)
    python3 bench/echo_idle.py --sockit "$SOCKIT" --conns 100000 --limit-mb 100 --fit || true
    after=$(cpu_mark)
    cpu_report "$before" "$after"
}

# ---- section: echo ---------------------------------------------------------------------

section_echo() {
    local shared=../shared/bench
    [ -x "$shared/run.sh" ] || { echo "== echo: $shared/run.sh not found; left out"; return 0; }
    echo "== echo: $shared/run.sh with sockit echo-server ${ECHO_FLAGS:-}${ECHO_FLAGS:+ }beside its peers, $ROUNDS rounds"
    local out before after
    out=${TMPDIR:-/tmp}/sockit-bench/results/throughput-$(date +%Y%m%d-%H%M%S)
    before=$(cpu_mark)
    ROUNDS=$ROUNDS OUT=$out EXTRA_SERVER="$SOCKIT echo-server ${ECHO_FLAGS:-}${ECHO_FLAGS:+ }--tcp --udp 127.0.0.1:{port}" \
        EXTRA_NAME=sockit EXTRA_UDP=1 bash "$shared/run.sh" >"$TMP/echo.md" 2>"$TMP/echo.log" || true
    after=$(cpu_mark)
    python3 - "$out/results.jsonl" <<'EOF'
import json, statistics, sys
from collections import defaultdict
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cases = [r for r in rows if r.get("kind") == "case" and not r["result"].get("failed")]
metric = lambda r: r["result"].get("mb_s") if r["case"].startswith("stream") else r["result"].get("rps")
by = defaultdict(dict)  # (case, round) -> server -> value
for r in cases:
    v = metric(r)
    if v:
        by[(r["case"], r["round"])][r["server"]] = v
print("| case | sockit / best peer (median of rounds) | worst round | best peer |")
print("| --- | ---: | ---: | --- |")
for case in ["c1", "c50", "c500", "stream1", "udp1", "udp50"]:
    rounds = sorted(k[1] for k in by if k[0] == case)
    ratios, best = [], defaultdict(int)
    for rd in rounds:
        vals = by[(case, rd)]
        peers = {s: v for s, v in vals.items() if s != "sockit"}
        if "sockit" not in vals or not peers:
            continue
        b = max(peers, key=peers.get)
        best[b] += 1
        ratios.append(vals["sockit"] / peers[b])
    if ratios:
        print(f"| {case} | {statistics.median(ratios):.2f} | {min(ratios):.2f} | {max(best, key=best.get)} |")
print("(targets: >= 1.00 every case, no round below 0.90; the per-round ratios compare "
      "sockit with the best peer of the same round)")
EOF
    grep -iE "srv|µs/rt" "$TMP/echo.md" | head -3 || true
    echo "full report: $out (markdown in the run's output)"
    cpu_report "$before" "$after"
}

# ---- main ----------------------------------------------------------------------------

cargo build --release -q -p sockit-cli
TMP=$(mktemp -d)
trap 'stop_all; rm -rf "$TMP"' EXIT
echo "machine: $(nproc) cores, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for s in "${@:-${SECTIONS[@]}}"; do
    "section_$s"
done
