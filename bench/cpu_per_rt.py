#!/usr/bin/env python3
"""bench/cpu_per_rt.py - server CPU time per round trip, several echo servers in one run.

    bench/cpu_per_rt.py                        # C epoll, sockit echo-server, uring-echo; 3 rounds
    ROUNDS=5 DUR=3 CASES="c50 c500" bench/cpu_per_rt.py
    bench/cpu_per_rt.py "name=/abs/cmd --port {port}" ...   # other servers ({port} replaced)

The shared harness (../shared/bench/run.sh) measures one extra server beside its peers; this
script measures any number, interleaved round by round, with the harness's load generator
(echo-loadgen, pinned to CPU 1; servers on CPU 0). For each server and case it reports:
- srv µs/rt: the server's own CPU time (the sum of its threads' run time from
  /proc/PID/task/*/schedstat, in ns) divided by the round trips: robust to other load on the
  machine, but blind to softirq work the kernel does for the server outside its threads;
- CPU0 µs/rt: CPU 0's busy time (/proc/stat) divided by the round trips, as run.sh reports it:
  counts every softirq, and also anything else that ran on CPU 0.
Medians of the rounds. Loopback only: every server is told 127.0.0.1.
Builds what it needs into $WORK (default ${TMPDIR:-/tmp}/sockit-bench): echo-loadgen and the C
server from ../shared/bench, sockit (release) and bench/uring-echo.
"""
import glob, json, os, socket, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("SHARED", os.path.join(ROOT, "..", "shared"))
WORK = os.environ.get("WORK", os.path.join(os.environ.get("TMPDIR", "/tmp"), "sockit-bench"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
DUR = os.environ.get("DUR", "2")
CASES = {
    "c1": ["-c", "1"],
    "c50": ["-c", "50"],
    "c500": ["-c", "500"],
    "udp1": ["-c", "1", "--udp"],
    "udp50": ["-c", "50", "--udp"],
}
cases = os.environ.get("CASES", "c1 c50 c500 udp1 udp50").split()


def say(msg):
    print(f"[cpu_per_rt {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr)


def build():
    lg = os.path.join(WORK, "target-loadgen", "release", "echo-loadgen")
    if not os.access(lg, os.X_OK):
        say("building echo-loadgen")
        subprocess.run(["cargo", "build", "--release", "-q"], cwd=os.path.join(SHARED, "bench", "loadgen"),
                       env={**os.environ, "CARGO_TARGET_DIR": os.path.join(WORK, "target-loadgen")}, check=True)
    c = os.path.join(WORK, "bin", "epoll_echo")
    if not os.access(c, os.X_OK):
        os.makedirs(os.path.dirname(c), exist_ok=True)
        subprocess.run(["cc", "-O2", "-o", c, os.path.join(SHARED, "bench", "peers", "epoll_echo.c")], check=True)
    say("building sockit and bench/uring-echo (release)")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "sockit-cli"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=os.path.join(ROOT, "bench", "uring-echo"), check=True)
    return lg, c


def task_ns(pid):
    total = 0
    for f in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            total += int(open(f).read().split()[0])
        except (OSError, ValueError):
            pass
    return total


def cpu0():
    for line in open("/proc/stat"):
        if line.startswith("cpu0 "):
            v = list(map(int, line.split()[1:]))
            return sum(v[:8]) - v[3] - v[4], sum(v[:8])  # busy ticks, all ticks
    return 0, 1


def wait_port(port, p):
    for _ in range(200):
        if p.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.025)
    return False


def main():
    lg, c_server = build()
    servers = [a.split("=", 1) for a in sys.argv[1:]] or [
        ("C-epoll", f"{c_server} {{port}} 127.0.0.1"),
        ("sockit", f"{ROOT}/target/release/sockit echo-server --tcp --udp 127.0.0.1:{{port}}"),
        ("uring-echo", f"{ROOT}/bench/uring-echo/target/release/uring-echo 127.0.0.1:{{port}}"),
    ]
    res = {}
    port = 19400
    for r in range(ROUNDS):
        say(f"round {r + 1} of {ROUNDS}")
        for name, cmd in servers:
            for case in cases:
                port += 1
                p = subprocess.Popen(["taskset", "-c", "0"] + cmd.replace("{port}", str(port)).split(),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    if not wait_port(port, p):
                        say(f"{name} did not listen on {port}")
                        continue
                    before, c0 = task_ns(p.pid), cpu0()
                    out = subprocess.run(["timeout", "60", "taskset", "-c", "1", lg, *CASES[case], "-d", DUR,
                                          "--warmup", "0", f"127.0.0.1:{port}"], capture_output=True, text=True)
                    after, c1 = task_ns(p.pid), cpu0()
                    j = json.loads(out.stdout.strip().splitlines()[-1])
                    n = j.get("round_trips") or 0
                    if not n:
                        say(f"{name} {case}: no round trips")
                        continue
                    busy = (c1[0] - c0[0]) / max(1, c1[1] - c0[1])
                    res.setdefault((name, case), []).append(
                        ((after - before) / 1e3 / n, busy * j["seconds"] * 1e6 / n, j.get("rps") or 0, j.get("p99_us") or 0))
                finally:
                    p.terminate()
                    try:
                        p.wait(5)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
    med = statistics.median
    print(f"| case | server | srv µs/rt | CPU0 µs/rt | rps | p99 µs | srv µs/rt of each round |")
    print("|---|---|---:|---:|---:|---:|---|")
    for case in cases:
        for name, _ in servers:
            v = res.get((name, case))
            if not v:
                continue
            print(f"| {case} | {name} | {med([x[0] for x in v]):.2f} | {med([x[1] for x in v]):.2f} | "
                  f"{med([x[2] for x in v]):,.0f} | {med([x[3] for x in v]):,.0f} | {' '.join(f'{x[0]:.2f}' for x in v)} |")


if __name__ == "__main__":
    main()
