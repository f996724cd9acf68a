#!/usr/bin/env python3
"""Hold N idle TCP connections on `sockit echo-server`, report its memory, then echo once on each.

Usage: bench/echo_idle_10k.py [--sockit PATH] [--conns N] [--threads T]
       (default: target/release/sockit, 10000 connections, the server's default threads)

Loopback only (127.0.0.1, port 0). Raises this process's and the server's open-files limit
to the hard limit (needs N + 100 descriptors on each side). Every wait is bounded; the server
is stopped by PID with SIGTERM at the end. Prints one line per phase and a final verdict
against the 64 MB target (VmRSS after the connections are open, and VmHWM, the peak).
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
ap.add_argument("--limit-mb", type=float, default=64.0)
a = ap.parse_args()

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
need = a.conns + 100
if hard != resource.RLIM_INFINITY and hard < need:
    sys.exit(f"open-files hard limit {hard} < {need}: raise it (ulimit -Hn) first")
resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def raise_limit():
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


cmd = [a.sockit, "echo-server", "127.0.0.1:0", "--max-conns", str(a.conns + 10)]
if a.threads:
    cmd += ["--threads", str(a.threads)]
srv = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, preexec_fn=raise_limit)


def status(field):
    with open(f"/proc/{srv.pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0  # kB -> MiB
    return float("nan")


try:
    line = srv.stdout.readline().decode().split()
    assert line[:1] == ["listening"], line
    addr = (line[1], int(line[2]))
    print(f"server {' '.join(cmd)} listening {addr}; RSS at start {status('VmRSS'):.1f} MiB")
    t0 = time.monotonic()
    conns = []
    for i in range(a.conns):
        s = socket.create_connection(addr, timeout=10)
        conns.append(s)
    t1 = time.monotonic()
    time.sleep(1.0)  # let the server accept and register every connection
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
    verdict = ok == len(conns) and max(hwm, hwm2) <= a.limit_mb
    print(f"{'PASS' if verdict else 'FAIL'}: {a.conns} idle connections held in <= {a.limit_mb:.0f} MB and all served")
    for s in conns:
        s.close()
finally:
    srv.send_signal(signal.SIGTERM)
    try:
        srv.wait(timeout=10)
    except subprocess.TimeoutExpired:
        srv.kill()
sys.exit(0 if verdict else 1)
