# bench/lib.sh - helpers the benchmark scripts share (sourced by throughput.sh and
# ratios.sh after they cd to the repository root; timed needs $TMP set by the caller).

# need CMD PKG: CMD on PATH, installed from Debian's PKG when root; false when missing.
need() {
    command -v "$1" >/dev/null && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get install -y -qq --no-install-recommends "$2" >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends "$2" >/dev/null 2>&1; } || true
    fi
    command -v "$1" >/dev/null || { echo "  ($1 missing: apt-get install $2; left out)"; return 1; }
}

# timed OUT CMD…: runs CMD with stdout to OUT; prints "WALL CPU" (seconds, CPU = user+sys).
timed() {
    local out=$1
    shift
    /usr/bin/time -o "$TMP/time" -f "%e %U %S" "$@" >"$out" 2>/dev/null || true
    tail -1 "$TMP/time" | awk '{printf "%s %.2f\n", $1, $2 + $3}'
}

# median < numbers (one a line)
median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# cpu_mark: the aggregate "cpu" line of /proc/stat (jiffies: user nice system idle iowait
# irq softirq steal), then the CPU pressure total (µs some task waited for a CPU) and the
# time (µs).
cpu_mark() {
    local psi=0
    [ -r /proc/pressure/cpu ] && psi=$(awk '/^some/ {sub("total=", "", $5); print $5}' /proc/pressure/cpu)
    echo "$(head -1 /proc/stat) $psi $(date +%s%6N)"
}

# cpu_report BEFORE AFTER: shares of the CPU time between two marks, iowait and steal too,
# and the CPU-wait share (PSI some) of the wall time.
cpu_report() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        split(a, x); split(b, y); t = 0
        for (i = 2; i <= 9; i++) { d[i] = y[i] - x[i]; t += d[i] }
        if (t <= 0) t = 1
        n = length(x); wall = y[n] - x[n]; psi = y[n - 1] - x[n - 1]
        printf "cpu during the section: user %.0f%%, system %.0f%%, idle %.0f%%, iowait %.1f%%, steal %.1f%%, irq+softirq %.1f%%; CPU wait (some task runnable, no CPU free) %.1f%% of the time\n",
            100 * (d[2] + d[3]) / t, 100 * d[4] / t, 100 * d[5] / t, 100 * d[6] / t, 100 * d[9] / t, 100 * (d[7] + d[8]) / t,
            (wall > 0 ? 100 * psi / wall : 0)
    }'
    echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
}
