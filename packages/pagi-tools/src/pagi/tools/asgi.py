"""Bridges between PAGI and ASGI, in both directions.

Theory of operation
-------------------
PAGI descends from ASGI, so most of the bridge is renaming:

* :class:`ASGIApp` runs an ASGI 3 (or ASGI 2) application as a PAGI app.
  The ASGI scope is the PAGI scope without its ``pagi*`` keys, with
  ``asgi`` added and ``extensions`` filled in with what the bridge can do
  (``http.response.pathsend``, ``http.response.trailers``, and
  ``websocket.http.response`` and ``tls`` when the PAGI server offers
  them). Events are renamed on the way (``more`` <-> ``more_body``),
  ``http.response.pathsend`` becomes a PAGI ``file`` body (so the server
  can use ``sendfile``) and split trailers are joined into one event.
  An ``sse`` scope is shown to the ASGI app as the ``http`` request it
  is. If the app answers with ``text/event-stream`` the body is parsed
  event by event into ``sse.send``/``sse.comment`` (streamed as it
  comes); any other answer goes out through the SSE decline path, a plain
  HTTP response. Lifespan events have the same names in both interfaces;
  ``state`` is the same dict, so what the app stores during startup
  reaches every request.
* :func:`to_asgi` does the reverse (:mod:`pagi.tools.asgi_host`).

Every event the ASGI app sends is handed to the PAGI ``send``, so an ASGI
app that breaks the rules meets the server's own validation, naming the
(same-named) event; the few ASGI-only events are checked here.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal, cast

from pagi.spec import App, EventError, Receive, Scope, Send

__all__ = ["ASGIApp", "is_asgi2", "to_asgi"]

ASGIScope = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[MutableMapping[str, Any]]]
ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGI3App = Callable[[ASGIScope, ASGIReceive, ASGISend], Awaitable[None]]

ASGI_SPEC_VERSION = "2.4"
_EVENT_STREAM = b"text/event-stream"


def is_asgi2(app: object) -> bool:
    """Guess whether ``app`` uses the ASGI 2 double-callable style.

    ASGI 3 apps are coroutine functions, or objects whose ``__call__`` is
    one. An ASGI 2 app is called with the scope alone and returns an
    object to await with ``(receive, send)``: typically a class, or a plain
    function returning a coroutine function.
    """
    if inspect.iscoroutinefunction(app):
        return False
    if inspect.isclass(app):
        # Calling the class makes an instance: ASGI 3 only if that is awaitable.
        return not hasattr(app, "__await__")
    if inspect.isfunction(app) or inspect.ismethod(app):
        return True
    call = getattr(app, "__call__", None)  # noqa: B004 - the bound method is what is called
    return call is not None and not inspect.iscoroutinefunction(call)


def _asgi2_to_3(app: Any) -> ASGI3App:
    async def asgi3(scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        instance = app(scope)
        await instance(receive, send)

    return asgi3


class ASGIApp:
    """Run an ASGI application as a PAGI application.

    ``asgi_version`` is ``"auto"`` (ASGI 2 is detected from the callable's
    shape), ``"3"`` or ``"2"``. ``pagi-server --interface asgi module:app``
    wraps the loaded app in this class.
    """

    __slots__ = ("app", "asgi_version")

    def __init__(self, asgi_app: Any, *, asgi_version: Literal["auto", "3", "2"] = "auto") -> None:
        if asgi_version not in ("auto", "3", "2"):
            raise ValueError(f"asgi_version must be 'auto', '3' or '2', got {asgi_version!r}")
        two = asgi_version == "2" or (asgi_version == "auto" and is_asgi2(asgi_app))
        self.asgi_version = "2" if two else "3"
        self.app: ASGI3App = _asgi2_to_3(asgi_app) if two else asgi_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.app(self._scope(scope, "http"), _http_receive(receive), _HTTPSend(send))
        elif kind == "websocket":
            await self.app(
                self._scope(scope, "websocket"), cast(ASGIReceive, receive), _ws_send(send)
            )
        elif kind == "sse":
            sse_send = _SSESend(send)
            await self.app(self._scope(scope, "http"), _sse_receive(receive), sse_send)
            await sse_send.finish()
        elif kind == "lifespan":
            if "state" not in scope:
                scope["state"] = {}
            asgi_scope = {
                "type": "lifespan",
                "asgi": {"version": self.asgi_version + ".0", "spec_version": "2.0"},
                "state": scope["state"],
            }
            await self.app(asgi_scope, cast(ASGIReceive, receive), cast(ASGISend, send))
        else:
            raise RuntimeError(f"ASGIApp cannot bridge a {kind!r} scope")

    def _scope(self, scope: Scope, kind: str) -> ASGIScope:
        asgi_scope = {k: v for k, v in scope.items() if not k.startswith("pagi")}
        asgi_scope["type"] = kind
        asgi_scope["asgi"] = {
            "version": self.asgi_version + ".0",
            "spec_version": ASGI_SPEC_VERSION,
        }
        extensions = dict(scope.get("extensions") or ())
        extensions.pop("fullflush", None)
        if kind == "http":
            extensions["http.response.pathsend"] = {}
            if scope["type"] == "http":
                extensions["http.response.trailers"] = {}
        asgi_scope["extensions"] = extensions
        return asgi_scope


# --- http --------------------------------------------------------------------


def _http_receive(receive: Receive) -> ASGIReceive:
    async def asgi_receive() -> MutableMapping[str, Any]:
        event = await receive()
        if event["type"] == "http.request":
            return {
                "type": "http.request",
                "body": event.get("body") or b"",
                "more_body": bool(event.get("more")),
            }
        return dict(event)

    return asgi_receive


def _pathsend_file(event: MutableMapping[str, Any]) -> str:
    path = event.get("path")
    if not isinstance(path, str):
        raise EventError("http.response.pathsend", "path", "must be a str (an absolute path)")
    return path


class _HTTPSend:
    """ASGI http events -> PAGI http events (the PAGI ``send`` validates them)."""

    __slots__ = ("send", "trailers")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.trailers: list[Any] | None = None

    async def __call__(self, event: MutableMapping[str, Any]) -> None:
        kind = event.get("type")
        if kind == "http.response.body":
            if "more_body" in event:
                event = {
                    "type": kind,
                    "body": event.get("body") or b"",
                    "more": bool(event["more_body"]),
                }
            await self.send(event)
        elif kind == "http.response.start":
            await self.send(event)
        elif kind == "http.response.pathsend":
            await self.send({"type": "http.response.body", "file": _pathsend_file(event)})
        elif kind == "http.response.trailers":
            # ASGI may split trailers over several events; PAGI takes them in one.
            if self.trailers is None:
                self.trailers = []
            self.trailers.extend(event.get("headers") or ())
            if not event.get("more_trailers"):
                await self.send({"type": kind, "headers": self.trailers})
        else:
            raise EventError(kind, "type", "is not an event an ASGI http application can send")


# --- websocket ----------------------------------------------------------------


def _ws_send(send: Send) -> ASGISend:
    async def asgi_send(event: MutableMapping[str, Any]) -> None:
        if event.get("type") == "websocket.http.response.body" and "more_body" in event:
            event = {
                "type": "websocket.http.response.body",
                "body": event.get("body") or b"",
                "more": bool(event["more_body"]),
            }
        await send(event)

    return asgi_send


# --- sse: the http request it came from ----------------------------------------


def _sse_receive(receive: Receive) -> ASGIReceive:
    async def asgi_receive() -> MutableMapping[str, Any]:
        event = await receive()
        if event["type"] == "sse.request":
            return {
                "type": "http.request",
                "body": event.get("body") or b"",
                "more_body": bool(event.get("more")),
            }
        return {"type": "http.disconnect"}

    return asgi_receive


class _SSESend:
    """An ASGI http response on an ``sse`` scope.

    A ``text/event-stream`` 2xx response becomes ``sse.start`` and its body
    is cut into events as it streams; anything else is a decline, a plain
    HTTP response.
    """

    __slots__ = ("buffer", "declining", "done", "send", "streaming")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.streaming = False
        self.declining = False
        self.done = False
        self.buffer = b""

    async def __call__(self, event: MutableMapping[str, Any]) -> None:
        kind = event.get("type")
        if kind == "http.response.start":
            headers = list(event.get("headers") or ())
            content_type = b""
            for name, value in headers:
                if bytes(name).lower() == b"content-type":
                    content_type = bytes(value).split(b";")[0].strip().lower()
            status = event.get("status", 200)
            if content_type == _EVENT_STREAM and isinstance(status, int) and status < 300:
                self.streaming = True
                await self.send({"type": "sse.start", "status": status, "headers": headers})
            else:
                self.declining = True
                await self.send(
                    {"type": "sse.http.response.start", "status": status, "headers": headers}
                )
        elif kind in ("http.response.body", "http.response.pathsend"):
            if kind == "http.response.pathsend":
                import anyio

                body = await anyio.Path(_pathsend_file(event)).read_bytes()
                more = False
            else:
                if "more" in event and "more_body" not in event:
                    raise EventError(kind, "more", "is PAGI's spelling; ASGI uses 'more_body'")
                body = bytes(event.get("body") or b"")
                more = bool(event.get("more_body"))
            if self.streaming:
                await self._stream(body, more)
            elif self.declining:
                await self.send({"type": "sse.http.response.body", "body": body, "more": more})
                self.done = not more
            else:
                raise EventError(kind, "type", "was sent before http.response.start")
        elif kind == "http.response.trailers":
            pass  # an event stream has no trailers; nothing to carry them
        else:
            raise EventError(kind, "type", "is not an event an ASGI http application can send")

    async def _stream(self, body: bytes, more: bool) -> None:
        data = (self.buffer + body).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *blocks, self.buffer = data.split(b"\n\n")
        for block in blocks:
            await self._event(block)
        if not more:
            if self.buffer.strip():
                await self._event(self.buffer)
            self.buffer = b""
            self.done = True
            await self.send({"type": "sse.close"})

    async def _event(self, block: bytes) -> None:
        data: list[str] = []
        fields: dict[str, Any] = {}
        comments: list[str] = []
        for raw in block.split(b"\n"):
            line = raw.decode("utf-8", "replace")
            if line.startswith(":"):
                comments.append(line[1:].removeprefix(" "))
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name in ("event", "id"):
                fields[name] = value
            elif name == "retry" and value.isdigit():
                fields["retry"] = int(value)
        for comment in comments:
            await self.send({"type": "sse.comment", "comment": comment})
        if data or fields:
            await self.send({"type": "sse.send", "data": "\n".join(data), **fields})

    async def finish(self) -> None:
        """After the ASGI app returned: end a stream it left open."""
        if self.streaming and not self.done:
            self.done = True
            await self.send({"type": "sse.close"})


def to_asgi(pagi_app: App) -> ASGI3App:
    """A PAGI application as an ASGI 3 application, for uvicorn, hypercorn, granian, daphne.

    See :mod:`pagi.tools.asgi_host` for what maps and what degrades.
    """
    from pagi.tools.asgi_host import PAGIOnASGI

    return PAGIOnASGI(pagi_app)  # type: ignore[return-value]
