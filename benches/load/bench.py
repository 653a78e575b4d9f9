#!/usr/bin/env python3
"""brace's load harness: brace, nginx, HAProxy and a bare pingora proxy under the same load.

Started by `bash benches/load/run [--quick]` (which installs and builds what it needs).

Topology on a 2-core machine: the proxy under test pinned to CPU 0 with one worker; the
origin (nginx, one worker) and the load generator (wrk -t1, or ./openloop) pinned to CPU 1.
Everything listens on 127.0.0.1 only. Every load is bounded in time, and every process this
script starts is stopped by its PID at the end, also on failure or Ctrl-C.

The figure that counts is proxy CPU microseconds per request: utime + stime of the proxy's
process from /proc/PID/stat over the run, divided by the requests completed. Contenders run
interleaved (A, B, C, D, A, B, ...); medians are reported.
"""
import csv
import datetime
import json
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REL = os.path.join(ROOT, "target", "release")
BRACE = os.path.join(REL, "brace")
BARE = os.path.join(REL, "examples", "bare_pingora")
OPENLOOP = os.path.join(REL, "examples", "openloop")
RESULTS = os.path.join(ROOT, "benches", "results")
TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")
PROXY_CPU, LOAD_CPU = "0", "1"

QUICK = "--quick" in sys.argv
REPS = 1 if QUICK else 3
SECS = 3 if QUICK else 10
CONTENDERS = ["brace", "nginx", "haproxy", "pingora"]

STARTED = []  # every Popen this script made, stopped at exit


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd, cpu, **kw):
    p = subprocess.Popen(["taskset", "-c", cpu] + cmd, stdout=subprocess.DEVNULL,
                         stderr=kw.pop("stderr", subprocess.DEVNULL), start_new_session=True, **kw)
    STARTED.append(p)
    return p


def tail_backend(*args):
    """A `tail_backend.py` on the load CPU with these arguments: (its process, its port)."""
    here = os.path.dirname(os.path.abspath(__file__))
    p = subprocess.Popen(["taskset", "-c", LOAD_CPU, "python3",
                          os.path.join(here, "tail_backend.py"), *args],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         start_new_session=True)
    STARTED.append(p)
    return p, int(p.stdout.readline().split()[1])


def open_loop_one_per_connection(port, rate, secs):
    """`tests/support/openloop.py` on the load CPU against 127.0.0.1:`port`: `rate` requests a
    second for `secs`, each on its own connection with a 2 s deadline; its `all` figures."""
    script = os.path.join(ROOT, "tests", "support", "openloop.py")
    out = subprocess.run(["taskset", "-c", LOAD_CPU, "python3", script, "--url",
                          f"http://127.0.0.1:{port}/", "--rate", str(rate),
                          "--seconds", str(secs), "--deadline", "2"],
                         stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(out.stdout)["all"]


def stop(p):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(timeout=10)


def stop_all():
    for p in STARTED:
        stop(p)


def wait_port(port, proc, what, deadline=20):
    end = time.time() + deadline
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)  # polling for the port, bounded by the deadline
    raise RuntimeError(f"{what} not listening on {port} after {deadline}s")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def status_kib(pid, field):
    """A memory field of /proc/PID/status in KiB: VmRSS (now) or VmHWM (peak)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------- origin

SMALL = "x" * 100


def start_origin(work, ports):
    """nginx with one worker (no master) on CPU 1: /small (100 B), /big (1 MiB), /cached."""
    big = os.path.join(work, "big")
    if not os.path.exists(big):
        with open(big, "wb") as f:
            f.write(b"b" * (1 << 20))
    servers = "".join(f"""
    server {{
        listen 127.0.0.1:{p};
        keepalive_requests 10000000;
        location /small {{ return 200 "{SMALL}"; }}
        location /cached {{ add_header Cache-Control "public, max-age=3600"; return 200 "{SMALL}"; }}
        location /big {{ root {work}; try_files /big =404; }}
        location /healthz {{ return 200 "ok"; }}
    }}""" for p in ports)
    conf = os.path.join(work, f"origin-{ports[0]}.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off; master_process off; worker_processes 1; pid {work}/origin-{ports[0]}.pid;
error_log {work}/origin-error.log crit; worker_rlimit_nofile 65535;
events {{ worker_connections 16384; }}
http {{ access_log off; sendfile on; {servers} }}
""")
    p = start(["nginx", "-c", conf, "-p", work], LOAD_CPU)
    for port in ports:
        wait_port(port, p, "origin nginx")
    return p


# ---------------------------------------------------------------- contenders


def conf_nginx(work, port, origins, case):
    ups = "\n".join(f"server 127.0.0.1:{o} max_fails=1 fail_timeout=10s;" for o in origins)
    extra_http, extra_loc = "", ""
    if case == "ratelimit":
        extra_http = "limit_req_zone $binary_remote_addr zone=z:1m rate=1r/s; limit_req_status 429;"
        extra_loc = "limit_req zone=z nodelay;"
    if case == "cache":
        extra_http = f"proxy_cache_path {work}/nginx-cache levels=1:2 keys_zone=c:10m max_size=256m inactive=1h use_temp_path=off;"
        extra_loc = "proxy_cache c; proxy_cache_valid 200 1h;"
    path = os.path.join(work, f"nginx-{port}.conf")
    with open(path, "w") as f:
        f.write(f"""daemon off; master_process off; worker_processes 1; pid {work}/nginx-{port}.pid;
error_log {work}/nginx-error.log crit; worker_rlimit_nofile 65535;
events {{ worker_connections 16384; }}
http {{
  access_log off; {extra_http}
  upstream o {{ {ups} keepalive 2048; keepalive_requests 10000000; }}
  server {{
    listen 127.0.0.1:{port} reuseport; keepalive_requests 10000000;
    location / {{ proxy_pass http://o; proxy_http_version 1.1; proxy_set_header Connection ""; {extra_loc} }}
  }}
}}
""")
    return ["nginx", "-c", path, "-p", work]


def conf_haproxy(work, port, origins, case):
    """HAProxy for `case`; "cascade" is the expert's setting of benches/load/cascade: each
    server capped at its capacity (`maxconn 4`) with a 500 ms queue in front."""
    cap = " maxconn 4" if case == "cascade" else ""
    servers = "\n".join(f"  server s{i} 127.0.0.1:{o}{cap} check inter 1s" for i, o in enumerate(origins))
    fe_extra, be_extra, sections = "", "", ""
    if case == "ratelimit":
        fe_extra = """  stick-table type integer size 1 expire 10s store http_req_rate(1s)
  http-request track-sc0 int(1)
  http-request deny deny_status 429 if { sc_http_req_rate(0) gt 1 }"""
    if case == "cache":
        sections = "cache c\n  total-max-size 64\n  max-age 3600\n"
        be_extra = "  http-request cache-use c\n  http-response cache-store c"
    path = os.path.join(work, f"haproxy-{port}.cfg")
    with open(path, "w") as f:
        f.write(f"""global
  nbthread 1
  maxconn 5000
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
{"  timeout queue 500ms" + chr(10) if case == "cascade" else ""}  option http-keep-alive
  option redispatch
  retries 2
  http-reuse always
{sections}frontend fe
  bind 127.0.0.1:{port}
{fe_extra}
  default_backend be
backend be
{be_extra}
{servers}
""")
    return ["haproxy", "-f", path, "-db"]


def conf_brace(work, port, origins, case, smallest=False):
    admin = free_port()
    backends = ", ".join(f'"127.0.0.1:{o}"' for o in origins)
    route_extra, upstream_extra, top = "", "", ""
    if case == "ratelimit":
        top = '[rate_limit.all]\nkey = "route"\nrate = 1\nper = "1s"\nburst = 1\n'
        route_extra = 'rate_limits = ["all"]'
    if case == "dead":
        # Active checks, retries, and passive ejection: brace's counterpart of nginx's
        # default passive check (max_fails=1 fail_timeout=10s) is the outlier table, which
        # is off unless configured (as in Envoy).
        upstream_extra = """[upstream.o.health_check]
type = "tcp"
interval = "1s"
timeout = "500ms"
unhealthy_threshold = 1
[upstream.o.retry]
attempts = 2
[upstream.o.outlier]"""
    if case == "cache":
        top = '[cache]\nmax_size = "256MiB"\n'
        route_extra = "[route.cache]"
    path = os.path.join(work, f"brace-{port}.toml")
    with open(path, "w") as f:
        f.write(f"""[server]
listen = ["127.0.0.1:{port}"]
threads = 1
[admin]
listen = "127.0.0.1:{admin}"
[log]
level = "error"
access_log = "off"
{top}
[[route]]
name = "all"
upstream = "o"
{route_extra}
[upstream.o]
backends = [{backends}]
{"" if smallest else "keepalive = 2048"}
{upstream_extra}
""")
    if subprocess.run([BRACE, "check", "-c", path], capture_output=True).returncode != 0:
        return None  # this brace cannot run the case (e.g. a feature not built yet)
    return [BRACE, "run", "-c", path, "--upgrade-sock", os.path.join(work, f"up-{port}.sock")]


def conf_pingora(work, port, origins, case):
    if len(origins) != 1 or case in ("ratelimit", "cache"):
        return None  # a fixed single peer only
    return [BARE, f"127.0.0.1:{port}", f"127.0.0.1:{origins[0]}", "1"]


CONF = {"brace": conf_brace, "nginx": conf_nginx, "haproxy": conf_haproxy, "pingora": conf_pingora}

# ---------------------------------------------------------------- load


def wrk(url, conns, secs):
    out = subprocess.run(["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{conns}", f"-d{secs}s",
                          "--timeout", "5s", "--latency", url],
                         capture_output=True, text=True, timeout=secs + 60).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = sum(map(int, sock.groups())) if sock else 0

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M)
        if not m:
            return None
        v, u = float(m.group(1)), m.group(2)
        return v * {"us": 1, "ms": 1e3, "s": 1e6}[u]
    return {"requests": total, "rps": rps, "errors": errors,
            "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "p50_us": pct(50), "p99_us": pct(99)}


def openloop(url, rate, secs, conns=50):
    out = subprocess.run(["taskset", "-c", LOAD_CPU, OPENLOOP, url, str(int(rate)), str(secs), str(conns)],
                         capture_output=True, text=True, timeout=secs + 60).stdout
    return json.loads(out)


def idle_connections(port, n=1000):
    """Opens n keep-alive connections, one request each, and keeps them open."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(s)
    for s in socks:
        s.recv(65536)
    return socks


# ---------------------------------------------------------------- cases

# name, what, origin set, path, connections, case key for configs
CASES = [
    ("a", "small body, 50 connections", "one", "/small", 50, "plain"),
    ("b", "cache hit", "one", "/cached", 50, "cache"),
    ("c", "one of three backends dead (steady state)", "dead", "/small", 50, "dead"),
    ("d", "rate-limited route refusing almost everything", "one", "/small", 50, "ratelimit"),
    ("e", "small body, 1,000 connections", "one", "/small", 1000, "plain"),
    ("f", "1 MiB bodies, 50 connections", "one", "/big", 50, "plain"),
]


def run_case(work, case, contender, origins):
    name, _, _, path, conns, key = case
    port = free_port()
    cmd = CONF[contender](work, port, origins, key)
    if cmd is None:
        return None
    p = start(cmd, PROXY_CPU)
    try:
        wait_port(port, p, contender)
        url = f"http://127.0.0.1:{port}{path}"
        if key in ("cache", "dead"):
            wrk(url, 10, 2)  # warm: fill the cache; let health checks find the dead backend
        t0 = cpu_ticks(p.pid)
        r = wrk(url, conns, SECS)
        r["cpu_us_per_req"] = (cpu_ticks(p.pid) - t0) * TICK_US / max(r["requests"], 1)
        r["peak_rss_kib"] = status_kib(p.pid, "VmHWM")
        return r
    finally:
        stop(p)


def main():
    # As many open files as allowed: 1,000-connection runs need a few thousand.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.makedirs(RESULTS, exist_ok=True)
    work = tempfile.mkdtemp(prefix="brace-load-")
    o1, o2, o3 = free_port(), free_port(), free_port()
    dead = free_port()  # nothing listens here
    origin = start_origin(work, [o1, o2])
    origin3 = start_origin(work, [o3])
    origin_sets = {"one": [o1], "dead": [o1, o2, dead]}

    rows = []  # (case, contender, rep, result)
    for rep in range(REPS):
        for case in CASES:
            for c in CONTENDERS:
                r = run_case(work, case, c, origin_sets[case[2]])
                if r:
                    rows.append((case[0], c, rep, r))
                    print(f"[rep {rep + 1}/{REPS}] ({case[0]}) {c:8} {r['cpu_us_per_req']:8.1f} µs/req "
                          f"{r['rps']:10.0f} req/s  errors {r['errors']} non2xx {r['non2xx']}", flush=True)

    # (c) transition: kill the third origin at t = 3 s under a fixed rate, count errors per second.
    transition = {}
    for c in ["brace", "nginx", "haproxy"]:
        stop(origin3)
        origin3 = start_origin(work, [o3])
        port = free_port()
        p = start(CONF[c](work, port, [o1, o2, o3], "dead"), PROXY_CPU)
        try:
            wait_port(port, p, c)
            rate, secs = 2000, 8
            import threading
            killer = threading.Timer(3.1, stop, args=(origin3,))  # 3 s after the load's start
            killer.start()
            transition[c] = openloop(f"http://127.0.0.1:{port}/small", rate, secs)
            killer.join()
            print(f"(c) transition {c:8} errors {transition[c]['errors']} per second {transition[c]['errors_per_second']}", flush=True)
        finally:
            stop(p)

    # (g) fixed rate at half the slowest contender's capacity in (a).
    cap = {c: statistics.median(r["rps"] for k, cc, _, r in rows if k == "a" and cc == c)
           for c in CONTENDERS if any(k == "a" and cc == c for k, cc, _, _ in rows)}
    rate = min(cap.values()) / 2
    fixed = {}
    for rep in range(REPS):
        for c in CONTENDERS:
            port = free_port()
            p = start(CONF[c](work, port, [o1], "plain"), PROXY_CPU)
            try:
                wait_port(port, p, c)
                t0 = cpu_ticks(p.pid)
                r = openloop(f"http://127.0.0.1:{port}/small", rate, SECS)
                r["cpu_us_per_req"] = (cpu_ticks(p.pid) - t0) * TICK_US / max(r["sent"], 1)
                fixed.setdefault(c, []).append(r)
                print(f"[rep {rep + 1}] (g) {c:8} p50 {r['p50_us']} µs p99 {r['p99_us']} µs p999 {r['p999_us']} µs errors {r['errors']}", flush=True)
            finally:
                stop(p)

    # Memory: 1,000 idle keep-alive client connections.
    idle = {}
    for c in CONTENDERS:
        port = free_port()
        p = start(CONF[c](work, port, [o1], "plain"), PROXY_CPU)
        try:
            wait_port(port, p, c)
            before = status_kib(p.pid, "VmRSS")
            socks = idle_connections(port)
            idle[c] = (before, status_kib(p.pid, "VmRSS"))
            for s in socks:
                s.close()
        finally:
            stop(p)

    stop(origin)
    stop(origin3)
    report(rows, transition, rate, fixed, idle)


def med(rows, case, c, key):
    vals = [r[key] for k, cc, _, r in rows if k == case and cc == c and r.get(key) is not None]
    return statistics.median(vals) if vals else None


def versions():
    def first(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"brace": first([BRACE, "--version"]), "nginx": first(["nginx", "-v"]),
            "haproxy": first(["haproxy", "-v"]), "wrk": first(["wrk", "-v"]),
            "rustc": first(["rustc", "-V"]), "nproc": str(os.cpu_count()), "cpu": cpu}


def fmt(v, digits=1):
    return "n/a" if v is None else f"{v:,.{digits}f}"


def report(rows, transition, rate, fixed, idle):
    # RESULTS_SUFFIX=-2 keeps a second run of the same day from overwriting the first.
    date = datetime.date.today().isoformat() + os.environ.get("RESULTS_SUFFIX", "")
    stem = os.path.join(RESULTS, f"{date}{'-quick' if QUICK else ''}")
    v = versions()
    lines = [f"# brace load results, {date}{' (quick)' if QUICK else ''}", "",
             f"Machine: {v['nproc']} cores, {v['cpu']}. Versions: {v['brace']}; {v['nginx']}; {v['haproxy']}; {v['wrk']}; {v['rustc']}.",
             f"Command: `bash benches/load/run{' --quick' if QUICK else ''}`. {REPS} interleaved repetition(s) of {SECS} s; medians. "
             "Proxy on CPU 0 with one worker; origin (nginx) and load generator on CPU 1.", "",
             "## CPU µs per request (lower is better), with brace's ratio to each contender", "",
             "| case | brace | nginx | HAProxy | bare pingora | brace/nginx | brace/HAProxy | brace/pingora |",
             "|---|---|---|---|---|---|---|---|"]
    for name, what, *_ in CASES:
        m = {c: med(rows, name, c, "cpu_us_per_req") for c in CONTENDERS}
        ratio = lambda o: "n/a" if m["brace"] is None or m[o] is None else f"{m['brace'] / m[o]:.2f}"
        lines.append(f"| ({name}) {what} | {fmt(m['brace'])} | {fmt(m['nginx'])} | {fmt(m['haproxy'])} | {fmt(m['pingora'])} "
                     f"| {ratio('nginx')} | {ratio('haproxy')} | {ratio('pingora')} |")
    gb = {c: statistics.median(r["cpu_us_per_req"] for r in fixed[c]) if c in fixed else None for c in CONTENDERS}
    def gratio(o):
        return "n/a" if not gb["brace"] or not gb[o] else "%.2f" % (gb["brace"] / gb[o])
    lines.append(f"| (g) fixed {rate:,.0f} req/s | {fmt(gb['brace'])} | {fmt(gb['nginx'])} | {fmt(gb['haproxy'])} | {fmt(gb['pingora'])} "
                 f"| {gratio('nginx')} | {gratio('haproxy')} | {gratio('pingora')} |")
    lines += ["", "## Throughput, latency, errors and memory (medians)", "",
              "| case | contender | req/s | p50 µs | p99 µs | errors | non-2xx | peak RSS MiB |", "|---|---|---|---|---|---|---|---|"]
    for name, *_ in CASES:
        for c in CONTENDERS:
            if med(rows, name, c, "rps") is None:
                continue
            lines.append(f"| ({name}) | {c} | {fmt(med(rows, name, c, 'rps'), 0)} | {fmt(med(rows, name, c, 'p50_us'), 0)} "
                         f"| {fmt(med(rows, name, c, 'p99_us'), 0)} | {fmt(med(rows, name, c, 'errors'), 0)} "
                         f"| {fmt(med(rows, name, c, 'non2xx'), 0)} | {fmt(med(rows, name, c, 'peak_rss_kib') / 1024)} |")
    lines += ["", f"## (g) open loop at {rate:,.0f} req/s (half the slowest contender's capacity in (a)), medians", "",
              "| contender | p50 µs | p99 µs | p99.9 µs | errors |", "|---|---|---|---|---|"]
    for c, rs in fixed.items():
        g = lambda k: statistics.median(r[k] for r in rs)
        lines.append(f"| {c} | {g('p50_us'):,.0f} | {g('p99_us'):,.0f} | {g('p999_us'):,.0f} | {g('errors'):,.0f} |")
    lines += ["", "## (c) transition: one of three backends killed at t = 3 s, 2,000 req/s open loop", "",
              "| contender | client errors in all | errors per second (t = 0, 1, 2, ...) |", "|---|---|---|"]
    for c, t in transition.items():
        lines.append(f"| {c} | {t['errors']} | {t['errors_per_second']} |")
    lines += ["", "## Memory with 1,000 idle keep-alive client connections", "",
              "| contender | RSS before MiB | RSS with 1,000 idle MiB |", "|---|---|---|"]
    for c, (b, a) in idle.items():
        lines.append(f"| {c} | {b / 1024:.1f} | {a / 1024:.1f} |")
    with open(stem + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(stem + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case", "contender", "rep", "cpu_us_per_req", "rps", "p50_us", "p99_us", "errors", "non2xx", "peak_rss_kib"])
        for k, c, rep, r in rows:
            w.writerow([k, c, rep, f"{r['cpu_us_per_req']:.2f}", f"{r['rps']:.0f}", r["p50_us"], r["p99_us"], r["errors"], r["non2xx"], r["peak_rss_kib"]])
        for c, rs in fixed.items():
            for rep, r in enumerate(rs):
                w.writerow(["g", c, rep, f"{r['cpu_us_per_req']:.2f}", f"{rate:.0f}", r["p50_us"], r["p99_us"], r["errors"], "", ""])
    chart(stem + ".svg", rows, gb)
    print("\n".join(lines))
    print(f"\nwrote {stem}.md, .csv and .svg")


def chart(path, rows, gb):
    """Grouped bars: CPU µs/request per case per contender."""
    colors = {"brace": "#d9480f", "nginx": "#2b8a3e", "haproxy": "#1971c2", "pingora": "#868e96"}
    cases = [(n, {c: med(rows, n, c, "cpu_us_per_req") for c in CONTENDERS}) for n, *_ in CASES] + [("g", gb)]
    top = max([v for _, m in cases for v in m.values() if v] + [1])
    W, H, pad, gw = 760, 360, 50, (760 - 60) / len(cases)
    bw = gw / (len(CONTENDERS) + 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
           f'<text x="{W / 2}" y="16" text-anchor="middle" font-size="13">CPU µs per request (lower is better)</text>']
    for i, (n, m) in enumerate(cases):
        x0 = 50 + i * gw
        for j, c in enumerate(CONTENDERS):
            v = m.get(c)
            if not v:
                continue
            h = (H - 2 * pad) * v / top
            x = x0 + j * bw
            out.append(f'<rect x="{x:.1f}" y="{H - pad - h:.1f}" width="{bw - 2:.1f}" height="{h:.1f}" fill="{colors[c]}"><title>{c}: {v:.1f}</title></rect>')
            out.append(f'<text x="{x + bw / 2:.1f}" y="{H - pad - h - 3:.1f}" text-anchor="middle" font-size="9">{v:.0f}</text>')
        out.append(f'<text x="{x0 + gw / 2 - bw / 2:.1f}" y="{H - pad + 15}" text-anchor="middle">({n})</text>')
    for j, c in enumerate(CONTENDERS):
        out.append(f'<rect x="{60 + j * 110}" y="{H - 18}" width="10" height="10" fill="{colors[c]}"/><text x="{74 + j * 110}" y="{H - 9}">{c}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        main()
    finally:
        stop_all()
