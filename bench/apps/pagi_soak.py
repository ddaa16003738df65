"""The app bench/soak.py drives: every kind of traffic of the mixed soak in one PAGI app.

HTTP:

* ``GET /``: ``ok <pid>`` (keep-alive requests, readiness probe);
* ``POST /upload``: reads the whole body and answers ``<length> <crc32>``;
* ``GET /big?kib=N``: N KiB (default 1024) of a fixed pattern in 64 KiB
  chunks, for slow readers and for clients that leave mid-response.

WebSocket: accepts (with permessage-deflate when the client offers it and the
server is configured for it) and echoes text and binary messages until the
client closes or goes away.

SSE: ``/sse?n=N&ms=M``: ``N`` events (0, the default: until the client goes
away) ``M`` ms apart (default 20), numbered by their ``id``; then the stream
ends.
"""

import os
import zlib
from urllib.parse import parse_qs

import anyio

from pagi.spec import Receive, Scope, Send

CHUNK = bytes(range(256)) * 256  # 64 KiB
TEXT = [(b"content-type", b"text/plain")]


def _query(scope: Scope, name: str, default: int) -> int:
    values = parse_qs(scope.get("query_string", b"").decode()).get(name)
    return int(values[0]) if values else default


async def _http(scope: Scope, receive: Receive, send: Send) -> None:
    path = scope["path"]
    if path == "/upload":
        length = 0
        crc = 0
        while True:
            event = await receive()
            if event["type"] != "http.request":
                return  # the client left mid-body
            body = event.get("body", b"")
            length += len(body)
            crc = zlib.crc32(body, crc)
            if not event.get("more", False):
                break
        answer = f"{length} {crc}".encode()
    elif path == "/big":
        kib = _query(scope, "kib", 1024)
        size = kib * 1024
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*TEXT, (b"content-length", str(size).encode())],
            }
        )
        sent = 0
        while sent < size:
            piece = CHUNK[: min(len(CHUNK), size - sent)]
            sent += len(piece)
            # A send after the client left is a no-op; the loop just ends.
            await send({"type": "http.response.body", "body": piece, "more": sent < size})
        return
    else:
        answer = f"ok {os.getpid()}".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [*TEXT, (b"content-length", str(len(answer)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": answer})


async def _websocket(scope: Scope, receive: Receive, send: Send) -> None:
    event = await receive()
    if event["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        if event["type"] != "websocket.receive":
            return
        if event.get("text") is not None:
            await send({"type": "websocket.send", "text": event["text"]})
        else:
            await send({"type": "websocket.send", "bytes": event["bytes"]})


async def _sse(scope: Scope, receive: Receive, send: Send) -> None:
    count = _query(scope, "n", 0)
    pause = _query(scope, "ms", 20) / 1000
    await send({"type": "sse.start"})
    gone = anyio.Event()

    async def watch() -> None:
        while True:
            event = await receive()
            if event["type"] == "sse.disconnect":
                gone.set()
                return

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        number = 0
        while not gone.is_set() and (count == 0 or number < count):
            number += 1
            await send({"type": "sse.send", "id": str(number), "data": f"event {number}"})
            with anyio.move_on_after(pause):
                await gone.wait()
        tg.cancel_scope.cancel()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    kind = scope["type"]
    if kind == "http":
        await _http(scope, receive, send)
    elif kind == "websocket":
        await _websocket(scope, receive, send)
    elif kind == "sse":
        await _sse(scope, receive, send)
    elif kind == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    else:
        raise RuntimeError(f"unsupported scope type {kind!r}")
