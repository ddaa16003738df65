"""Contexts: one object per scope type bundling the helper, state, stash and session.

A handler whose first parameter is annotated with a context class
(``async def view(ctx: HTTPContext)``) gets one instead of the bare helper
from the route adapters in :mod:`pagi.tools.handlers`; everything else
about the route stays the same (the adapter tidies up the helper the
context holds).

* :class:`HTTPContext` has ``request``; :class:`WebSocketContext` has
  ``websocket``; :class:`SSEContext` has ``sse``.
* Every context has ``scope``, ``state`` (the lifespan state), ``stash``
  (a dict for this request only, shared with middleware through
  ``scope["pagi.stash"]``), ``session`` (``scope["pagi.session"]`` when a
  Session middleware is in front, else ``None``), ``path_params``,
  ``query_params`` and ``headers``.
* WebSocket and SSE contexts dispatch events: ``on(name, handler)``,
  ``on_default(handler)`` and ``on_cleanup(callback)``; :meth:`run` serves
  the connection until the client leaves, then runs the ``disconnect``
  handlers and cleanups (all of them, even if one fails, shielded from
  cancellation).

WebSocket event names: ``connect`` (after accept), ``disconnect`` (with the
close code), a JSON object message with a string ``type`` goes to the
handler of that type (with the decoded object) when one is registered,
every other message to ``message`` (with the ``str`` or ``bytes``), and
what no handler takes to ``on_default``.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from pagi.spec import Receive, Scope, Send
from pagi.tools.request import HTTPConnection, Request
from pagi.tools.sse import SSE, SSEState
from pagi.tools.websocket import WebSocket, WebSocketState

__all__ = ["Context", "HTTPContext", "SSEContext", "WebSocketContext", "context_for"]

logger = logging.getLogger("pagi.tools.context")

EventHandler = Callable[..., Awaitable[Any] | Any]


class Context:
    """What every context has; see the subclasses."""

    def __init__(self, connection: HTTPConnection) -> None:
        self.connection = connection
        self.scope: Scope = connection.scope

    @property
    def state(self) -> dict[str, Any]:
        """The lifespan state (shared by every request of the process)."""
        return self.connection.state

    @property
    def stash(self) -> dict[str, Any]:
        """A dict for this request only, shared with middleware via ``scope["pagi.stash"]``."""
        return self.connection.stash

    @property
    def session(self) -> dict[str, Any] | None:
        """The session dict when a Session middleware is in front, else ``None``."""
        return self.scope.get("pagi.session")

    @property
    def path_params(self) -> dict[str, Any]:
        """The route's path parameters."""
        return self.connection.path_params

    @property
    def query_params(self) -> Any:
        """The query string parameters."""
        return self.connection.query_params

    @property
    def headers(self) -> Any:
        """The request headers."""
        return self.connection.headers


class HTTPContext(Context):
    """An ``http`` scope: ``ctx.request`` plus the common parts."""

    def __init__(self, request: Request) -> None:
        super().__init__(request)
        self.request = request


class _Dispatching(Context):
    def __init__(self, connection: HTTPConnection) -> None:
        super().__init__(connection)
        self._handlers: dict[str, EventHandler] = {}
        self._default: EventHandler | None = None
        self._cleanups: list[Callable[[], Awaitable[Any] | Any]] = []

    def on(self, event: str, handler: EventHandler | None = None) -> Any:
        """Register ``handler`` for ``event`` (also usable as ``@ctx.on("event")``)."""
        if handler is None:

            def register(func: EventHandler) -> EventHandler:
                self._handlers[event] = func
                return func

            return register
        self._handlers[event] = handler
        return handler

    def on_default(self, handler: EventHandler) -> EventHandler:
        """Register the handler for what no named handler takes."""
        self._default = handler
        return handler

    def on_cleanup(self, callback: Callable[[], Awaitable[Any] | Any]) -> None:
        """Run ``callback()`` when the connection ends, however it ends."""
        self._cleanups.append(callback)

    async def _call(self, handler: EventHandler, *args: Any) -> None:
        result = handler(*args)
        if inspect.isawaitable(result):
            await result

    async def _emit(self, event: str, *args: Any) -> bool:
        handler = self._handlers.get(event)
        if handler is None:
            return False
        await self._call(handler, *args)
        return True

    async def _finish(self, *disconnect_args: Any) -> None:
        with anyio.CancelScope(shield=True):
            steps: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
            if "disconnect" in self._handlers:
                steps.append((self._handlers["disconnect"], disconnect_args))
            steps += [(callback, ()) for callback in reversed(self._cleanups)]
            for step, args in steps:
                try:
                    await self._call(step, *args)
                except Exception:
                    logger.exception("cleanup %r failed", step)


class WebSocketContext(_Dispatching):
    """A ``websocket`` scope: ``ctx.websocket``, event dispatch and :meth:`run`."""

    def __init__(self, websocket: WebSocket) -> None:
        super().__init__(websocket)
        self.websocket = websocket

    async def run(self, *, subprotocol: str | None = None) -> None:
        """Accept (if needed) and dispatch messages until the client leaves; then clean up."""
        ws = self.websocket
        if ws.phase is WebSocketState.CONNECTING:
            await ws.accept(subprotocol)
        try:
            await self._emit("connect")
            while ws.phase is WebSocketState.CONNECTED:
                event = await ws.receive()
                if event["type"] == "websocket.disconnect":
                    break
                text = event.get("text")
                await self._dispatch(text if text is not None else bytes(event.get("bytes") or b""))
        finally:
            await self._finish(ws.close_code)

    async def _dispatch(self, message: str | bytes) -> None:
        if isinstance(message, str) and message[:1] == "{":
            try:
                data = json.loads(message)
            except ValueError:
                data = None
            if isinstance(data, dict) and isinstance(data.get("type"), str):
                if await self._emit(data["type"], data):
                    return
        if await self._emit("message", message):
            return
        if self._default is not None:
            await self._call(self._default, message)


class SSEContext(_Dispatching):
    """An ``sse`` scope: ``ctx.sse``, ``disconnect``/cleanup dispatch and :meth:`run`."""

    def __init__(self, sse: SSE) -> None:
        super().__init__(sse)
        self.sse = sse

    async def run(self, producer: Callable[[], Awaitable[None]] | None = None) -> None:
        """Start the stream, run ``producer()`` (if any) until the client leaves; clean up."""
        sse = self.sse
        await sse.start()
        try:
            await self._emit("connect")
            if producer is not None:
                await sse.run_until_disconnect(producer)
            if sse.phase is SSEState.STARTED and sse.disconnect_reason is None:
                await sse.wait_disconnect()
        finally:
            await self._finish(sse.disconnect_reason)


def context_for(scope: Scope, receive: Receive, send: Send) -> Context:
    """The context for ``scope``'s type (``http``, ``websocket`` or ``sse``)."""
    kind = scope.get("type")
    if kind == "http":
        return HTTPContext(Request(scope, receive))
    if kind == "websocket":
        return WebSocketContext(WebSocket(scope, receive, send))
    if kind == "sse":
        return SSEContext(SSE(scope, receive, send))
    raise TypeError(f"no context for a {kind!r} scope")


def wants_context(handler: Callable[..., Any]) -> bool:
    """True when ``handler``'s first parameter is annotated with a context class."""
    import typing

    try:
        first = next(iter(inspect.signature(handler).parameters.values()))
    except (StopIteration, TypeError, ValueError):
        return False
    try:
        annotation = typing.get_type_hints(handler).get(first.name, first.annotation)
    except Exception:
        annotation = first.annotation
    if isinstance(annotation, str):
        return annotation.rpartition(".")[2] in {c.__name__ for c in _CONTEXTS}
    return isinstance(annotation, type) and issubclass(annotation, Context)


_CONTEXTS = (Context, HTTPContext, WebSocketContext, SSEContext)
