#!/usr/bin/env bash
# bench/compare.sh - sockit's echo server measured beside the shared harness's peers, and
# `sockit bench` measured beside the harness's own load generator, in one run.
#
#   bench/compare.sh                 # ~7 min: release build, ../shared/bench/run.sh with sockit
#                                    # added, ratio table vs the best peer, load-generator check
#   CASES="c50 udp50" ROUNDS=3 bench/compare.sh      # the harness's knobs pass through
#   HARNESS=0 bench/compare.sh       # only the load-generator check (sockit bench vs echo-loadgen)
#
# Knobs: SHARED (default: ../shared beside the repository), HARNESS=1, LG_CHECK=1,
# LG_ROUNDS=5, LG_CONNS="1 50 500", LG_DUR=2; every run.sh knob (DUR, ROUNDS, SERVERS, CASES,
# PIN, PHYS, CHECKS, WORK, OUT). Loopback only: every server binds 127.0.0.1.
# Output: the harness's markdown report, then the two tables below; raw data in $OUT.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SHARED="${SHARED:-$ROOT/../shared}"
HARNESS=${HARNESS:-1}
LG_CHECK=${LG_CHECK:-1}
LG_ROUNDS=${LG_ROUNDS:-5}
LG_CONNS=${LG_CONNS:-"1 50 500"}
LG_DUR=${LG_DUR:-2}
export WORK="${WORK:-${TMPDIR:-/tmp}/sockit-bench}"
export OUT="${OUT:-$WORK/results/compare-$(date +%Y%m%d-%H%M%S)}"
say() { echo "[compare.sh $(date +%H:%M:%S)] $*" >&2; }

[ -x "$SHARED/bench/run.sh" ] || { say "no $SHARED/bench/run.sh: clone beside ../shared or set SHARED"; exit 2; }
mkdir -p "$OUT/logs"
say "building release binaries"
(cd "$ROOT" && cargo build --release -q -p sockit-cli) || { say "cargo build failed"; exit 1; }
SK="$ROOT/target/release/sockit"

# ---------------------------------------------------------------- echo servers side by side
if [ "$HARNESS" = 1 ]; then
  EXTRA_SERVER="$SK echo-server --tcp --udp 127.0.0.1:{port}" EXTRA_NAME=sockit EXTRA_UDP=1 \
    "$SHARED/bench/run.sh"
  echo
  echo "## sockit echo-server ÷ best peer (same run, medians of per-round ratios)"
  echo
  python3 - "$OUT/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cases = [r for r in rows if r.get("kind") == "case"]
order = ["c1", "c50", "c500", "stream1", "udp1", "udp50"]
def metric(r):
    if r.get("failed"): return None
    return r["mb_s"] if r.get("mode") == "stream" else r["rps"]
def srv_us(r):
    b = r.get("cpus_busy_pct") or []
    return b[0] * 1e4 / r["rps"] if b and r.get("rps") and r.get("mode") != "stream" else None
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
by = {}
for c in cases:
    by.setdefault((c["server"], c["case"]), {})[c.get("round", 1)] = c["result"]
servers = sorted({s for s, _ in by})
print("| case | sockit | best peer | peer value | speed ratio | p99 ratio | srv µs/rt sockit | srv µs/rt peer | µs/rt ratio |")
print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
for k in order:
    mine = by.get(("sockit", k))
    peers = {s: by[(s, k)] for s in servers if s != "sockit" and (s, k) in by}
    if not peers:
        continue
    best = max(peers, key=lambda s: med([metric(r) for r in peers[s].values()]) or 0)
    pv = med([metric(r) for r in peers[best].values()])
    if not mine:
        print(f"| {k} | - | {best} | {pv:,.0f} | - | - | - | - | - |"); continue
    ratio = med([metric(mine[i]) / metric(peers[best][i]) for i in mine
                 if i in peers[best] and metric(mine[i]) and metric(peers[best][i])])
    p99 = med([mine[i]["p99_us"] / peers[best][i]["p99_us"] for i in mine
               if i in peers[best] and mine[i].get("p99_us") and peers[best][i].get("p99_us")])
    su, sp = med([srv_us(r) for r in mine.values()]), med([srv_us(r) for r in peers[best].values()])
    f = lambda x, nd=2: "-" if x is None else f"{x:,.{nd}f}"
    print(f"| {k} | {f(med([metric(r) for r in mine.values()]), 0)} | {best} | {f(pv, 0)} | {f(ratio)} | "
          f"{f(p99)} | {f(su)} | {f(sp)} | {f(su / sp if su and sp else None)} |")
print()
print("speed = rps (stream1: MB/s echoed); targets: speed ratio >= 0.95, p99 ratio <= 1.1, µs/rt ratio <= 0.8 (c50, c500, udp50).")
PY
fi

# ---------------------------------------------------------------- load generators side by side
if [ "$LG_CHECK" = 1 ]; then
  LG="$WORK/target-loadgen/release/echo-loadgen"
  EPOLL="$OUT/bin/epoll_echo"
  if [ ! -x "$LG" ]; then
    say "building echo-loadgen"
    (cd "$SHARED/bench/loadgen" && CARGO_TARGET_DIR="$WORK/target-loadgen" cargo build --release -q) || { say "loadgen build failed"; exit 1; }
  fi
  mkdir -p "$OUT/bin"
  [ -x "$EPOLL" ] || cc -O2 -o "$EPOLL" "$SHARED/bench/peers/epoll_echo.c" || { say "epoll_echo build failed"; exit 1; }
  SRV_PIN=""; LG_PIN=""
  if [ "$(nproc)" -ge 2 ] && [ "${PIN:-1}" != 0 ] && command -v taskset >/dev/null; then SRV_PIN="taskset -c 0"; LG_PIN="taskset -c 1"; fi
  port=19700
  while ss -Hltun "sport = :$port" 2>/dev/null | grep -q .; do port=$((port + 1)); done
  say "load-generator check: epoll_echo on 127.0.0.1:$port${SRV_PIN:+ (CPU 0)}, load ${LG_PIN:+on CPU 1}"
  # shellcheck disable=SC2086
  setsid $SRV_PIN "$EPOLL" "$port" 127.0.0.1 > "$OUT/logs/lg-epoll.log" 2>&1 < /dev/null &
  SPID=$!
  trap 'kill -TERM -- -$SPID 2>/dev/null' EXIT INT TERM
  for _ in $(seq 1 50); do ss -Hltn "sport = :$port" | grep -q . && break; sleep 0.1; done
  LGRES="$OUT/loadgen-check.jsonl"; : > "$LGRES"
  for r in $(seq 1 "$LG_ROUNDS"); do
    for c in $LG_CONNS; do
      # alternate which one goes first, round by round
      for who in $( [ $((r % 2)) = 1 ] && echo "loadgen sockit" || echo "sockit loadgen" ); do
        if [ "$who" = loadgen ]; then
          # shellcheck disable=SC2086
          o=$(timeout 60 $LG_PIN "$LG" -c "$c" -m 64 --seconds "$LG_DUR" --warmup 0.3 "127.0.0.1:$port" 2>>"$OUT/logs/lg.err")
          echo "{\"who\":\"loadgen\",\"round\":$r,\"c\":$c,\"rps\":$(echo "$o" | grep -o '"rps":[0-9.]*' | cut -d: -f2),\"p99_us\":$(echo "$o" | grep -o '"p99_us":[0-9.]*' | cut -d: -f2),\"wait_pct\":$(echo "$o" | grep -o '"runq_wait_pct":[0-9.]*' | cut -d: -f2)}" >> "$LGRES"
        else
          # shellcheck disable=SC2086
          o=$(timeout 60 $LG_PIN "$SK" bench 127.0.0.1 "$port" -c "$c" --size 64 --duration "$LG_DUR" --warmup 0.3 --json 2>>"$OUT/logs/lg.err")
          echo "{\"who\":\"sockit\",\"round\":$r,\"c\":$c,\"rps\":$(echo "$o" | grep -o '"rps":[0-9.]*' | cut -d: -f2),\"p99_us\":$(echo "$o" | grep -o '"latency_p99_us":[0-9.]*' | cut -d: -f2),\"errors\":$(echo "$o" | grep -o '"errors":[0-9]*' | cut -d: -f2),\"wait_pct\":$(echo "$o" | grep -o '"cpu_wait_pct":[0-9.]*' | cut -d: -f2)}" >> "$LGRES"
        fi
      done
    done
  done
  kill -TERM -- -"$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; trap - EXIT INT TERM
  echo
  echo "## sockit bench ÷ echo-loadgen (same server: C epoll; $LG_ROUNDS alternating rounds of ${LG_DUR} s)"
  echo
  python3 - "$LGRES" <<'PY'
import json, statistics, sys
rows = []
for l in open(sys.argv[1]):
    try: rows.append(json.loads(l))
    except ValueError: pass
print("| connections | echo-loadgen rps | sockit bench rps | ratio (median of rounds) | min–max ratio | p99 µs loadgen / sockit | CPU wait % loadgen / sockit |")
print("|---:|---:|---:|---:|---|---|---|")
for c in sorted({r["c"] for r in rows}):
    lg = {r["round"]: r for r in rows if r["c"] == c and r["who"] == "loadgen" and r.get("rps")}
    sk = {r["round"]: r for r in rows if r["c"] == c and r["who"] == "sockit" and r.get("rps")}
    ratios = [sk[i]["rps"] / lg[i]["rps"] for i in sk if i in lg]
    if not ratios: continue
    m = lambda d, k: statistics.median([x[k] for x in d.values() if x.get(k) is not None])
    print(f"| {c} | {m(lg, 'rps'):,.0f} | {m(sk, 'rps'):,.0f} | {statistics.median(ratios):.2f} | "
          f"{min(ratios):.2f}–{max(ratios):.2f} | {m(lg, 'p99_us'):.0f} / {m(sk, 'p99_us'):.0f} | "
          f"{m(lg, 'wait_pct'):.1f} / {m(sk, 'wait_pct'):.1f} |")
print()
print("target: ratio >= 0.95 at 50 connections. The machine is shared: a CPU wait above a few percent")
print(f"means another process took the load generator's CPU (raw rows: {sys.argv[1]}).")
PY
fi
