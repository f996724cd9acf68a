#!/usr/bin/env python3
"""Hold N idle TCP connections on `sockit echo-server`, report its memory, then echo once on each.

Usage: bench/echo_idle.py [--sockit PATH] [--conns N] [--threads T] [--limit-mb MB]
       (default: target/release/sockit, 10,000 connections, the server's default threads,
       64 MB up to 10,000 connections and 100 MB above)

    python3 bench/echo_idle.py                   # 10,000 connections, <= 64 MB
    python3 bench/echo_idle.py --conns 100000    # 100,000 connections, <= 100 MB (root)

Loopback only: the server binds 127.0.0.1 (port 0). Past the ephemeral port range (about
28,000 connections from one source address to one port) the clients' source addresses are
spread over 127.0.0.0/8 (127.0.0.2 and up; IP_BIND_ADDRESS_NO_PORT, so the kernel picks each
port at connect time for its own 4-tuple). Both sides need N + 100 descriptors: as root the
script raises the hard open-files limit (up to fs.nr_open) for itself and for the server;
otherwise the hard limit must already allow it. Every wait is bounded; the server is stopped
by PID with SIGTERM at the end.

Prints one line per phase, a `RESULT key=value …` line for scripts, and a verdict: VmRSS
after the connections are open and VmHWM (the peak) against the limit, every echo answered.
"""
import argparse
import os
import resource
import signal
import socket
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
here = os.path.dirname(os.path.abspath(__file__))
ap.add_argument("--sockit", default=os.path.join(here, "..", "target", "release", "sockit"))
ap.add_argument("--conns", type=int, default=10_000)
ap.add_argument("--threads", type=int, default=0)
ap.add_argument("--limit-mb", type=float, default=0.0)
ap.add_argument("--fit", action="store_true",
                help="when the open-files limit cannot be raised, run as many as it allows "
                     "(and project the memory of --conns from the per-connection figure)")
a = ap.parse_args()
if a.conns < 1 or a.threads < 0 or a.limit_mb < 0:
    ap.error("--conns must be at least 1, --threads and --limit-mb not negative")
limit_mb = a.limit_mb or (64.0 if a.conns <= 10_000 else 100.0)

# One source address carries at most this many connections to the server's one port.
PER_SOURCE = 20_000
IP_BIND_ADDRESS_NO_PORT = 24

asked = a.conns
need = a.conns + 100
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if hard != resource.RLIM_INFINITY and hard < need:
    with open("/proc/sys/fs/nr_open") as f:
        nr_open = int(f.read())
    why = None
    if nr_open < need:
        why = f"fs.nr_open is {nr_open}"
    else:
        try:
            # Raising the hard limit needs root with CAP_SYS_RESOURCE.
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            hard = need
        except (ValueError, OSError) as e:
            why = f"raising it to {need} was refused ({e}: needs root with CAP_SYS_RESOURCE)"
    if why:
        if not a.fit:
            sys.exit(f"open-files hard limit {hard} < {need} descriptors needed; {why}. "
                     "--fit runs as many connections as the limit allows")
        a.conns = hard - 100
        need = hard
        print(f"NOTE: open-files hard limit {hard}; {why}: {a.conns} connections instead of {asked}")
resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def raise_limit():
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def source(i):
    """The source address of client i: 127.0.0.1 while one address has ports to spare."""
    if asked <= PER_SOURCE:
        return None
    n = i % 250 + 2  # 127.0.0.2 … 127.0.0.251, round robin
    return f"127.0.0.{n}"


def connect(addr, i):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    src = source(i)
    if src:
        s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind((src, 0))
    s.connect(addr)
    return s


cmd = [a.sockit, "echo-server", "127.0.0.1:0", "--max-conns", str(max(asked, a.conns) + 100)]
if a.threads:
    cmd += ["--threads", str(a.threads)]
srv = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, preexec_fn=raise_limit)


def status(field):
    with open(f"/proc/{srv.pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0  # kB -> MiB
    return float("nan")


verdict = False
conns = []
try:
    line = srv.stdout.readline().decode().split()
    assert line[:1] == ["listening"], line
    addr = (line[1], int(line[2]))
    spread = ", sources spread over 127.0.0.2-251" if asked > PER_SOURCE else ""
    rss0 = status("VmRSS")
    print(f"server {' '.join(cmd)} listening {addr}; RSS at start {rss0:.1f} MiB{spread}")
    t0 = time.monotonic()
    for i in range(a.conns):
        conns.append(connect(addr, i))
    t1 = time.monotonic()
    # Let the server accept and register every connection (bounded: 30 s).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        socks = len(os.listdir(f"/proc/{srv.pid}/fd"))
        if socks >= a.conns:
            break
        time.sleep(0.2)
    time.sleep(1.0)
    rss, hwm = status("VmRSS"), status("VmHWM")
    print(f"{len(conns)} connections open in {t1 - t0:.2f} s; server VmRSS {rss:.1f} MiB, VmHWM {hwm:.1f} MiB")
    t2 = time.monotonic()
    ok = 0
    for i, s in enumerate(conns):
        msg = b"%08d" % i
        s.sendall(msg)
        got = b""
        while len(got) < len(msg):
            chunk = s.recv(len(msg) - len(got))
            if not chunk:
                break
            got += chunk
        ok += got == msg
    t3 = time.monotonic()
    rss2, hwm2 = status("VmRSS"), status("VmHWM")
    print(f"{ok} of {len(conns)} echoed in {t3 - t2:.2f} s; server VmRSS {rss2:.1f} MiB, VmHWM {hwm2:.1f} MiB")
    peak = max(hwm, hwm2)
    per_conn_kb = (peak - rss0) * 1024 / max(len(conns), 1)
    projected = rss0 + per_conn_kb * asked / 1024
    verdict = ok == len(conns) and peak <= limit_mb
    print(f"RESULT conns={len(conns)} asked={asked} echoed={ok} rss_mb={rss:.1f} hwm_mb={peak:.1f} "
          f"per_conn_kb={per_conn_kb:.2f} projected_mb={projected:.1f} "
          f"open_s={t1 - t0:.2f} echo_s={t3 - t2:.2f} limit_mb={limit_mb:.0f}")
    if len(conns) < asked:
        print(f"{asked} connections were not possible here; {len(conns)} took {peak - rss0:.1f} MiB above "
              f"the idle server ({per_conn_kb:.2f} KiB each): {asked} would take about {projected:.0f} MiB")
        verdict = verdict and projected <= limit_mb
    print(f"{'PASS' if verdict else 'FAIL'}: {len(conns)} idle connections held in <= {limit_mb:.0f} MB and all served")
finally:
    for s in conns:
        s.close()
    srv.send_signal(signal.SIGTERM)
    try:
        srv.wait(timeout=30)
    except subprocess.TimeoutExpired:
        srv.kill()
sys.exit(0 if verdict else 1)
