"""A PAGI application on an ASGI server (uvicorn, hypercorn, granian, daphne).

Theory of operation
-------------------
:func:`pagi.tools.asgi.to_asgi` returns a :class:`PAGIOnASGI`. Per ASGI
scope it builds the PAGI scope, runs the PAGI app and translates both
ways. Every event the PAGI app sends goes through ``pagi.spec``'s
:class:`~pagi.spec.SendMachine` first, so it gets the same errors as on
pagi-server.

* **http**: a request whose ``Accept`` names ``text/event-stream`` (non-zero
  q, like pagi-server's rule) becomes an ``sse`` scope; the rest stay
  ``http``. ``more`` <-> ``more_body``; a ``file`` body becomes
  ``http.response.pathsend`` when the server offers it (whole file only),
  otherwise the file (or ``fh``) is read in chunks off the event loop and
  streamed; trailers pass when the server offers
  ``http.response.trailers`` and are dropped otherwise.
* **pagi.connection** is emulated: a reader task pulls the request from the
  ASGI ``receive`` into a one-slot queue the app's ``receive`` reads, and
  keeps reading once the body is over, so ``http.disconnect`` flips
  ``is_connected()`` and runs the callbacks without the app consuming
  events. While the app leaves a body chunk unread the reader waits, so a
  disconnect in the middle of an unread request body is seen only when the
  app reads on.
* **pagi.transport** is absent: ASGI servers do not expose their write
  buffer. ``websocket.keepalive`` is accepted and ignored (ASGI has no ping
  event; the servers ping on their own).
* **sse**: ``sse.start`` is a ``text/event-stream`` response head,
  ``sse.send``/``sse.comment`` are encoded onto the streamed body,
  ``sse.keepalive`` runs a task that writes comments, ``sse.close`` ends the
  body, and the decline events are a plain response.
* **websocket**: same event names. The PAGI app is always offered
  ``websocket.http.response``; when the ASGI server lacks it a denial
  becomes ``websocket.close`` before accept, which ASGI servers answer 403.
* **lifespan**: same event names; ``state`` is the server's dict.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, Generator, MutableMapping
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from pagi.spec import (
    CORE_VERSION,
    EXT_WEBSOCKET_HTTP_RESPONSE,
    WWW_SPEC_VERSION,
    App,
    DisconnectReason,
    Event,
    SendMachine,
)

__all__ = ["PAGIOnASGI"]

ASGIScope = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[MutableMapping[str, Any]]]
ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]

FILE_CHUNK = 256 * 1024
_EVENT_STREAM_RANGE = re.compile(rb"^\s*text/event-stream\s*(;.*)?$", re.IGNORECASE)
_Q_ZERO = re.compile(rb";\s*q\s*=\s*0(\.0*)?\s*(;|$)", re.IGNORECASE)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_ASGI_ONLY_EXTENSIONS = ("http.response.pathsend", "http.response.zerocopysend")


def wants_event_stream(headers: Any) -> bool:
    """True when an ``accept`` header names ``text/event-stream`` with a non-zero q."""
    for name, value in headers:
        if bytes(name).lower() != b"accept" or b"event-stream" not in bytes(value).lower():
            continue
        for media_range in bytes(value).split(b","):
            if _EVENT_STREAM_RANGE.match(media_range) and not _Q_ZERO.search(media_range):
                return True
    return False


def encode_event(event: Event) -> bytes:
    """``sse.send`` as text/event-stream bytes."""
    lines = [f"{name}: {event[name]}" for name in ("event", "id") if event.get(name) is not None]
    if event.get("retry") is not None:
        lines.append(f"retry: {event['retry']}")
    lines.extend("data: " + line for line in _LINE_BREAK.split(event["data"]))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def encode_comment(comment: str) -> bytes:
    """A comment as text/event-stream bytes: ``:`` before every line."""
    return "".join(f": {line}\n" for line in _LINE_BREAK.split(comment)).encode("utf-8") + b"\n"


class _DisconnectAwaitable:
    def __init__(self, connection: EmulatedConnection) -> None:
        self.connection = connection

    def __await__(self) -> Generator[Any, None, str]:
        return self._wait().__await__()

    async def _wait(self) -> str:
        await self.connection.gone.wait()
        return self.connection.reason or DisconnectReason.CLIENT_CLOSED


class EmulatedConnection:
    """``pagi.connection`` built from an ASGI ``receive`` (see the module docstring)."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.started = False
        self.complete = False
        self.gone = anyio.Event()
        self._on_disconnect: list[Callable[[str], object]] = []
        self._on_complete: list[Callable[[], object]] = []

    def is_connected(self) -> bool:
        """True until the request ends."""
        return self.reason is None and not self.complete

    def disconnect_reason(self) -> str | None:
        """The reason of an abnormal end, else ``None``."""
        return self.reason

    def on_disconnect(self, callback: Callable[[str], object]) -> None:
        """Call ``callback(reason)`` on an abnormal end (at once if it happened)."""
        if self.reason is not None:
            callback(self.reason)
        elif not self.complete:
            self._on_disconnect.append(callback)

    def on_complete(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once the response was fully handed to the server."""
        if self.complete:
            callback()
        elif self.reason is None:
            self._on_complete.append(callback)

    def response_started(self) -> bool:
        """True once ``http.response.start`` was passed on."""
        return self.started

    def response_complete(self) -> bool | None:
        """True once the final body was passed on."""
        return self.complete

    def disconnect_future(self) -> Awaitable[str] | None:
        """Resolves with the reason on an abnormal end; never on success."""
        return _DisconnectAwaitable(self)

    def mark_complete(self) -> None:
        if self.complete or self.reason is not None:
            return
        self.complete = True
        callbacks, self._on_complete, self._on_disconnect = self._on_complete, [], []
        for callback in callbacks:
            callback()

    def mark_disconnected(self, reason: str = DisconnectReason.CLIENT_CLOSED) -> None:
        if self.reason is not None or self.complete:
            return
        self.reason = reason
        self.gone.set()
        callbacks, self._on_disconnect, self._on_complete = self._on_disconnect, [], []
        for callback in callbacks:
            callback(reason)


class PAGIOnASGI:
    """An ASGI 3 application running a PAGI application."""

    __slots__ = ("app",)

    def __init__(self, pagi_app: App) -> None:
        self.app = pagi_app

    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        kind = scope["type"]
        if kind == "http":
            if wants_event_stream(scope.get("headers") or ()):
                await _SSEExchange(self.app, scope, receive, send).run()
            else:
                await _HTTPExchange(self.app, scope, receive, send).run()
        elif kind == "websocket":
            await _run_websocket(self.app, scope, receive, send)
        elif kind == "lifespan":
            pagi_scope = {
                "type": "lifespan",
                "pagi": {"version": CORE_VERSION, "spec_version": "0.3", "is_worker": False},
                "state": scope["state"] if isinstance(scope.get("state"), dict) else {},
            }
            await self.app(pagi_scope, receive, send)  # type: ignore[arg-type]
        else:
            raise RuntimeError(f"to_asgi cannot run a {kind!r} scope")


def _pagi_scope(scope: ASGIScope, kind: str) -> dict[str, Any]:
    pagi_scope = {k: v for k, v in scope.items() if k != "asgi"}
    pagi_scope["type"] = kind
    pagi_scope["pagi"] = {"version": CORE_VERSION, "spec_version": WWW_SPEC_VERSION}
    pagi_scope["headers"] = [(bytes(n), bytes(v)) for n, v in scope.get("headers") or ()]
    if pagi_scope.get("raw_path") is None:
        pagi_scope.pop("raw_path", None)
    for key in ("client", "server"):
        if scope.get(key) is not None:
            pagi_scope[key] = tuple(scope[key])
        else:
            pagi_scope.pop(key, None)
    extensions = dict(scope.get("extensions") or ())
    for name in _ASGI_ONLY_EXTENSIONS:
        extensions.pop(name, None)
    extensions.pop("http.response.trailers", None)
    pagi_scope["extensions"] = extensions
    return pagi_scope


async def _file_chunks(event: Event) -> Any:
    """Yield a ``file``/``fh`` body's bytes, read in a worker thread."""
    offset = int(event.get("offset") or 0)
    length = event.get("length")
    remaining = None if length is None else int(length)
    handle: Any = event.get("fh")
    owned = handle is None
    if owned:
        handle = await anyio.to_thread.run_sync(open, os.fspath(event["file"]), "rb")
    try:
        if event.get("offset") is not None:  # absent: the handle's position
            await anyio.to_thread.run_sync(handle.seek, offset)
        while remaining is None or remaining > 0:
            size = FILE_CHUNK if remaining is None else min(FILE_CHUNK, remaining)
            chunk = await anyio.to_thread.run_sync(handle.read, size)
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk
    finally:
        if owned:
            await anyio.to_thread.run_sync(handle.close)


class _RequestBody:
    """The reader task behind ``receive`` and the emulated ``pagi.connection``."""

    def __init__(self, receive: ASGIReceive, connection: EmulatedConnection | None) -> None:
        self.asgi_receive = receive
        self.connection = connection
        self.disconnected = False
        chans: tuple[MemoryObjectSendStream[Event], MemoryObjectReceiveStream[Event]]
        chans = anyio.create_memory_object_stream(1)
        self.put, self.get = chans

    async def read(self) -> None:
        async with self.put:
            while True:
                event = await self.asgi_receive()
                if event["type"] != "http.request":
                    break
                await self.put.send(
                    {
                        "type": "http.request",
                        "body": event.get("body") or b"",
                        "more": bool(event.get("more_body")),
                    }
                )
        self.disconnected = True
        if self.connection is not None:
            self.connection.mark_disconnected()

    async def next(self) -> Event | None:
        """The next request event, or ``None`` once the client is gone."""
        try:
            return await self.get.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return None

    def close(self) -> None:
        """Close both ends of the queue (the exchange is over)."""
        self.put.close()
        self.get.close()


class _HTTPExchange:
    def __init__(self, app: App, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        self.app = app
        self.asgi_send = send
        server_ext = scope.get("extensions") or {}
        self.pathsend = "http.response.pathsend" in server_ext
        self.trailers_ok = "http.response.trailers" in server_ext
        self.connection = EmulatedConnection()
        self.scope = _pagi_scope(scope, "http")
        self.scope["pagi.connection"] = self.connection
        self.machine = SendMachine("http", self.scope["extensions"])
        self.body = _RequestBody(receive, self.connection)
        self.send_trailers = False

    async def run(self) -> None:
        error: Exception | None = None
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self.body.read)
                try:
                    await self.app(self.scope, self.receive, self.send)
                except Exception as exc:  # re-raised as itself, not in an exception group
                    error = exc
                group.cancel_scope.cancel()
        finally:
            self.body.close()
        if error is not None:
            raise error

    async def receive(self) -> Event:
        event = await self.body.next()
        return event if event is not None else {"type": "http.disconnect"}

    async def _out(self, event: MutableMapping[str, Any]) -> None:
        if self.body.disconnected:
            return  # a send after disconnect is a no-op (R-CORE-53)
        try:
            await self.asgi_send(event)
        except OSError:
            self.body.disconnected = True
            self.connection.mark_disconnected(DisconnectReason.WRITE_ERROR)

    async def send(self, event: Event) -> None:
        if not self.machine.send(event):
            return
        kind = event["type"]
        if kind == "http.response.body":
            more = bool(event.get("more"))
            if event.get("file") is not None or event.get("fh") is not None:
                await self._file(event)
                more = False
            else:
                body = event.get("body") or b""
                await self._out({"type": kind, "body": bytes(body), "more_body": more})
            if not more and not self.send_trailers:
                self.connection.mark_complete()
        elif kind == "http.response.start":
            self.send_trailers = bool(event.get("trailers")) and self.trailers_ok
            start = {
                "type": kind,
                "status": int(event["status"]),
                "headers": list(event.get("headers") or ()),
            }
            if self.send_trailers:
                start["trailers"] = True
            self.connection.started = True
            await self._out(start)
        elif kind == "http.response.trailers":
            if self.send_trailers:
                headers = list(event.get("headers") or ())
                await self._out({"type": kind, "headers": headers, "more_trailers": False})
            self.connection.mark_complete()
        # http.fullflush is not offered: the machine refuses it.

    async def _file(self, event: Event) -> None:
        whole = event.get("fh") is None and not event.get("offset") and event.get("length") is None
        if self.pathsend and whole:
            # ASGI wants an absolute path; abspath only reads the cwd, no disk I/O.
            path = os.path.abspath(os.fspath(event["file"]))  # noqa: ASYNC240
            await self._out({"type": "http.response.pathsend", "path": path})
            return
        async for chunk in _file_chunks(event):
            await self._out({"type": "http.response.body", "body": chunk, "more_body": True})
            if self.body.disconnected:
                return
        await self._out({"type": "http.response.body", "body": b"", "more_body": False})


class _SSEExchange:
    def __init__(self, app: App, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        self.app = app
        self.asgi_send = send
        self.scope = _pagi_scope(scope, "sse")
        self.machine = SendMachine("sse", self.scope["extensions"])
        self.body = _RequestBody(receive, None)
        self.lock = anyio.Lock()
        self.ended: str | None = None
        self.keepalive_interval = 0.0
        self.keepalive_comment = b": keepalive\n\n"
        self.keepalive_changed = anyio.Event()
        self.group: anyio.abc.TaskGroup | None = None

    async def run(self) -> None:
        error: Exception | None = None
        try:
            async with anyio.create_task_group() as group:
                self.group = group
                group.start_soon(self.body.read)
                try:
                    await self.app(self.scope, self.receive, self.send)
                    if self.machine.state == "streaming":
                        await self._end("x-closed-by-app")
                except Exception as exc:  # re-raised as itself, not in an exception group
                    error = exc
                group.cancel_scope.cancel()
        finally:
            self.body.close()
        if error is not None:
            raise error

    async def receive(self) -> Event:
        if self.ended is None:
            event = await self.body.next()
            if event is not None:
                return {"type": "sse.request", "body": event["body"], "more": event["more"]}
        return {"type": "sse.disconnect", "reason": self.ended or DisconnectReason.CLIENT_CLOSED}

    async def _out(self, event: MutableMapping[str, Any]) -> None:
        if self.body.disconnected or self.ended is not None:
            return
        async with self.lock:  # the keepalive task writes too
            try:
                await self.asgi_send(event)
            except OSError:
                self.body.disconnected = True

    async def _end(self, reason: str) -> None:
        await self._out({"type": "http.response.body", "body": b"", "more_body": False})
        self.ended = reason

    async def send(self, event: Event) -> None:
        if not self.machine.send(event):
            return
        kind = event["type"]
        if kind == "sse.send":
            await self._chunk(encode_event(event))
        elif kind == "sse.comment":
            await self._chunk(encode_comment(event.get("comment") or ""))
        elif kind == "sse.start":
            headers = [(bytes(n).lower(), bytes(v)) for n, v in event.get("headers") or ()]
            names = {n for n, _ in headers}
            if b"content-type" not in names:
                headers.append((b"content-type", b"text/event-stream"))
            if b"cache-control" not in names:
                headers.append((b"cache-control", b"no-cache"))
            status = int(event.get("status") or 200)
            await self._out({"type": "http.response.start", "status": status, "headers": headers})
            # An empty chunk makes the servers write the head now, so EventSource opens.
            await self._chunk(b"")
        elif kind == "sse.keepalive":
            self._keepalive(float(event["interval"]), event.get("comment"))
        elif kind == "sse.close":
            await self._end(event.get("reason") or "x-closed-by-app")
        elif kind == "sse.http.response.start":
            headers = list(event.get("headers") or ())
            status = int(event["status"])
            await self._out({"type": "http.response.start", "status": status, "headers": headers})
        else:  # sse.http.response.body
            more = bool(event.get("more"))
            await self._out({"type": "http.response.body", "body": event.get("body") or b"",
                             "more_body": more})  # fmt: skip
            if not more:
                self.ended = "x-declined"

    async def _chunk(self, data: bytes) -> None:
        await self._out({"type": "http.response.body", "body": data, "more_body": True})

    def _keepalive(self, interval: float, comment: str | None) -> None:
        first = self.keepalive_interval == 0 and interval > 0
        self.keepalive_interval = interval
        if comment is not None:
            self.keepalive_comment = encode_comment(comment)
        self.keepalive_changed.set()
        if first and self.group is not None:
            self.group.start_soon(self._keepalive_loop)

    async def _keepalive_loop(self) -> None:
        while self.keepalive_interval > 0 and self.ended is None:
            self.keepalive_changed = anyio.Event()
            with anyio.move_on_after(self.keepalive_interval):
                await self.keepalive_changed.wait()
                continue  # a new setting: start the wait again
            await self._chunk(self.keepalive_comment)


async def _run_websocket(app: App, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
    server_denial = EXT_WEBSOCKET_HTTP_RESPONSE in (scope.get("extensions") or {})
    pagi_scope = _pagi_scope(scope, "websocket")
    pagi_scope["extensions"][EXT_WEBSOCKET_HTTP_RESPONSE] = {}
    machine = SendMachine("websocket", pagi_scope["extensions"])

    async def pagi_receive() -> Event:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            return {
                "type": "websocket.disconnect",
                "code": int(event.get("code") or 1005),
                "reason": event.get("reason") or "",
            }
        return event

    async def pagi_send(event: Event) -> None:
        if not machine.send(event):
            return
        kind = event["type"]
        if kind == "websocket.keepalive":
            return  # ASGI has no ping event; the servers ping on their own
        if kind == "websocket.http.response.start":
            if not server_denial:
                await send({"type": "websocket.close", "code": 1000})  # the server answers 403
                return
            await send(dict(event))
        elif kind == "websocket.http.response.body":
            if server_denial:
                more = bool(event.get("more"))
                await send({"type": kind, "body": event.get("body") or b"", "more_body": more})
        else:
            await send(dict(event))

    await app(pagi_scope, pagi_receive, pagi_send)
