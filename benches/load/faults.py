#!/usr/bin/env python3
"""One backend of three fails, under closed-loop load: brace with the smallest config (one
route, one upstream, no tables) against nginx with its defaults (`max_fails=1
fail_timeout=10s`, `proxy_next_upstream error timeout`). Issue 12's four cases:

  killed   the third origin is stopped 2 s into the run
  500      the third origin answers every request with 500
  hole     the third origin accepts connections and reads, and never answers
  slow     the third origin answers after 2 s

Started by `bash benches/load/faults` (which installs and builds what it needs). Everything
listens on 127.0.0.1; every run is bounded in time; every process started is stopped at exit.
Reports, per case and proxy: responses, non-2xx, socket errors, the share of errors after the
first 5 s, and p50/p99 latency (wrk, 20 connections, 15 s).
"""
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (start, stop, stop_all, free_port, wait_port, start_origin, ...)

SECS = 15
CONNS = 20


def fault_origin(kind, port):
    """A backend that misbehaves: 500 (every answer), hole (never answers), slow (2 s)."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1024)
    held = []

    def serve(c):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                _, buf = buf.split(b"\r\n\r\n", 1)
                if kind == "hole":
                    held.append(c)
                    while c.recv(65536):
                        pass
                    return
                if kind == "slow":
                    time.sleep(2)  # the backend is slow on purpose
                status = b"500 Internal Server Error" if kind == "500" else b"200 OK"
                c.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: 3\r\n\r\nbad"
                          if kind == "500" else b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        except OSError:
            return

    def accept():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return srv


def run(contender, case, work):
    o1, o2, o3 = bench.free_port(), bench.free_port(), bench.free_port()
    origins = bench.start_origin(work, [o1, o2])
    third = None
    if case == "killed":
        third = bench.start_origin(work, [o3])
    else:
        third = fault_origin(case, o3)
    port = bench.free_port()
    if contender == "brace":
        # The smallest config: one route, one upstream of three backends, no tables.
        cmd = bench.conf_brace(work, port, [o1, o2, o3], "plain", smallest=True)
    else:
        cmd = bench.conf_nginx(work, port, [o1, o2, o3], "plain")
    p = bench.start(cmd, bench.PROXY_CPU)
    try:
        bench.wait_port(port, p, contender)
        if case == "killed":
            threading.Timer(2.0, bench.stop, args=(third,)).start()
        url = f"http://127.0.0.1:{port}/small"
        return parse(wrk(url, 5)), parse(wrk(url, SECS - 5))
    finally:
        bench.stop(p)
        bench.stop(origins)
        if case == "killed":
            bench.stop(third)
        else:
            third.close()


def wrk(url, secs):
    """Closed loop; a 40 s timeout so a request parked on a silent backend is not counted
    as an error before the proxy answers it."""
    return subprocess.run(["taskset", "-c", bench.LOAD_CPU, "wrk", "-t1", f"-c{CONNS}", f"-d{secs}s",
                           "--timeout", "40s", "--latency", url],
                          capture_output=True, text=True, timeout=secs + 90).stdout


def parse(out):
    import re
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M)
        return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)] if m else None
    return {"requests": total, "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "errors": sum(map(int, sock.groups())) if sock else 0,
            "p50_us": pct(50), "p99_us": pct(99)}


def main():
    import tempfile
    work = tempfile.mkdtemp(prefix="brace-faults-")
    print(f"{'case':7} {'proxy':6} {'first 5 s: req':>15} {'bad':>6} | {'next 10 s: req':>15} {'bad':>6} {'bad %':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for case in ["killed", "500", "hole", "slow"]:
        for contender in ["brace", "nginx"]:
            e, l = run(contender, case, work)
            bad_e = e["non2xx"] + e["errors"]
            bad_l = l["non2xx"] + l["errors"]
            share = 100.0 * bad_l / max(l["requests"], 1)
            p50 = (l["p50_us"] or 0) / 1000
            p99 = (l["p99_us"] or 0) / 1000
            print(f"{case:7} {contender:6} {e['requests']:15} {bad_e:6} | {l['requests']:15} {bad_l:6} {share:7.3f} {p50:8.1f} {p99:8.1f}", flush=True)


if __name__ == "__main__":
    try:
        main()
    finally:
        bench.stop_all()
