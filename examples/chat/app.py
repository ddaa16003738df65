"""A chat room in raw PAGI: one page, a WebSocket for messages, an SSE feed of who is online.

Run it with ``uv run pagi-server examples/chat/app.py`` and open
http://127.0.0.1:5000/ in two browser windows.

* ``GET /`` serves ``index.html``.
* ``/ws?name=...`` (``websocket`` scope): every text message is broadcast to
  everyone in the room as ``name: text``.
* ``/presence`` (``sse`` scope): a ``presence`` event with the list of names
  whenever someone joins or leaves, and a keepalive comment every 15 s.

No framework: the three scope types are handled by hand so the events stay
visible. A slow reader never holds the room up: each member has a bounded
outbox and is dropped (Close 1008) when it fills.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio
from anyio.streams.memory import MemoryObjectSendStream

PAGE = (Path(__file__).with_name("index.html")).read_bytes()
OUTBOX_SIZE = 100  # messages a member may fall behind before it is dropped


class Room:
    """Members (name -> outbox) and a change signal for presence watchers."""

    def __init__(self) -> None:
        self.members: dict[int, tuple[str, MemoryObjectSendStream[str]]] = {}
        self._changed: anyio.Event | None = None  # made lazily: needs a running loop

    def names(self) -> list[str]:
        return sorted(name for name, _ in self.members.values())

    def join(self, key: int, name: str, outbox: MemoryObjectSendStream[str]) -> None:
        self.members[key] = (name, outbox)
        self._signal()

    def leave(self, key: int) -> None:
        if self.members.pop(key, None) is not None:
            self._signal()

    def broadcast(self, text: str) -> None:
        for key, (_, outbox) in list(self.members.items()):
            try:
                outbox.send_nowait(text)
            except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                outbox.close()  # too slow or gone: its session ends and it leaves
                self.leave(key)

    async def wait_change(self) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()

    def _signal(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None


room = Room()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    kind = scope["type"]
    if kind == "lifespan":
        await lifespan(receive, send)
    elif kind == "websocket" and scope["path"] == "/ws":
        await chat(scope, receive, send)
    elif kind == "sse" and scope["path"] == "/presence":
        await presence(receive, send)
    elif kind == "http" and scope["path"] == "/" and scope["method"] in ("GET", "HEAD"):
        headers = [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": PAGE})
    elif kind == "websocket":
        await receive()
        await send({"type": "websocket.close"})  # 403: unknown WebSocket path
    elif kind == "sse":
        await send({"type": "sse.http.response.start", "status": 204})  # stops EventSource
        await send({"type": "sse.http.response.body"})
    else:
        await send({"type": "http.response.start", "status": 404})
        await send({"type": "http.response.body", "body": b"not found\n"})


async def lifespan(receive: Any, send: Any) -> None:
    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif event["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def chat(scope: dict[str, Any], receive: Any, send: Any) -> None:
    query = parse_qs(scope["query_string"].decode("latin-1"))
    name = (query.get("name") or ["anonymous"])[0].strip()[:32] or "anonymous"
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    outbox, inbox = anyio.create_memory_object_stream[str](OUTBOX_SIZE)
    key = id(outbox)
    room.join(key, name, outbox)
    room.broadcast(f"* {name} joined")

    async def deliver() -> None:
        async with inbox:
            async for text in inbox:
                await send({"type": "websocket.send", "text": text})
        await send({"type": "websocket.close", "code": 1008, "reason": "too slow"})

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(deliver)
            while True:
                event = await receive()
                if event["type"] == "websocket.disconnect":
                    break
                text = (event.get("text") or "").strip()
                if text:
                    room.broadcast(f"{name}: {text[:500]}")
            tg.cancel_scope.cancel()
    finally:
        room.leave(key)
        outbox.close()
        room.broadcast(f"* {name} left")


async def presence(receive: Any, send: Any) -> None:
    await send({"type": "sse.start"})
    await send({"type": "sse.keepalive", "interval": 15})
    gone = anyio.Event()

    async def watch_disconnect() -> None:
        while (await receive())["type"] != "sse.disconnect":
            pass
        gone.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_disconnect)
        while not gone.is_set():
            names = room.names()
            await send({"type": "sse.send", "event": "presence", "data": json.dumps(names)})
            with anyio.move_on_after(60):
                async with anyio.create_task_group() as waiters:

                    async def first(waiter: Any) -> None:
                        await waiter()
                        waiters.cancel_scope.cancel()

                    waiters.start_soon(first, room.wait_change)
                    waiters.start_soon(first, gone.wait)
        tg.cancel_scope.cancel()
