#!/usr/bin/env python3
"""The fleet measurements of docs/fleet.md ("Running a fleet"): three brace instances on one
redis-server, one key limited to 1,000 requests a second, 1,000 requests a second offered to
each instance (3,000 in all) for SECS seconds with the open-loop generator.

Reports: requests allowed per second by the whole fleet (each second after the first, when
the bucket's burst is spent), the share of requests that waited on Redis for a lease and the
p99 of that wait (from brace_rate_limit_store_wait_seconds), and the time a cluster-wide purge
takes to be applied and acknowledged by the other instances (the API waits for the
acknowledgements: an upper bound on propagation).

Usage: python3 benches/load/fleet.py [SECS]   (after `cargo build --release --bin brace
--example openloop`; benches/load/run-fleet does both). Everything on 127.0.0.1.
"""

import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (free_port, start, wait_port, start_origin, stop_all)

SECS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
RATE = 1000


def metrics(admin):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as r:
        return r.read().decode()


def sample(text, name, labels=""):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and labels in line and not line.startswith("#"):
            if line[len(name)] in " {":
                total += float(line.rsplit(" ", 1)[1])
    return total


def buckets(text, name):
    out = []
    for m in re.finditer(rf'^{name}_bucket{{.*le="([^"]+)"}} (\S+)$', text, re.M):
        le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
        out.append((le, float(m.group(2))))
    return sorted(out)


def post(admin, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{admin}{path}", data=body.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.headers.get("x-cache-status")


def main():
    work = tempfile.mkdtemp(prefix="brace-fleet-")
    try:
        rport = bench.free_port()
        redis = bench.start(["redis-server", "--bind", "127.0.0.1", "--port", str(rport), "--save", "",
                             "--appendonly", "no", "--dir", work], bench.LOAD_CPU)
        bench.wait_port(rport, redis, "redis-server")
        oport = bench.free_port()
        bench.start_origin(work, [oport])
        inst = []
        for i in range(3):
            port, admin = bench.free_port(), bench.free_port()
            conf = os.path.join(work, f"b{i}.toml")
            with open(conf, "w") as f:
                f.write(f"""[server]
listen = ["127.0.0.1:{port}"]
threads = 1
[admin]
listen = "127.0.0.1:{admin}"
[log]
level = "warn"
access_log = "off"
[cluster]
redis = "redis://127.0.0.1:{rport}/0"
instance_id = "b{i}"
heartbeat = "1s"
[cache]
max_size = "16MiB"
[[route]]
name = "cached"
path_prefix = "/cached"
upstream = "o"
[route.cache]
[[route]]
name = "main"
upstream = "o"
rate_limits = ["fleet"]
[rate_limit.fleet]
key = "route"
rate = {RATE}
burst = 100
scope = "global"
[upstream.o]
backends = ["127.0.0.1:{oport}"]
""")
            p = bench.start([bench.BRACE, "run", "-c", conf, "--upgrade-sock", f"{work}/u{i}.sock"], str(i % 2))
            bench.wait_port(port, p, f"brace {i}")
            inst.append((port, admin))

        # Each instance gets 1,000 requests a second, all on the one key.
        gens = [subprocess.Popen([bench.OPENLOOP, f"http://127.0.0.1:{port}/small", str(RATE), str(SECS), "20"],
                                 stdout=subprocess.PIPE, text=True) for port, _ in inst]
        outs = [json.loads(g.communicate()[0]) for g in gens]
        allowed_per_s = []
        for s in range(1, SECS):
            allowed_per_s.append(sum(RATE - o["errors_per_second"][s] for o in outs))
        texts = [metrics(a) for _, a in inst]
        decisions = sum(sample(t, "brace_rate_limit_decisions_total") for t in texts)
        waits = sum(sample(t, "brace_rate_limit_store_wait_seconds_count") for t in texts)
        fallbacks = sum(sample(t, "brace_rate_limit_store_fallbacks_total") for t in texts)
        merged = {}
        for t in texts:
            for le, c in buckets(t, "brace_rate_limit_store_wait_seconds"):
                merged[le] = merged.get(le, 0) + c
        p99 = next((le for le, c in sorted(merged.items()) if waits and c >= 0.99 * waits), None)

        # Purge propagation: an entry cached on all three, purged through the first.
        times = []
        for n in range(20):
            path = f"/cached/{n}"
            for port, _ in inst:
                get(port, path)
            t0 = time.perf_counter()
            r = post(inst[0][1], "/api/cache/purge", json.dumps({"url": f"http://127.0.0.1:{inst[0][0]}{path}"}))
            times.append((time.perf_counter() - t0) * 1000)
            assert r["cluster"]["unanswered"] == 0, r
        print(json.dumps({
            "seconds": SECS,
            "offered_per_s": 3 * RATE,
            "limit_per_s": RATE,
            "fleet_allowed_per_s": allowed_per_s,
            "fleet_allowed_per_s_median": statistics.median(allowed_per_s),
            "decisions": decisions,
            "waited_on_redis": waits,
            "waited_share": waits / decisions if decisions else None,
            "wait_p99_le_seconds": p99,
            "fallbacks": fallbacks,
            "purge_acknowledged_ms": {"median": statistics.median(times), "max": max(times)},
        }, indent=1))
    finally:
        bench.stop_all()


if __name__ == "__main__":
    main()
