#!/usr/bin/env bash
# sockit beside its peers, one section per comparison, each timed in the same run with the
# tools interleaved round by round, printing the ratios the speed targets are stated in and
# the CPU-wait figure of the run. Not a test: run it by hand when the machine is quiet.
#
#   bash bench/ratios.sh                 # every section, 5 rounds
#   ROUNDS=3 bash bench/ratios.sh scan   # one section
#
# Sections (add one: write section_NAME, add NAME to SECTIONS, use timed/median/cpu_mark):
#   scan   ports 1-65535 on loopback, in a network namespace of its own (unshare -rn) with
#          a few listeners: sockit (io_uring, and epoll with --no-io-uring), nc -z,
#          nmap -sT -T5 and nmap -sS -T5 (raw SYN; it runs where the namespace gives
#          CAP_NET_RAW, else it is left out). Target: sockit <= 0.5x the faster of nc -z
#          and nmap -sT; the moonshot is nmap -sS's time. Each tool's open set is checked
#          against `ss -ltn`.
#
# Needs: python3, /usr/bin/time, unshare and ip (util-linux, iproute2); nc (OpenBSD) and
# nmap are installed with apt-get when missing and this runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
SECTIONS=(scan)
SOCKIT=$PWD/target/release/sockit

# ---- helpers shared by the sections -------------------------------------------------

# need, timed, median, cpu_mark, cpu_report: bench/lib.sh
. bench/lib.sh

# two_places: a number rounded to two decimals ("-" stays "-").
two_places() { awk '{ if ($1 == "-") print "-"; else printf "%.2f\n", $1 }'; }

# ---- section: scan ---------------------------------------------------------------------

# Runs inside the namespace (see section_scan).
scan_inside() {
    ip link set lo up
    python3 -c '
import socket, time
ls = []
for host, port in (("127.0.0.1", 22), ("127.0.0.1", 80), ("127.0.0.1", 8080),
                   ("127.0.0.1", 40000), ("127.0.0.1", 60000)):
    s = socket.socket(); s.bind((host, port)); s.listen(1024); ls.append(s)
print("ready", flush=True); time.sleep(3600)' >"$TMP/listeners" &
    local py=$!
    local i=0
    while [ $i -lt 100 ] && ! grep -q ready "$TMP/listeners"; do sleep 0.1; i=$((i + 1)); done
    ss -ltnH | awk '{n = split($4, a, ":"); print a[n]}' | sort -n >"$TMP/want"

    local tools=(sockit sockit-epoll nc nmap-sT)
    # nmap -sS needs raw sockets: root, or CAP_NET_RAW in this namespace's user namespace.
    if nmap -n -sS -T5 -p 22 127.0.0.1 2>/dev/null | grep -q '22/tcp'; then tools+=(nmap-sS); fi
    local cmd
    for r in $(seq "$ROUNDS"); do
        for t in "${tools[@]}"; do
            case $t in
                sockit) cmd=("$SOCKIT" scan -w 1 127.0.0.1 1-65535) ;;
                sockit-epoll) cmd=("$SOCKIT" scan -w 1 --no-io-uring 127.0.0.1 1-65535) ;;
                nc) cmd=(nc -z -w 1 127.0.0.1 1-65535) ;;
                nmap-sT) cmd=(nmap -n -sT -T5 -p 1-65535 127.0.0.1) ;;
                nmap-sS) cmd=(nmap -n -sS -T5 -p 1-65535 127.0.0.1) ;;
            esac
            echo "$r $t $(timed "$TMP/out" "${cmd[@]}")" >>"$TMP/times"
            # nc -z says nothing without -v (and then on stderr): its open set is not checked.
            [ "$t" = nc ] && continue
            grep -Eo '[0-9]+/tcp +open' "$TMP/out" | cut -d/ -f1 | sort -n >"$TMP/got" || true
            cmp -s "$TMP/got" "$TMP/want" || echo "  round $r: $t's open set differs from ss -ltn: $(tr '\n' ' ' <"$TMP/got")"
        done
    done
    kill "$py" 2>/dev/null || true
}

section_scan() {
    need nc netcat-openbsd || return 0
    need nmap nmap || return 0
    echo "== scan: 1-65535 on 127.0.0.1, 5 listeners, own namespace, $ROUNDS rounds interleaved"
    : >"$TMP/times"
    local before after
    before=$(cpu_mark)
    TMP=$TMP ROUNDS=$ROUNDS SOCKIT=$SOCKIT unshare -rn bash "$0" --scan-inside
    after=$(cpu_mark)
    printf '%-30s %9s %9s %9s\n' tool "median s" "min s" "CPU s"
    local t
    for t in sockit sockit-epoll nc nmap-sT nmap-sS; do
        grep -q " $t " "$TMP/times" || continue
        printf '%-30s %9s %9s %9s\n' "$(scan_label "$t")" \
            "$(awk -v t="$t" '$2 == t {print $3}' "$TMP/times" | median)" \
            "$(awk -v t="$t" '$2 == t {print $3}' "$TMP/times" | sort -g | head -1)" \
            "$(awk -v t="$t" '$2 == t {print $4}' "$TMP/times" | median)"
    done
    # Per round: sockit's time over the faster of nc -z and nmap -sT; the median of those.
    awk '{w[$1 " " $2] = $3; r[$1] = 1} END {
        for (k in r) {
            best = w[k " nc"]; if (w[k " nmap-sT"] != "" && w[k " nmap-sT"] < best) best = w[k " nmap-sT"]
            if (best > 0) { print w[k " sockit"] / best > "/dev/stderr" }
        }}' "$TMP/times" 2>"$TMP/ratios"
    printf 'ratio sockit / faster of nc -z and nmap -sT: %s (median of rounds; target <= 0.5)\n' \
        "$(median <"$TMP/ratios" | two_places)"
    awk '{w[$1 " " $2] = $3; r[$1] = 1} END {
        for (k in r) if (w[k " nmap-sS"] > 0) print w[k " sockit-epoll"] / w[k " nmap-sS"] > "/dev/stderr"
        }' "$TMP/times" 2>"$TMP/ratios-epoll-ss"
    awk '{w[$1 " " $2] = $3; r[$1] = 1} END {
        for (k in r) if (w[k " nmap-sS"] > 0) print w[k " sockit"] / w[k " nmap-sS"] > "/dev/stderr"
        }' "$TMP/times" 2>"$TMP/ratios-ss"
    if [ -s "$TMP/ratios-ss" ]; then
        printf 'ratio sockit / nmap -sS (raw SYN): %s; sockit --no-io-uring / nmap -sS: %s (moonshot <= 1)\n' \
            "$(median <"$TMP/ratios-ss" | two_places)" "$(median <"$TMP/ratios-epoll-ss" | two_places)"
    fi
    cpu_report "$before" "$after"
}

scan_label() {
    case $1 in
        sockit) echo "sockit scan (io_uring)" ;;
        sockit-epoll) echo "sockit scan --no-io-uring" ;;
        nc) echo "nc -z" ;;
        nmap-sT) echo "nmap -sT -T5" ;;
        nmap-sS) echo "nmap -sS -T5 (raw SYN)" ;;
    esac
}

# ---- main ----------------------------------------------------------------------------

if [ "${1:-}" = --scan-inside ]; then
    scan_inside
    exit 0
fi
cargo build --release -q -p sockit-cli
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# (run from bench/throughput.sh, which printed the machine line already)
[ -n "${SOCKIT_BENCH_NESTED:-}" ] ||
    echo "machine: $(nproc) cores, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for s in "${@:-${SECTIONS[@]}}"; do
    "section_$s"
done
