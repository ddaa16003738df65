"""``WebSocketChat``: rooms over a :class:`~pagi.tools.channels.Channels`, JSON in and out.

Each room is the channel ``<prefix><room>``, so with the Redis backend
members connected to different processes share rooms, and presence
counts them all.

Client to server (one JSON object per text message):

============================================  ===================================
``{"type": "message", "text": ..., "room"?}``  say ``text`` in ``room`` (default: the last joined)
``{"type": "join", "room": ...}``              join a room (created on first join)
``{"type": "leave", "room": ...}``             leave a room
``{"type": "nick", "nick": ...}``              change nick (sanitised; told to your rooms)
``{"type": "list"}``                           your rooms with their member counts
============================================  ===================================

Server to client: ``welcome`` (your nick and room), ``message``
(``room``, ``nick``, ``text``), ``joined`` / ``left`` / ``nick`` notices,
``list`` (``rooms``: name -> members) and ``error`` (``error`` says why).
Nicks keep letters, digits, ``_``, ``-`` and ``.``, at most 20 characters;
an empty result becomes ``guest-xxxx``. ``max_rooms`` bounds the rooms this
app instance has open at once.
"""

from __future__ import annotations

import json
import re
import secrets
from contextlib import AsyncExitStack
from typing import Any

import anyio

from pagi.spec import Receive, Scope, Send
from pagi.tools.apps.sse_pubsub import serve_lifespan
from pagi.tools.channels import Channels, Event, SubscriberTooSlow
from pagi.tools.response import PlainTextResponse
from pagi.tools.websocket import WebSocket

__all__ = ["WebSocketChat", "sanitize_nick"]

_NICK_DROP = re.compile(r"[^\w.\-]+")
_ROOM = re.compile(r"^[\w.\-]{1,40}$")
MAX_TEXT = 2000


def sanitize_nick(raw: object) -> str:
    """Letters, digits, ``_-.`` only, at most 20 characters; ``guest-xxxx`` when nothing is left."""
    nick = _NICK_DROP.sub("", str(raw or ""))[:20]
    return nick or f"guest-{secrets.token_hex(2)}"


class WebSocketChat:
    """``WebSocketChat(channels, default_room="lobby", max_rooms=100)``."""

    def __init__(
        self,
        channels: Channels,
        default_room: str = "lobby",
        max_rooms: int = 100,
        *,
        prefix: str = "chat:",
    ) -> None:
        if not _ROOM.match(default_room):
            raise ValueError(f"invalid default_room {default_room!r}")
        self.channels = channels
        self.default_room = default_room
        self.max_rooms = max_rooms
        self.prefix = prefix
        #: Open rooms in this instance -> local members (bounded by ``max_rooms``).
        self.rooms: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(self.channels, receive, send)
            return
        if scope["type"] != "websocket":
            await PlainTextResponse("WebSocket endpoint\n", 426)(scope, receive, send)
            return
        ws = WebSocket(scope, receive, send)
        await ws.accept()
        await _Session(self, ws).run()


class _Session:
    """One member's connection: its nick, its rooms and their forwarding tasks."""

    def __init__(self, chat: WebSocketChat, ws: WebSocket) -> None:
        self.chat = chat
        self.ws = ws
        self.nick = sanitize_nick(ws.query_params.get("nick"))
        self.rooms: dict[str, anyio.CancelScope] = {}
        self.current: str | None = None
        self.send_lock = anyio.Lock()
        self.too_slow = False

    async def send(self, message: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.ws.send_text(json.dumps(message, ensure_ascii=False))

    async def run(self) -> None:
        async with anyio.create_task_group() as group:
            self.group = group
            await self.join(self.chat.default_room, welcome=True)
            async for raw in self.ws:
                if self.too_slow:
                    break
                await self.handle(raw)
            group.cancel_scope.cancel()
        for room in list(self.rooms):
            await self.leave(room, notify=True)
        if self.too_slow:
            await self.ws.close(1008, "too slow")

    async def handle(self, raw: str | bytes) -> None:
        try:
            command = json.loads(raw)
            if not isinstance(command, dict):
                raise ValueError("not an object")
        except ValueError:
            await self.send({"type": "error", "error": "send JSON objects"})
            return
        kind = command.get("type")
        if kind == "message":
            room = str(command.get("room") or self.current or "")
            text = str(command.get("text") or "").strip()[:MAX_TEXT]
            if room not in self.rooms:
                await self.send({"type": "error", "error": f"not in room {room!r}"})
            elif text:
                await self.publish(room, {"type": "message", "nick": self.nick, "text": text})
        elif kind == "join":
            await self.join(str(command.get("room") or ""))
        elif kind == "leave":
            room = str(command.get("room") or "")
            if room in self.rooms:
                await self.leave(room, notify=True)
            else:
                await self.send({"type": "error", "error": f"not in room {room!r}"})
        elif kind == "nick":
            old, self.nick = self.nick, sanitize_nick(command.get("nick"))
            for room in self.rooms:
                await self.publish(room, {"type": "nick", "old": old, "new": self.nick})
        elif kind == "list":
            counts = {r: await self.chat.channels.presence(self.channel(r)) for r in self.rooms}
            await self.send({"type": "list", "rooms": counts})
        else:
            await self.send({"type": "error", "error": f"unknown type {kind!r}"})

    def channel(self, room: str) -> str:
        return self.chat.prefix + room

    async def publish(self, room: str, message: dict[str, Any]) -> None:
        await self.chat.channels.publish(self.channel(room), {**message, "room": room})

    async def join(self, room: str, welcome: bool = False) -> None:
        if not _ROOM.match(room):
            await self.send({"type": "error", "error": "room names are 1-40 of [A-Za-z0-9_.-]"})
            return
        if room in self.rooms:
            self.current = room
            return
        rooms = self.chat.rooms
        if room not in rooms and len(rooms) >= self.chat.max_rooms:
            await self.send(
                {"type": "error", "error": f"too many rooms (max {self.chat.max_rooms})"}
            )
            return
        rooms[room] = rooms.get(room, 0) + 1
        ready = anyio.Event()
        scope = anyio.CancelScope()
        self.rooms[room] = scope
        self.current = room
        self.group.start_soon(self.forward, room, scope, ready)
        await ready.wait()  # subscribed: our own join notice reaches us
        if welcome:
            await self.send({"type": "welcome", "nick": self.nick, "room": room})
        await self.publish(room, {"type": "joined", "nick": self.nick})

    async def forward(self, room: str, scope: anyio.CancelScope, ready: anyio.Event) -> None:
        with scope:
            async with AsyncExitStack() as stack:
                transport = self.ws.scope.get("pagi.transport")
                events = await stack.enter_async_context(
                    self.chat.channels.subscribe(self.channel(room), transport=transport)
                )
                ready.set()
                try:
                    async for event in events:
                        await self.deliver(event)
                except SubscriberTooSlow:
                    self.too_slow = True
                    self.group.cancel_scope.cancel()

    async def deliver(self, event: Event) -> None:
        if isinstance(event.data, dict):
            await self.send(event.data)

    async def leave(self, room: str, notify: bool) -> None:
        scope = self.rooms.pop(room)
        scope.cancel()
        if notify:
            with anyio.CancelScope(shield=True):
                try:
                    await self.publish(room, {"type": "left", "nick": self.nick})
                except Exception:  # the backend is gone; nobody to tell
                    pass
        left = self.chat.rooms.get(room, 1) - 1
        if left > 0:
            self.chat.rooms[room] = left
        else:
            self.chat.rooms.pop(room, None)
        if self.current == room:
            self.current = next(reversed(self.rooms), None) if self.rooms else None
