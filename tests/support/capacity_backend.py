#!/usr/bin/env python3
"""A backend of finite capacity, for the cascade tests and `benches/load/cascade`.

A fixed number of workers, each taking a fixed service time per request, with an unbounded
queue in front; when it holds more than `--crash-over` requests at once it crashes: every
connection is closed, connections are refused for `--down` seconds, and it comes back empty.

    capacity_backend.py --workers 4 --service-ms 50 --crash-over 16 --down 5

Prints `PORT <p> STATS <s>` on stdout once listening (both on 127.0.0.1, chosen by the OS);
`GET /` on the stats port answers JSON: served, crashes, held, max_held. Exits on SIGTERM or
when stdin closes (so it never outlives the test that started it).
"""
import argparse
import asyncio
import json
import signal
import socket
import sys


class Backend:
    def __init__(self, a):
        self.a = a
        self.workers = asyncio.Semaphore(a.workers)
        self.epoch = 0
        self.held = 0
        self.max_held = 0
        self.served = 0
        self.crashes = 0
        self.writers = set()
        self.server = None
        self.port = 0

    async def listen(self):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self.server = await asyncio.start_server(self.handle, sock=sock, backlog=1024)

    async def handle(self, r, w):
        epoch = self.epoch
        self.writers.add(w)
        try:
            while True:
                try:
                    head = await r.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v.strip() or 0)
                if length:
                    await r.readexactly(length)
                if epoch != self.epoch:
                    return
                self.held += 1
                self.max_held = max(self.max_held, self.held)
                if self.held > self.a.crash_over:
                    self.crash()
                    return
                async with self.workers:
                    if epoch == self.epoch:
                        await asyncio.sleep(self.a.service_ms / 1000)  # the work itself
                if epoch != self.epoch:
                    return
                self.held -= 1
                self.served += 1
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                await w.drain()
        except (ConnectionError, OSError):
            return
        finally:
            self.writers.discard(w)
            w.close()

    def crash(self):
        self.crashes += 1
        self.epoch += 1
        self.held = 0
        self.server.close()
        for w in list(self.writers):
            w.transport.abort()
        self.writers.clear()
        asyncio.get_running_loop().create_task(self.revive())

    async def revive(self):
        await asyncio.sleep(self.a.down)  # the time a crashed server takes to come back
        await self.listen()

    async def stats(self, r, w):
        try:
            await r.readuntil(b"\r\n\r\n")
            body = json.dumps({
                "served": self.served,
                "crashes": self.crashes,
                "held": self.held,
                "max_held": self.max_held,
            }).encode()
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            w.close()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--service-ms", type=float, default=50)
    p.add_argument("--crash-over", type=int, default=16)
    p.add_argument("--down", type=float, default=5)
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args()
    b = Backend(a)
    b.port = a.port
    await b.listen()
    stats = await asyncio.start_server(b.stats, "127.0.0.1", 0)
    print("PORT %d STATS %d" % (b.port, stats.sockets[0].getsockname()[1]), flush=True)
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, lambda: done.done() or done.set_result(None))
    try:
        loop.add_reader(sys.stdin, lambda: sys.stdin.read(1) or done.done() or done.set_result(None))
    except (PermissionError, ValueError):
        pass  # stdin is not a pipe (a file or /dev/null): SIGTERM only
    await done


if __name__ == "__main__":
    asyncio.run(main())
