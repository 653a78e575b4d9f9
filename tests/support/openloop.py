#!/usr/bin/env python3
"""Open-loop HTTP/1.1 load for the cascade tests and `benches/load/cascade`: requests are
started at a fixed rate whatever happens to earlier ones (a closed loop of clients would slow
down with the server and hide overload), each on its own connection, each given up after the
client's deadline. Latency is measured from the request's scheduled time.

    openloop.py --url http://127.0.0.1:PORT/path --rate 200 --seconds 10 --deadline 2 \
        [--kill-pid PID --kill-at 4]

With `--kill-pid`, that process is sent SIGKILL `--kill-at` seconds into the run, and the
results are split at that moment. Prints one JSON object: for `before` and `after` (and
`all`), requests sent, ok (200 within the deadline), shed (503 with Retry-After), other
errors, p50/p99 of the ok ones and p99 of the shed ones in ms, and shed answers missing
Retry-After.
"""
import argparse
import asyncio
import json
import os
import signal
import time


async def one(host, port, path, deadline):
    """(status, has Retry-After); status 0 for a failure to get an answer in time."""
    async def go():
        r, w = await asyncio.open_connection(host, port)
        try:
            w.write(("GET %s HTTP/1.1\r\nHost: cascade.test\r\nConnection: close\r\n\r\n" % path)
                    .encode())
            await w.drain()
            head = await r.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            retry_after = any(line.lower().startswith("retry-after:") for line in lines[1:])
            length = [int(line.split(":", 1)[1]) for line in lines[1:]
                      if line.lower().startswith("content-length:")]
            if length:
                await r.readexactly(length[0])
            else:
                await r.read()  # the body, to the close
            return status, retry_after
        finally:
            w.close()
    try:
        return await asyncio.wait_for(go(), deadline)
    except (asyncio.TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError):
        return 0, False


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 1)


def summary(rs, seconds):
    ok = [lat for (_, s, _, lat) in rs if s == 200]
    shed = [lat for (_, s, ra, lat) in rs if s == 503 and ra]
    return {
        "sent": len(rs),
        "ok": len(ok),
        "ok_per_s": round(len(ok) / seconds, 1) if seconds > 0 else None,
        "shed": len(shed),
        "errors": len(rs) - len(ok) - len(shed),
        "p50_ok_ms": pct(ok, 0.5),
        "p99_ok_ms": pct(ok, 0.99),
        "p999_ok_ms": pct(ok, 0.999),
        "p99_shed_ms": pct(shed, 0.99),
        "statuses": {str(k): sum(1 for r in rs if r[1] == k) for k in sorted({r[1] for r in rs})},
    }


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--deadline", type=float, default=2.0)
    p.add_argument("--kill-pid", type=int)
    p.add_argument("--kill-at", type=float, default=0)
    a = p.parse_args()
    rest = a.url.split("://", 1)[1]
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    path = "/" + path
    total = int(a.rate * a.seconds)
    results = []
    start = time.monotonic() + 0.1
    killed = a.kill_pid is None

    async def run(i, due):
        status, ra = await one(host, int(port), path, a.deadline)
        results.append((due - start, status, ra, time.monotonic() - due))

    tasks = []
    for i in range(total):
        due = start + i / a.rate
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)  # pacing to the schedule
        if not killed and due - start >= a.kill_at:
            os.kill(a.kill_pid, signal.SIGKILL)
            killed = True
        tasks.append(asyncio.ensure_future(run(i, due)))
    await asyncio.gather(*tasks)
    at = a.kill_at if a.kill_pid is not None else a.seconds
    before = [r for r in results if r[0] < at]
    after = [r for r in results if r[0] >= at]
    print(json.dumps({
        "before": summary(before, at),
        "after": summary(after, a.seconds - at),
        "all": summary(results, a.seconds),
    }), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
