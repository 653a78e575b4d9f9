#!/usr/bin/env python3
"""Canary releases with automatic rollback (issue 29, part 1). Two baseline backends and one
canary backend, all answering in 5 ms; a route with
`[route.canary] steps = [5, 25, 50, 100], interval = "5s", window = "10s"`; open-loop load of
200 requests/s (each on its own connection, 2 s deadline). Three scenarios, one brace each:

- **failing**: from 3 s in, the canary answers 500 to 30% of its requests (every third). Reports
  the time from its first 500 to brace's abort event, and the share of all client requests
  that saw an error over the whole run.
- **slow**: the canary answers in 15 ms (its p99 three times the baseline's). Reports the time
  to the abort and its reason.
- **healthy**: reports the steps walked and the time to promotion.

Then mirroring (part 2): the same load on a route without a canary, with no mirror, with every
request mirrored to a shadow answering in 200 ms, and to a black hole (a socket that accepts
nothing); reports the clients' p50/p99 in each case.

Started by `bash benches/load/canary`. Everything listens on 127.0.0.1; every run is bounded in
time; every process started is stopped at exit.
"""
import json
import os
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

RATE = 200


backend = bench.tail_backend


def events(admin):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/api/events", timeout=5) as r:
        return [e for e in json.loads(r.read())["events"] if e["kind"] == "canary"]


def black_hole():
    """A listening socket that never accepts: connections to it are never answered."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    return s, s.getsockname()[1]


def drive(work, route, upstreams, secs):
    """brace with one route `api` (`route`: its extra lines) on `upstreams` ({name: ports}),
    under the open-loop load for `secs`: the load's figures and the canary events."""
    port, admin = bench.free_port(), bench.free_port()
    path = os.path.join(work, f"brace-{port}.toml")
    with open(path, "w") as f:
        f.write(f'[server]\nlisten = ["127.0.0.1:{port}"]\nthreads = 1\n[admin]\n'
                f'listen = "127.0.0.1:{admin}"\n[log]\nlevel = "error"\naccess_log = "off"\n'
                f'[[route]]\nname = "api"\nupstream = "v1"\n{route}')
        for name, ports in upstreams.items():
            f.write(f'[upstream.{name}]\nbackends = {json.dumps([f"127.0.0.1:{p}" for p in ports])}\n')
    p = bench.start([bench.BRACE, "run", "-c", path], bench.PROXY_CPU)
    try:
        bench.wait_port(port, p, "brace")
        return bench.open_loop_one_per_connection(port, RATE, secs), events(admin)
    finally:
        bench.stop(p)


def run_mirror(work, shadow_port):
    base = [backend("--ms", "5"), backend("--ms", "5")]
    mirror = 'mirror = { upstream = "shadow" }\n' if shadow_port else ""
    try:
        ups = {"v1": [b[1] for b in base], "shadow": [shadow_port or 9]}
        return drive(work, mirror, ups, 10)[0]
    finally:
        for b in base:
            bench.stop(b[0])


def run(work, canary_args, secs):
    base = [backend("--ms", "5"), backend("--ms", "5")]
    canary = backend(*canary_args)
    route = ('[route.canary]\nupstream = "v2"\nsteps = [5, 25, 50, 100]\ninterval = "5s"\n'
             'window = "10s"\nmin_requests = 20\n')
    try:
        return drive(work, route, {"v1": [b[1] for b in base], "v2": [canary[1]]}, secs)
    finally:
        for b in base + [canary]:
            bench.stop(b[0])


def main():
    work = tempfile.mkdtemp(prefix="brace-canary-")
    mark = os.path.join(work, "first-500")
    try:
        print(f"{RATE} requests/s, open loop; canary steps 5, 25, 50, 100% every 5 s:\n")
        r, ev = run(work, ["--ms", "5", "--fail-share", "0.3", "--fail-after", "3",
                           "--mark", mark], 15)
        aborted = [e for e in ev if e["to"] == "aborted"]
        with open(mark) as f:
            first = int(f.read())
        errors = r["sent"] - r["ok"]
        took = (aborted[0]["at_unix_ms"] - first) / 1000 if aborted else float("nan")
        print(f"failing (30% 500 from 3 s): aborted {took:.1f} s after its first 500; "
              f"{errors} of {r['sent']} client requests failed ({errors / r['sent'] * 100:.2f}%); "
              f"reason: {aborted[0]['reason'] if aborted else 'not aborted'}", flush=True)

        r, ev = run(work, ["--ms", "15"], 15)
        aborted = [e for e in ev if e["to"] == "aborted"]
        print(f"slow (p99 3x): {'aborted: ' + aborted[0]['reason'] if aborted else 'not aborted'}; "
              f"p99 seen by clients {r['p99_ok_ms']:.1f} ms", flush=True)

        r, ev = run(work, ["--ms", "5"], 25)
        steps = [e["to"] for e in ev]
        print(f"healthy: {' -> '.join(steps) or 'no transition'}; "
              f"{r['sent'] - r['ok']} of {r['sent']} client requests failed", flush=True)

        print(f"\nmirroring, {RATE} requests/s for 10 s:")
        slow = backend("--ms", "200")
        hole, hole_port = black_hole()
        for name, shadow in [("no mirror", None), ("slow shadow (200 ms)", slow[1]),
                             ("black-holed shadow", hole_port), ("no mirror", None)]:
            r = run_mirror(work, shadow)
            print(f"{name:22} ok {r['ok']:5} of {r['sent']:5}  p50 {r['p50_ok_ms']:6.1f} ms  "
                  f"p99 {r['p99_ok_ms']:6.1f} ms", flush=True)
        hole.close()
    finally:
        bench.stop_all()


if __name__ == "__main__":
    main()
