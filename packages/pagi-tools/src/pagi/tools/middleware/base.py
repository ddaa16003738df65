"""Helpers for writing middleware: one way to wrap ``send``/``receive``, edit a start, buffer.

Theory of operation
-------------------
A middleware is a PAGI app holding another app. Most only need to look at
one scope type, change a few response headers, or read the request body
once; the helpers here do those jobs so that every middleware does them the
same way:

* :class:`Middleware` -- a base class. ``__call__`` passes scope types not
  in :attr:`Middleware.scope_types` straight through (lifespan included),
  and otherwise calls :meth:`Middleware.handle`, which by default runs the
  app with ``receive`` and ``send`` passed through the
  :meth:`~Middleware.wrap_receive` / :meth:`~Middleware.wrap_send` hooks.
  A subclass overrides a hook, or ``handle`` for full control.
* :func:`copy_scope` -- a shallow copy of the scope with extra keys. The
  caller's scope is never changed in place (R-MW-2).
* :class:`ResponseStart` and :func:`intercept_start` -- an editable view of
  a start event (status and headers) and a ``send`` that lets a callback
  edit it on the way out.
* :func:`add_headers` -- the cheap case of ``intercept_start``: add
  ready-made header pairs to each start event (append, add if missing, or
  replace same-named ones; optionally list a field in ``Vary``) without
  building an editable view. For layers that run on every request.
* :func:`buffer_response` -- hold the start until the first body; when that
  body is the whole response, let a callback rewrite start and body
  (ETag, Content-Length, panel injection). Anything streamed, any file
  body, and any response with trailers passes through untouched, so
  streaming stays streaming.
* :class:`BodyBuffer`, :func:`read_body` and :func:`replay_receive` -- read
  a request body with a size limit, then hand the app a ``receive`` that
  delivers the same body again.
* :class:`OptionError` -- what a constructor raises for a bad option; the
  message names the middleware and the option.

Events are read-only mappings (``pagi.spec.Event``): the helpers copy an
event before changing it and never rely on ``send`` returning anything.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, ClassVar

from pagi.spec import App, Event, Receive, Scope, Send
from pagi.tools.exceptions import BodyTooLarge, ClientDisconnected
from pagi.tools.headers import MutableHeaders

__all__ = [
    "BodyBuffer",
    "BodyFinisher",
    "Middleware",
    "OptionError",
    "ResponseStart",
    "StartEditor",
    "add_headers",
    "buffer_response",
    "copy_scope",
    "intercept_start",
    "read_body",
    "replay_receive",
]


class OptionError(ValueError, TypeError):
    """A middleware option is wrong: raised by the constructor, naming the option.

    It is both a ``ValueError`` and a ``TypeError`` so that callers may catch
    either, whether the value had the wrong type or the wrong range.
    """

    def __init__(self, owner: str, option: str, problem: str) -> None:
        self.owner = owner
        self.option = option
        super().__init__(f"{owner}: option {option!r} {problem}")


def copy_scope(
    scope: Mapping[str, Any], extra: Mapping[str, Any] | None = None, /, **keys: Any
) -> Scope:
    """A shallow copy of ``scope`` with ``extra`` and ``keys`` set (dotted names go in ``extra``).

    ``copy_scope(scope, {"pagi.request_id": rid})`` or ``copy_scope(scope, path="/new")``.
    """
    copied = dict(scope)
    if extra:
        copied.update(extra)
    copied.update(keys)
    return copied


class Middleware:
    """Base class for middleware: pass other scope types through, wrap the rest.

    Subclasses call ``super().__init__(app)`` and override
    :meth:`wrap_send`, :meth:`wrap_receive` or :meth:`handle`. Per-request
    state belongs in the closures the hooks return, never on ``self``: one
    instance serves every request concurrently.
    """

    #: The scope types this middleware acts on; others go straight to the app.
    scope_types: ClassVar[Collection[str]] = ("http",)

    def __init__(self, app: App) -> None:
        if not callable(app):
            raise OptionError(type(self).__name__, "app", f"must be a PAGI app, got {app!r}")
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") not in self.scope_types:
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one scope of a handled type: by default, the app with wrapped hooks."""
        await self.app(scope, self.wrap_receive(scope, receive), self.wrap_send(scope, send))

    def wrap_send(self, scope: Scope, send: Send) -> Send:
        """Return the ``send`` the app gets for ``scope`` (default: ``send`` itself)."""
        return send

    def wrap_receive(self, scope: Scope, receive: Receive) -> Receive:
        """Return the ``receive`` the app gets for ``scope`` (default: ``receive`` itself)."""
        return receive

    def __repr__(self) -> str:
        return f"<{type(self).__name__} around {self.app!r}>"


class ResponseStart:
    """An editable start event: ``status``, ``headers`` and the event's other fields.

    Built from ``http.response.start`` (or ``sse.start``, or a denial's or
    decline's start); :meth:`to_event` gives the event to send.
    """

    __slots__ = ("event", "headers", "status")

    def __init__(self, event: Event) -> None:
        self.event: dict[str, Any] = dict(event)
        self.status: int = int(event.get("status", 200))
        self.headers = MutableHeaders(raw=event.get("headers") or [])

    @property
    def type(self) -> str:
        """The event type (``http.response.start``...)."""
        return str(self.event["type"])

    def to_event(self) -> dict[str, Any]:
        """A new start event with the current status and headers."""
        return {**self.event, "status": self.status, "headers": self.headers.raw}

    def __repr__(self) -> str:
        return f"<ResponseStart {self.type} {self.status}>"


#: ``edit(start)``: change ``start.status`` / ``start.headers``; sync or async.
StartEditor = Callable[[ResponseStart], Awaitable[None] | None]
#: ``finish(start, body) -> body``: edit the held start, return the body to send; sync or async.
BodyFinisher = Callable[[ResponseStart, bytes], Awaitable[bytes] | bytes]


def intercept_start(
    send: Send, edit: StartEditor, *, types: Collection[str] = ("http.response.start",)
) -> Send:
    """A ``send`` that lets ``edit`` change each start event of ``types`` before it goes out."""

    async def edited_send(event: Event) -> None:
        if event.get("type") in types:
            start = ResponseStart(event)
            result = edit(start)
            if inspect.isawaitable(result):
                await result
            event = start.to_event()
        await send(event)

    return edited_send


def buffer_response(
    send: Send,
    finish: BodyFinisher,
    *,
    accept: Callable[[ResponseStart], bool] | None = None,
) -> Send:
    """A ``send`` that lets ``finish`` rewrite a response sent as one ``bytes`` body.

    The ``http.response.start`` is held until the first body event. If that
    event is the whole response (a ``body``, ``more`` false, no trailers
    announced), ``finish(start, body)`` may edit the start and returns the
    body to send. Otherwise -- a streamed body, a ``file``/``fh`` body,
    trailers, or ``accept(start)`` false -- the held start goes out as it
    was and every event passes through, so nothing streamed is buffered.
    """
    held: ResponseStart | None = None
    passing = False

    async def buffering_send(event: Event) -> None:
        nonlocal held, passing
        kind = event.get("type")
        if passing:
            await send(event)
            return
        if kind == "http.response.start":
            start = ResponseStart(event)
            if event.get("trailers") or (accept is not None and not accept(start)):
                passing = True
                await send(event)
                return
            held = start
            return
        if held is None:
            await send(event)
            return
        single = (
            kind == "http.response.body"
            and not event.get("more", False)
            and "file" not in event
            and "fh" not in event
        )
        start, held = held, None
        passing = True
        if not single:
            await send(start.to_event())
            await send(event)
            return
        result = finish(start, bytes(event.get("body", b"")))
        body = await result if inspect.isawaitable(result) else result
        await send(start.to_event())
        await send({"type": "http.response.body", "body": body})

    return buffering_send


class BodyBuffer:
    """Collect body chunks up to ``limit`` bytes (``None``: no limit).

    :meth:`add` keeps every chunk and returns false once the total went
    over the limit, so a caller can either refuse (413) or flush what it
    holds and stop buffering.
    """

    __slots__ = ("_chunks", "limit", "size")

    def __init__(self, limit: int | None = None) -> None:
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0 or None, got {limit}")
        self.limit = limit
        self.size = 0
        self._chunks: list[bytes] = []

    def add(self, chunk: bytes) -> bool:
        """Keep ``chunk``; return false if the total is now over the limit."""
        if chunk:
            self._chunks.append(bytes(chunk))
            self.size += len(chunk)
        return not self.full

    @property
    def full(self) -> bool:
        """True once more than ``limit`` bytes were added."""
        return self.limit is not None and self.size > self.limit

    @property
    def chunks(self) -> list[bytes]:
        """The chunks added so far, in order."""
        return list(self._chunks)

    def getvalue(self) -> bytes:
        """Everything added so far, joined."""
        if len(self._chunks) > 1:
            self._chunks = [b"".join(self._chunks)]
        return self._chunks[0] if self._chunks else b""

    def __len__(self) -> int:
        return self.size


async def read_body(receive: Receive, limit: int | None = None) -> bytes:
    """Read a whole request body (``http.request`` or ``sse.request`` events).

    Raises :class:`~pagi.tools.exceptions.BodyTooLarge` (an
    ``HTTPException`` 413) as soon as it passes ``limit`` bytes, and
    :class:`~pagi.tools.exceptions.ClientDisconnected` if the client leaves
    first.
    """
    buffer = BodyBuffer(limit)
    while True:
        event = await receive()
        kind = event.get("type")
        if kind in ("http.disconnect", "sse.disconnect"):
            raise ClientDisconnected("the client disconnected while the body was read")
        if kind not in ("http.request", "sse.request"):
            continue
        if not buffer.add(event.get("body", b"")):
            raise BodyTooLarge(f"request body is larger than {limit} bytes")
        if not event.get("more", False):
            return buffer.getvalue()


def replay_receive(body: bytes, receive: Receive, *, event_type: str = "http.request") -> Receive:
    """A ``receive`` that first yields ``body`` as one final ``event_type``, then asks ``receive``.

    After the replayed body, later calls wait on the original ``receive``,
    so the app still sees ``http.disconnect`` when the client goes.
    """
    pending = True

    async def replaying_receive() -> Event:
        nonlocal pending
        if pending:
            pending = False
            return {"type": event_type, "body": body, "more": False}
        return await receive()

    return replaying_receive


def add_headers(
    send: Send,
    headers: Collection[tuple[bytes, bytes]],
    *,
    types: Collection[str] = ("http.response.start",),
    mode: str = "append",
    vary: bytes | None = None,
) -> Send:
    """A ``send`` that adds ``headers`` (lower-case, checked byte pairs) to each start of ``types``.

    ``mode``: ``"append"`` adds every pair (``set-cookie``); ``"missing"``
    adds only names the app did not set; ``"replace"`` drops the app's
    values of those names first. ``vary`` (e.g. ``b"Origin"``) is added to
    the ``Vary`` header unless already listed. The pairs are not checked
    again: build them once with :func:`pagi.tools.headers.encode_header`.
    """
    if mode not in ("append", "missing", "replace"):
        raise ValueError(f"mode must be 'append', 'missing' or 'replace', not {mode!r}")
    pairs = headers if isinstance(headers, list) else list(headers)
    names = frozenset(name for name, _ in pairs) if mode == "replace" else frozenset()

    async def adding_send(event: Event) -> None:
        if event.get("type") in types:
            current = list(event.get("headers") or ())
            if mode == "missing":
                present = {name.lower() for name, _ in current}
                current += [pair for pair in pairs if pair[0] not in present]
            elif mode == "replace":
                current = [(n, v) for n, v in current if n.lower() not in names]
                current += pairs
            else:
                current += pairs
            if vary is not None:
                current = _with_vary(current, vary)
            event = {**event, "headers": current}
        await send(event)

    return adding_send


def _with_vary(headers: list[tuple[bytes, bytes]], field: bytes) -> list[tuple[bytes, bytes]]:
    values = [bytes(v) for n, v in headers if n.lower() == b"vary"]
    if not values:  # the common case: nothing to merge with
        headers.append((b"vary", field))
        return headers
    listed = [t.strip() for value in values for t in value.split(b",") if t.strip()]
    wanted = field.lower()
    if any(t.lower() == wanted or t == b"*" for t in listed):
        return headers
    rest = [(n, v) for n, v in headers if n.lower() != b"vary"]
    return [*rest, (b"vary", b", ".join([*listed, field]))]
