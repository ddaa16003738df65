"""Fan-out load client for bench/run_fanout.py (asyncio, raw sockets, standard library only).

    python fanout.py MODE PORT CONNS SECONDS WINDOW

MODE is ``sse`` (GET /sse with Accept: text/event-stream) or ``ws`` (a WebSocket on /ws,
no compression). Opens CONNS subscribers, publishes warm-up events until every one of
them has received one, prints ``{"ready": ...}`` and waits for a line on stdin (the
harness reads the server's RSS meanwhile). Then for SECONDS it publishes events with
``POST /publish`` on one keep-alive connection, keeping at most WINDOW events in flight
(an event is in flight until all CONNS subscribers got it), and prints one JSON line:
deliveries, events, deliveries/s and this process's CPU use (fraction of one core).

Deliveries are counted by a marker in the event payload, so framing (chunked
encoding, WebSocket frames, CRLF or LF line ends) does not matter.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import resource
import sys
import time

MARK = b"fanout hello"


class Counter:
    def __init__(self) -> None:
        self.delivered = 0
        self.changed = asyncio.Event()
        self.per_conn: list[int] = []


async def subscriber(mode: str, port: int, counter: Counter, index: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if mode == "sse":
        request = "GET /sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
    else:
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
    writer.write(request.encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n")[0] and b" 101 " not in head.split(b"\r\n")[0]:
        raise RuntimeError(head.decode(errors="replace"))
    carry = b""
    keep = len(MARK) - 1
    while True:
        data = await reader.read(262144)
        if not data:
            return
        chunk = carry + data
        found = chunk.count(MARK)
        if found:
            counter.delivered += found
            counter.per_conn[index] += found
            counter.changed.set()
        carry = chunk[-keep:]


async def publisher(port: int):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"

    async def publish_one() -> None:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        if length:
            await reader.readexactly(length)

    return publish_one


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main() -> None:
    mode, port, conns, seconds, window = (
        sys.argv[1],
        int(sys.argv[2]),
        *map(int, sys.argv[3:5]),
        int(sys.argv[5]),
    )
    counter = Counter()
    counter.per_conn = [0] * conns
    tasks = []
    for start in range(0, conns, 100):  # batches, so the accept backlog is not the test
        batch = [
            asyncio.create_task(subscriber(mode, port, counter, i))
            for i in range(start, min(conns, start + 100))
        ]
        tasks += batch
        await asyncio.sleep(0.05)
    publish_one = await publisher(port)
    deadline = time.monotonic() + 60
    while min(counter.per_conn) == 0:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {sum(1 for c in counter.per_conn if c)}/{conns} subscribed")
        await publish_one()
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # let the warm-up events drain
    print(json.dumps({"ready": conns}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    base = counter.delivered
    published = 0
    cpu0, t0 = cpu(), time.monotonic()
    end = t0 + seconds
    while time.monotonic() < end:
        while published * conns - (counter.delivered - base) >= window * conns:
            counter.changed.clear()
            await counter.changed.wait()
        await publish_one()
        published += 1
    # Wait for what is in flight (bounded), so deliveries match events.
    settle = time.monotonic() + 10
    while counter.delivered - base < published * conns and time.monotonic() < settle:
        counter.changed.clear()
        try:
            await asyncio.wait_for(counter.changed.wait(), 1)
        except asyncio.TimeoutError:
            pass
    elapsed = time.monotonic() - t0
    delivered = counter.delivered - base
    print(
        json.dumps(
            {
                "deliveries": delivered,
                "events": published,
                "expected": published * conns,
                "seconds": elapsed,
                "deliveries_per_s": delivered / elapsed,
                "client_cpu": (cpu() - cpu0) / elapsed,
            }
        ),
        flush=True,
    )
    for task in tasks:
        task.cancel()


if __name__ == "__main__":
    try:
        import uvloop  # the client should not be the bottleneck

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
