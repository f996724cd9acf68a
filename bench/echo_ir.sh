#!/usr/bin/env bash
# Instructions the echo server spends per round trip, robust to other load on the machine:
# callgrind on `echo-server --threads 1`, a client doing N 64-byte ping-pongs, and
# (Ir(12000) - Ir(2000)) / 10000 so start-up and shutdown cancel out. Loopback only.
#
#   bash bench/echo_ir.sh                      # target/release/sockit
#   bash bench/echo_ir.sh /path/to/old/sockit  # another binary, to compare
#
# Needs valgrind and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-$PWD/target/release/sockit}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# ir N: total Ir of the server serving N round trips.
ir() {
    local n=$1 port vp
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.$n" "$BIN" echo-server --threads 1 \
        "127.0.0.1:$port" >/dev/null 2>"$TMP/vg.$n" &
    vp=$!
    python3 - "$port" "$n" <<'PY'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
for _ in range(300):  # valgrind starts slowly: 30 s at most
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("echo-server did not listen")
s.settimeout(10)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
m = b"x" * 64
for _ in range(n):
    s.sendall(m)
    got = 0
    while got < 64:
        b = s.recv(64 - got)
        if not b:
            sys.exit("closed early")
        got += len(b)
s.close()
PY
    sleep 0.5
    kill -TERM "$vp"
    wait "$vp" 2>/dev/null || true
    awk '/^(summary|totals):/ {print $2; exit}' "$TMP/cg.$n"
}

a=$(ir 2000)
b=$(ir 12000)
awk -v a="$a" -v b="$b" -v bin="$BIN" 'BEGIN {printf "%s: %.1f instructions per round trip (Ir %d at 2000, %d at 12000)\n", bin, (b - a) / 10000, a, b}'
