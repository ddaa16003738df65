"""A chat room on pagi.tools channels: a WebSocket per member, SSE feeds, one or many processes.

Run it on one process (memory backend)::

    uv run pagi-server examples/chat/app.py

or on several processes that share Redis (any of them may serve any client)::

    CHAT_REDIS_URL=redis://127.0.0.1:6379/0 uv run pagi-server examples/chat/app.py --workers 2
    uv run python examples/chat/app.py --redis redis://127.0.0.1:6379/0 --port 5001

and open http://127.0.0.1:5000/?name=alice and ?name=bob in two windows.

* ``GET /`` serves ``index.html``.
* ``/ws?name=...`` (``websocket``): every text message goes to the room as
  ``name: text``; joins and leaves are announced.
* ``/events`` (``sse``): every line said in the room, with ids; a client
  that reconnects with ``Last-Event-ID`` gets what it missed (from any
  process: with Redis the history is a capped Redis stream).
* ``/presence`` (``sse``): a ``presence`` event with the names online in
  every process whenever it changes; keepalive comment every 15 s.
* ``POST /say?name=...``: say the body in the room (for scripts and tests).
* ``GET /online``: ``{"names": [...], "subscribers": n}``, where ``n``
  counts room subscribers (WebSockets and ``/events`` streams) in every process.

The room is the channel ``chat:room``. A member that cannot keep up (100
lines behind) is closed with 1008, and the publisher never waits for it.
Names online travel on ``chat:roster``: each process publishes its own
list when it changes and every 10 s, and forgets a silent process after 30 s.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from pagi.tools import (
    SSE,
    HTMLResponse,
    JSONResponse,
    Lifespan,
    PlainTextResponse,
    Request,
    Router,
    WebSocket,
)
from pagi.tools.apps import SSEPubSub
from pagi.tools.channels import ChannelError, Channels, RedisBackend, SubscriberTooSlow

PAGE = Path(__file__).with_name("index.html").read_text()
ROOM = "chat:room"
ROSTER = "chat:roster"
REFRESH = 10.0  # seconds between roster broadcasts; a process silent for 3x is forgotten


def make_channels(redis_url: str | None) -> Channels:
    channels = Channels(RedisBackend(redis_url) if redis_url else None)
    channels.configure(ROOM, queue_size=100, overflow="disconnect", history=100)
    return channels


def clean_name(raw: str | None) -> str:
    return re.sub(r"[^\w .\-]", "", raw or "").strip()[:32] or "anonymous"


class Roster:
    """Who is online in every process: local members plus the other processes' last lists."""

    def __init__(self, channels: Channels) -> None:
        self.channels = channels
        self.token = secrets.token_hex(6)
        self.local: dict[int, str] = {}
        self.remote: dict[str, tuple[list[str], float]] = {}
        self._changed = anyio.Event()

    def names(self) -> list[str]:
        now = time.monotonic()
        names = list(self.local.values())
        for others, seen in self.remote.values():
            if now - seen < 3 * REFRESH:
                names += others
        return sorted(names)

    async def wait_change(self) -> None:
        await self._changed.wait()

    def _signal(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def announce(self, ask: bool = False) -> None:
        names = sorted(self.local.values())
        await self.channels.publish(ROSTER, {"from": self.token, "names": names, "ask": ask})

    async def join(self, key: int, name: str) -> None:
        self.local[key] = name
        self._signal()
        await self.announce()

    async def leave(self, key: int) -> None:
        if self.local.pop(key, None) is not None:
            self._signal()
            await self.announce()

    async def run(self) -> None:
        """Listen to the other processes' lists and re-announce ours every REFRESH seconds."""
        async with self.channels.subscribe(ROSTER) as events, anyio.create_task_group() as tg:

            async def refresh() -> None:
                await self.announce(ask=True)  # a new process asks the others to speak up
                while True:
                    await anyio.sleep(REFRESH)
                    await self.announce()
                    self._signal()  # expiries show up too

            tg.start_soon(refresh)
            async for event in events:
                sender = event.data.get("from")
                if sender == self.token:
                    continue
                self.remote[sender] = (list(event.data.get("names", [])), time.monotonic())
                self._signal()
                if event.data.get("ask"):
                    await self.announce()


async def not_found(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "sse":  # 204 stops an EventSource from reconnecting
        await SSE(scope, receive, send).decline(status=204)
    elif scope["type"] == "websocket":
        await WebSocket(scope, receive, send).deny(status=403)
    else:
        await PlainTextResponse("not found\n", 404)(scope, receive, send)


router = Router(not_found=not_found)


def hub(connection: Request | SSE | WebSocket) -> tuple[Channels, Roster]:
    return connection.state["channels"], connection.state["roster"]


@router.get("/")
async def page(request: Request) -> Any:
    return HTMLResponse(PAGE, headers={"cache-control": "no-cache"})


@router.get("/online")
async def online(request: Request) -> Any:
    channels, roster = hub(request)
    return JSONResponse({"names": roster.names(), "subscribers": await channels.presence(ROOM)})


@router.post("/say")
async def say(request: Request) -> Any:
    channels, _ = hub(request)
    text = (await request.body()).decode(errors="replace").strip()[:500]
    if text:
        name = clean_name(request.query_params.get("name"))
        await channels.publish(ROOM, f"{name}: {text}")
    return JSONResponse({"ok": True})


@router.websocket("/ws")
async def member(ws: WebSocket) -> None:
    channels, roster = hub(ws)
    name = clean_name(ws.query_params.get("name"))
    await ws.accept()
    key = id(ws)
    transport = ws.scope.get("pagi.transport")
    async with channels.subscribe(ROOM, transport=transport) as events:
        await roster.join(key, name)
        try:
            await channels.publish(ROOM, f"* {name} joined")
            async with anyio.create_task_group() as tg:

                async def deliver() -> None:
                    try:
                        async for event in events:
                            await ws.send_text(event.text)
                    except SubscriberTooSlow:
                        await ws.close(1008, "too slow")
                    tg.cancel_scope.cancel()

                tg.start_soon(deliver)
                async for text in ws.iter_text():
                    if text.strip():
                        await channels.publish(ROOM, f"{name}: {text.strip()[:500]}")
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await roster.leave(key)
                    await channels.publish(ROOM, f"* {name} left")
                except ChannelError:
                    pass  # Redis is gone: nobody to tell


@router.sse("/events")
async def events(sse: SSE) -> None:
    channels, _ = hub(sse)
    await SSEPubSub(channels, ROOM, history=100).stream(sse)


@router.sse("/presence")
async def presence(sse: SSE) -> None:
    _, roster = hub(sse)
    await sse.keepalive(15)

    async def feed() -> None:
        last = None
        while True:
            names = roster.names()
            if names != last:
                await sse.send(names, event="presence")
                last = names
            with anyio.move_on_after(REFRESH):
                await roster.wait_change()

    await sse.run_until_disconnect(feed)


@asynccontextmanager
async def chat_lifespan(state: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    channels = make_channels(os.environ.get("CHAT_REDIS_URL") or None)
    roster = Roster(channels)
    async with channels, anyio.create_task_group() as tg:
        tg.start_soon(roster.run)
        yield {"channels": channels, "roster": roster}
        tg.cancel_scope.cancel()


app = Lifespan(router, context=[chat_lifespan])


def main(argv: list[str]) -> None:
    """``python app.py [--redis URL] [pagi-server options]``: serve this app."""
    from pagi.server.cli import main as serve

    args = list(argv)
    if "--redis" in args:
        at = args.index("--redis")
        os.environ["CHAT_REDIS_URL"] = args[at + 1]
        del args[at : at + 2]
    serve([__file__, *args])


if __name__ == "__main__":
    main(sys.argv[1:])
