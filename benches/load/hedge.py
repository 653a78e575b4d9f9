#!/usr/bin/env python3
"""Hedged requests against a latency tail (issue 28, item 6): three backends answering in
5 ms, one of which answers 5% of its requests in 60 ms (its p99 ten times the others').
Open-loop load of 200 requests/s for 20 s, the route with and without
`hedge = { after = "p95" }` (budget: 5% extra requests), interleaved, two runs each.

Started by `bash benches/load/hedge`. Everything listens on 127.0.0.1; every run is bounded
in time; every process started is stopped at exit. Reports the route's p50, p99 and p99.9 as
the clients saw them, and hedges sent and won as a share of requests.
"""
import os
import sys
import json
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

RATE, SECS = 200, 20


def backend(slow_share):
    return bench.tail_backend("--ms", "5", "--slow-ms", "60", "--slow-share", str(slow_share))


def hedges(admin):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("brace_upstream_hedges_total{"):
            result = line.split('result="')[1].split('"')[0]
            out[result] = float(line.rsplit(" ", 1)[1])
    return out


def run(work, hedge, balance):
    bs = [backend(0), backend(0), backend(0.05)]
    port, admin = bench.free_port(), bench.free_port()
    path = os.path.join(work, f"brace-{port}.toml")
    with open(path, "w") as f:
        f.write(f'[server]\nlisten = ["127.0.0.1:{port}"]\nthreads = 1\n[admin]\n'
                f'listen = "127.0.0.1:{admin}"\n[log]\nlevel = "error"\naccess_log = "off"\n'
                f'[[route]]\nname = "all"\nupstream = "app"\n'
                + ('hedge = { after = "p95" }\n' if hedge else "")
                + f'[upstream.app]\nbackends = {json.dumps([f"127.0.0.1:{b[1]}" for b in bs])}\n'
                f'balance = "{balance}"\n')
    p = bench.start([bench.BRACE, "run", "-c", path], bench.PROXY_CPU)
    try:
        bench.wait_port(port, p, "brace")
        return bench.open_loop_one_per_connection(port, RATE, SECS), hedges(admin)
    finally:
        bench.stop(p)
        for b in bs:
            bench.stop(b[0])



def main():
    import tempfile
    work = tempfile.mkdtemp(prefix="brace-hedge-")
    try:
        print(f"{RATE} requests/s for {SECS} s; three backends at 5 ms, one with 5% at 60 ms:\n")
        print(f"{'route':24} {'ok':>6} {'p50 ms':>7} {'p99 ms':>7} {'p99.9 ms':>9} "
              f"{'hedges sent':>12} {'won':>6}")
        runs = [(b, h) for b in ("round_robin", "ewma") for _ in range(2) for h in (False, True)]
        for balance, hedge in runs:
            r, h = run(work, hedge, balance)
            sent = h.get("sent", 0) / max(r["sent"], 1) * 100
            won = h.get("won", 0) / max(r["sent"], 1) * 100
            name = ("hedge p95, " if hedge else "no hedge, ") + balance
            print(f"{name:24} {r['ok']:6} {r['p50_ok_ms']:7.1f} {r['p99_ok_ms']:7.1f} "
                  f"{r['p999_ok_ms']:9.1f} {sent:11.2f}% {won:5.2f}%", flush=True)
    finally:
        bench.stop_all()


if __name__ == "__main__":
    main()
