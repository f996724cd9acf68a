#!/usr/bin/env bash
# Throughput on loopback: 1 GiB piped through `sockit connect`, through `sockit forward` and
# through `sockit proxy` (a SOCKS4A CONNECT), beside nc, ncat and socat doing the same job. Not a test: run it by hand and read the
# figures. Everything binds and connects to 127.0.0.1 only.
#
#   bash bench/throughput.sh            # 1 GiB, best of 3
#   SIZE_MIB=256 RUNS=1 bash bench/throughput.sh
#
# Two figures per line: MiB/s (best wall-clock run) and CPU seconds per GiB spent by the
# program under test (user + system, from /usr/bin/time). On a loaded machine the wall
# clock mostly measures the neighbours; the CPU cost is the steadier comparison.
# Needs: socat (the discard listener and the forward peer), nc (OpenBSD), ncat, python3,
# /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
cargo build --release -q -p sockit-cli
SOCKIT=$PWD/target/release/sockit
TMP=$(mktemp -d)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

# The discard listener: socat with a 1 MiB buffer writing to /dev/null.
SINK=$(free_port)
socat -b 1048576 -u "TCP-LISTEN:$SINK,bind=127.0.0.1,reuseaddr,fork" GOPEN:/dev/null &
PIDS+=($!)
sleep 0.3

# Runs "$@" with SIZE_MIB of zeros on stdin RUNS times; prints "best MiB/s, CPU s/GiB".
measure() {
    local best=0 cpu_best=999 line wall cpu rate
    for _ in $(seq "$RUNS"); do
        head -c "$((SIZE_MIB << 20))" /dev/zero |
            /usr/bin/time -o "$TMP/t" -f "%e %U %S" timeout 120 "$@" >/dev/null
        line=$(tail -1 "$TMP/t")
        wall=$(echo "$line" | cut -d' ' -f1)
        cpu=$(echo "$line" | awk '{print $2 + $3}')
        rate=$(python3 -c "print(round($SIZE_MIB / max($wall, 0.001)))")
        [ "$rate" -gt "$best" ] && best=$rate
        cpu_best=$(python3 -c "print(round(min($cpu_best, $cpu * 1024 / $SIZE_MIB), 2))")
    done
    printf '%8s %10s' "$best" "$cpu_best"
}

row() { printf '%-40s %s\n' "$1" "$2"; }
row "pipe ${SIZE_MIB} MiB to a discard listener" "   MiB/s  CPU s/GiB"
row "sockit connect" "$(measure "$SOCKIT" connect 127.0.0.1 "$SINK")"
row "nc -N" "$(measure nc -N 127.0.0.1 "$SINK")"
row "ncat --send-only" "$(measure ncat --send-only 127.0.0.1 "$SINK")"
row "socat -u STDIN TCP" "$(measure socat -u STDIN "TCP:127.0.0.1:$SINK")"

# Forwarders in front of the same sink; the same client (socat, 1 MiB buffer) pushes.
# Their CPU is read when they stop (SIGTERM; socat's children are reaped, so counted).
# The client connects to `socat`'s ADDRESS (default TCP:127.0.0.1:PORT).
forwarder() { # name port command…
    local name=$1 port=$2
    shift 2
    /usr/bin/time -o "$TMP/$name.cpu" -f "%U %S" "$@" >/dev/null 2>&1 &
    sleep 0.3
    local rate
    rate=$(measure socat -b 1048576 -u STDIN "${CLIENT_ADDR:-TCP:127.0.0.1:$port}" | awk '{print $1}')
    pkill -TERM -P "$!" 2>/dev/null || true
    wait "$!" 2>/dev/null || true
    local cpu
    cpu=$(tail -1 "$TMP/$name.cpu" | awk -v n="$RUNS" -v m="$SIZE_MIB" '{printf "%.2f", ($1 + $2) * 1024 / (n * m)}')
    printf '%8s %10s' "$rate" "$cpu"
}
P1=$(free_port)
row "through sockit forward" "$(forwarder sockit "$P1" "$SOCKIT" forward "127.0.0.1:$P1" "127.0.0.1:$SINK")"
P3=$(free_port)
# sockit proxy relays with forward's relay; the same socat client asks it by SOCKS4A.
row "through sockit proxy (SOCKS4A CONNECT)" "$(CLIENT_ADDR="SOCKS4A:127.0.0.1:127.0.0.1:$SINK,socksport=$P3" forwarder sockitproxy "$P3" "$SOCKIT" proxy "127.0.0.1:$P3")"
P2=$(free_port)
row "through socat TCP-LISTEN,fork TCP" "$(forwarder socat "$P2" socat "TCP-LISTEN:$P2,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$SINK")"
row "direct (no forwarder)" "$(measure socat -b 1048576 -u STDIN "TCP:127.0.0.1:$SINK" | awk '{print $1}')"
