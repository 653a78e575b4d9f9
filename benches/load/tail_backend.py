#!/usr/bin/env python3
"""A backend with a latency tail, for `benches/load/hedge`: each request is answered after
`--ms`, except a `--slow-share` of them (every n-th, not random, so runs compare) after
`--slow-ms`. HTTP/1.1 keep-alive, bodyless GETs. For `benches/load/canary`, from
`--fail-after` seconds after start a `--fail-share` of the requests (every n-th) get 500, and
the unix time in ms of the first such answer is written to `--mark`.

    tail_backend.py --ms 5 --slow-ms 60 --slow-share 0.05
    tail_backend.py --ms 5 --fail-share 0.3 --fail-after 3 --mark /tmp/first-500

Prints `PORT <p>` once listening on 127.0.0.1 (a port chosen by the OS). Exits on SIGTERM or
when stdin closes.
"""
import argparse
import asyncio
import signal
import sys
import time


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ms", type=float, default=5)
    p.add_argument("--slow-ms", type=float, default=60)
    p.add_argument("--slow-share", type=float, default=0.0)
    p.add_argument("--fail-share", type=float, default=0.0)
    p.add_argument("--fail-after", type=float, default=0.0)
    p.add_argument("--mark", default="")
    a = p.parse_args()
    every = round(1 / a.slow_share) if a.slow_share > 0 else 0
    fail_every = round(1 / a.fail_share) if a.fail_share > 0 else 0
    started = time.monotonic()
    seen = [0]
    marked = [False]
    body = b"ok\n"

    async def handle(r, w):
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                if not head:
                    break
                seen[0] += 1
                slow = every and seen[0] % every == 0
                await asyncio.sleep((a.slow_ms if slow else a.ms) / 1000)
                failing = fail_every and time.monotonic() - started >= a.fail_after
                if failing and seen[0] % fail_every == 0:
                    if a.mark and not marked[0]:
                        marked[0] = True
                        with open(a.mark, "w") as f:
                            f.write(str(int(time.time() * 1000)))
                    w.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 7\r\n\r\nfailed\n")
                    await w.drain()
                    continue
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print("PORT", server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, lambda: done.done() or done.set_result(None))
    loop.add_reader(sys.stdin, lambda: sys.stdin.read() or done.done() or done.set_result(None))
    await done


if __name__ == "__main__":
    asyncio.run(main())
