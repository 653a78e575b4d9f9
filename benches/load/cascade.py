#!/usr/bin/env python3
"""The cascade scenario of issue 28: three backends of finite capacity (4 workers of 50 ms
each, 80 requests/s, 240/s in all; each crashes for 5 s when it holds more than 16), open-loop
load of 200 requests/s with a 2 s client deadline, and one backend killed 5 s in. Compared in
one run:

  brace           the smallest config (one route, one upstream, no tables): adaptive limits
  brace-manual    the same with a hand-set `max_in_flight = 12` and `adaptive = false`
  nginx           its defaults (max_fails=1 fail_timeout=10s)
  haproxy-expert  each server capped at its capacity (`maxconn 4`), a 500 ms queue

Then, for brace alone: the same load with nothing killed (nothing may be shed), and a
critical and a sheddable route splitting the load (100/s each) through the kill.

Started by `bash benches/load/cascade`. Everything listens on 127.0.0.1; every run is bounded
in time; every process started is stopped at exit. Reports, after the kill: goodput (200s
within the deadline, per second), survivors' crashes, shed answers (503 with Retry-After),
other failures, p99 of the admitted (ok) and of the shed answers.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (start, stop, stop_all, free_port, wait_port, BRACE, CPUs)

SUPPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "support")
RATE = 200
KILL_AT = 5
SECS = 25


def backends():
    """Three capacity backends: [(Popen, port, stats port)]."""
    out = []
    for _ in range(3):
        p = subprocess.Popen(["taskset", "-c", bench.LOAD_CPU, "python3",
                              os.path.join(SUPPORT, "capacity_backend.py"),
                              "--workers", "4", "--service-ms", "50", "--crash-over", "16",
                              "--down", "5"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
        bench.STARTED.append(p)
        f = p.stdout.readline().split()
        out.append((p, int(f[1]), int(f[3])))
    return out


def crashes(stats_port):
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{stats_port}/", timeout=5) as r:
        return json.load(r)["crashes"]


def load(port, path, rate, secs, kill=None):
    cmd = ["taskset", "-c", bench.LOAD_CPU, "python3", os.path.join(SUPPORT, "openloop.py"),
           "--url", f"http://127.0.0.1:{port}{path}", "--rate", str(rate),
           "--seconds", str(secs), "--deadline", "2"]
    if kill:
        cmd += ["--kill-pid", str(kill), "--kill-at", str(KILL_AT)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def conf(contender, work, port, origins):
    ups = [f"127.0.0.1:{o}" for o in origins]
    if contender.startswith("brace"):
        admin = bench.free_port()
        extra = "max_in_flight = 12\nadaptive = false\n" if contender == "brace-manual" else ""
        routes = ('[[route]]\nname = "all"\nupstream = "app"\n' if contender != "brace-priority" else
                  '[[route]]\nname = "checkout"\npath_prefix = "/checkout"\nupstream = "app"\n'
                  'priority = "critical"\n[[route]]\nname = "feed"\npath_prefix = "/feed"\n'
                  'upstream = "app"\npriority = "sheddable"\n')
        path = os.path.join(work, f"brace-{port}.toml")
        with open(path, "w") as f:
            f.write(f'[server]\nlisten = ["127.0.0.1:{port}"]\nthreads = 1\n[admin]\n'
                    f'listen = "127.0.0.1:{admin}"\n[log]\nlevel = "error"\naccess_log = "off"\n'
                    f'{routes}[upstream.app]\nbackends = {json.dumps(ups)}\n{extra}')
        return [bench.BRACE, "run", "-c", path]
    if contender == "nginx":
        servers = " ".join(f"server {u};" for u in ups)
        path = os.path.join(work, f"nginx-{port}.conf")
        with open(path, "w") as f:
            f.write(f"""daemon off; master_process off; worker_processes 1; pid {work}/nginx-{port}.pid;
error_log {work}/nginx-error.log crit;
events {{ worker_connections 4096; }}
http {{ access_log off;
  upstream o {{ {servers} }}
  server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://o; }} }}
}}
""")
        return ["nginx", "-c", path, "-p", work]
    return bench.conf_haproxy(work, port, origins, "cascade")


def run(contender, work, kill=True, secs=SECS):
    bs = backends()
    port = bench.free_port()
    p = bench.start(conf(contender, work, port, [b[1] for b in bs]), bench.PROXY_CPU)
    try:
        bench.wait_port(port, p, contender)
        victim = bs[2][0].pid if kill else None
        if contender == "brace-priority":
            feed = load(port, "/feed", RATE // 2, secs)
            crit = load(port, "/checkout", RATE // 2, secs, victim)
            out = {"critical": json.loads(crit.communicate()[0]),
                   "sheddable": json.loads(feed.communicate()[0])}
        else:
            out = {"all": json.loads(load(port, "/", RATE, secs, victim).communicate()[0])}
        out["crashes"] = sum(crashes(b[2]) for b in (bs[:2] if kill else bs))
        return out
    finally:
        bench.stop(p)
        for b in bs:
            bench.stop(b[0])


def row(name, r, phase, crashes):
    x = r[phase]
    ok = x["ok"] / max(x["sent"], 1) * 100
    print(f"{name:16} {x['ok_per_s'] or 0:9.1f} {ok:7.1f}% {crashes:8} {x['shed']:6} "
          f"{x['errors']:7} {x['p99_ok_ms'] or 0:10.0f} {x['p99_shed_ms'] or 0:10.0f}", flush=True)


def main():
    import tempfile
    work = tempfile.mkdtemp(prefix="brace-cascade-")
    try:
        print(f"One of three backends killed at {KILL_AT} s under {RATE} requests/s "
              f"(survivors can serve 160/s); {SECS - KILL_AT} s after the kill:\n")
        print(f"{'proxy':16} {'goodput/s':>9} {'ok':>8} {'crashes':>8} {'shed':>6} "
              f"{'errors':>7} {'p99 ok ms':>10} {'p99 shed':>10}")
        for c in ["brace", "brace-manual", "nginx", "haproxy-expert"]:
            r = run(c, work)
            row(c, r["all"], "after", r["crashes"])
        print("\nbrace, all three healthy, the same load for 10 s:")
        r = run("brace", work, kill=False, secs=10)
        row("brace", r["all"], "all", r["crashes"])
        print("\nbrace, a critical and a sheddable route at 100/s each, through the kill:")
        r = run("brace-priority", work)
        row("critical", r["critical"], "after", r["crashes"])
        row("sheddable", r["sheddable"], "all", r["crashes"])
    finally:
        bench.stop_all()


if __name__ == "__main__":
    main()
