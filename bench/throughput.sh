#!/usr/bin/env bash
# Throughput on loopback: 1 GiB piped through `sockit connect` and through `sockit forward`,
# beside nc, ncat and socat doing the same job. Not a test: run it by hand and read the
# figures (MiB/s, best of RUNS). Everything binds and connects to 127.0.0.1 only.
#
#   bash bench/throughput.sh            # 1 GiB, best of 3
#   SIZE_MIB=256 RUNS=1 bash bench/throughput.sh
#
# Needs: socat (the discard listener and the forward peer), nc (OpenBSD), ncat, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
cargo build --release -q -p sockit-cli
SOCKIT=$PWD/target/release/sockit

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# The discard listener: socat with a 1 MiB buffer writing to /dev/null (fast, one process
# per connection).
SINK=$(free_port)
socat -b 1048576 -u "TCP-LISTEN:$SINK,bind=127.0.0.1,reuseaddr,fork" GOPEN:/dev/null &
PIDS+=($!)
sleep 0.3

# Runs "$@" with SIZE_MIB of zeros on stdin RUNS times; prints the best MiB/s.
best_rate() {
    local best=0 t0 t1 rate
    for _ in $(seq "$RUNS"); do
        t0=$(date +%s.%N)
        head -c "$((SIZE_MIB << 20))" /dev/zero | timeout 120 "$@" >/dev/null
        t1=$(date +%s.%N)
        rate=$(python3 -c "print(round($SIZE_MIB / ($t1 - $t0)))")
        [ "$rate" -gt "$best" ] && best=$rate
    done
    echo "$best"
}

printf '%-44s %10s\n' "pipe ${SIZE_MIB} MiB to a discard listener" "MiB/s"
printf '%-44s %10s\n' "sockit connect" "$(best_rate "$SOCKIT" connect 127.0.0.1 "$SINK")"
printf '%-44s %10s\n' "nc -N" "$(best_rate nc -N 127.0.0.1 "$SINK")"
printf '%-44s %10s\n' "ncat --send-only" "$(best_rate ncat --send-only 127.0.0.1 "$SINK")"
printf '%-44s %10s\n' "socat -u STDIN TCP" "$(best_rate socat -u STDIN "TCP:127.0.0.1:$SINK")"

# Forwarders in front of the same sink; the same client (socat, 1 MiB buffer) pushes.
FWD_SOCKIT=$(free_port)
"$SOCKIT" forward "127.0.0.1:$FWD_SOCKIT" "127.0.0.1:$SINK" >/dev/null &
PIDS+=($!)
FWD_SOCAT=$(free_port)
socat "TCP-LISTEN:$FWD_SOCAT,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$SINK" &
PIDS+=($!)
sleep 0.3
CLIENT=(socat -b 1048576 -u STDIN)
printf '%-44s %10s\n' "through sockit forward" "$(best_rate "${CLIENT[@]}" "TCP:127.0.0.1:$FWD_SOCKIT")"
printf '%-44s %10s\n' "through socat TCP-LISTEN,fork TCP" "$(best_rate "${CLIENT[@]}" "TCP:127.0.0.1:$FWD_SOCAT")"
printf '%-44s %10s\n' "direct (no forwarder)" "$(best_rate "${CLIENT[@]}" "TCP:127.0.0.1:$SINK")"
