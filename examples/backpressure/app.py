"""Backpressure: a fast producer, a slow reader, and ``pagi.transport`` watermarks on a page.

* ``GET /`` serves the page (``index.html``).
* ``GET /produce?chunk=65536`` streams chunks of ``chunk`` bytes (1 KiB to
  1 MiB) as fast as ``send`` lets it, for as long as the client stays. It
  registers ``on_high_water`` and ``on_drain`` on ``scope["pagi.transport"]``
  and records each crossing with the buffered amount at that moment.
* ``/monitor`` (SSE): every 100 ms a ``stats`` event (is a producer
  running, bytes sent, ``buffered_amount()``, ``high_water_mark()``,
  ``low_water_mark()``), and a ``water`` event for each crossing.

When the reader stops reading, the socket buffers fill, the server's
outbound buffer reaches the high mark and the producer's ``send`` waits;
when the reader reads again the buffer drains below the low mark and
``send`` returns. Memory stays bounded however fast the producer is. The
marks are the server's ``--write-high-watermark`` / ``--write-low-watermark``
(64 KiB / 16 KiB by default).

A server that cannot measure its buffer leaves ``pagi.transport`` out; the
producer then still works, and the monitor says so (R-FLOW-3).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio
import anyio.lowlevel

PAGE = Path(__file__).with_name("index.html").read_bytes()


class Monitor:
    """What the one running producer is doing, read by every /monitor stream."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.active = False
        self.sent = 0
        self.producers = 0
        self.crossings: list[dict[str, Any]] = []  # every water event, in order

    def crossed(self, kind: str) -> None:
        buffered = self.transport.buffered_amount() if self.transport else 0
        self.crossings.append(
            {"kind": kind, "buffered": buffered, "sent": self.sent, "at": time.time()}
        )

    def stats(self) -> dict[str, Any]:
        transport = self.transport
        return {
            "active": self.active,
            "producers": self.producers,
            "sent": self.sent,
            "transport": transport is not None,
            "buffered": transport.buffered_amount() if transport else 0,
            "high": transport.high_water_mark() if transport else None,
            "low": transport.low_water_mark() if transport else None,
        }


MONITOR = Monitor()


async def respond(
    send: Any, status: int, body: bytes, content_type: bytes, prefix: str = ""
) -> None:
    """A whole response; ``prefix="sse."`` declines an SSE request with it."""
    await send(
        {
            "type": prefix + "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": prefix + "http.response.body", "body": body})


async def produce(scope: dict[str, Any], send: Any) -> None:
    query = parse_qs(scope["query_string"].decode("latin-1"))
    try:
        chunk_size = int(query.get("chunk", ["65536"])[0])
        if not 1024 <= chunk_size <= 1024 * 1024:
            raise ValueError
    except ValueError:
        message = b"chunk must be a whole number of bytes from 1024 to 1048576\n"
        await respond(send, 400, message, b"text/plain; charset=utf-8")
        return
    if MONITOR.active:
        await respond(send, 409, b"a producer is already running\n", b"text/plain; charset=utf-8")
        return

    connection = scope["pagi.connection"]
    transport = scope.get("pagi.transport")  # may be absent: R-FLOW-3
    MONITOR.transport, MONITOR.active, MONITOR.sent = transport, True, 0
    MONITOR.producers += 1
    MONITOR.crossings.clear()
    if transport is not None:
        transport.on_high_water(lambda: MONITOR.crossed("high"))
        transport.on_drain(lambda: MONITOR.crossed("drain"))
    chunk = b"x" * chunk_size
    try:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/octet-stream"),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        while connection.is_connected():
            # Waits here while the buffer is at the high mark, until it drains.
            await send({"type": "http.response.body", "body": chunk, "more": True})
            MONITOR.sent += chunk_size
            await anyio.lowlevel.checkpoint()  # let the monitor streams run between chunks
    finally:
        MONITOR.active = False
        MONITOR.transport = None


async def monitor(send: Any, receive: Any) -> None:
    await send({"type": "sse.start", "status": 200})
    generation, seen = MONITOR.producers, 0
    async with anyio.create_task_group() as group:

        async def until_disconnect() -> None:
            while (await receive())["type"] != "sse.disconnect":
                pass
            group.cancel_scope.cancel()

        group.start_soon(until_disconnect)
        while True:
            if generation != MONITOR.producers:  # a new producer started over
                generation, seen = MONITOR.producers, 0
            for crossing in MONITOR.crossings[seen:]:
                await send({"type": "sse.send", "event": "water", "data": json.dumps(crossing)})
            seen = len(MONITOR.crossings)
            await send({"type": "sse.send", "event": "stats", "data": json.dumps(MONITOR.stats())})
            await anyio.sleep(0.1)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":  # nothing to set up: acknowledge both steps
        while True:
            step = (await receive())["type"]
            await send({"type": step + ".complete"})
            if step == "lifespan.shutdown":
                return
    path = scope["path"]
    if scope["type"] == "sse":
        if path == "/monitor":
            await monitor(send, receive)
        else:
            # Decline: a plain 404 instead of a stream.
            await respond(send, 404, b"no such stream; try /monitor\n", b"text/plain", "sse.")
    elif scope["type"] == "http" and path == "/":
        await respond(send, 200, PAGE, b"text/html; charset=utf-8")
    elif scope["type"] == "http" and path == "/produce":
        await produce(scope, send)
    elif scope["type"] == "http":
        await respond(send, 404, b"not found; try /, /produce or /monitor\n", b"text/plain")
    else:
        raise RuntimeError(f"unsupported scope type {scope['type']!r}")
