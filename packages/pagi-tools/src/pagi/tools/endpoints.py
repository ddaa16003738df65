"""Class-based endpoints for HTTP, WebSocket and SSE.

Each endpoint *class* is a PAGI app: ``MyEndpoint(scope, receive, send)``
builds one instance for that scope and awaiting it runs the dispatch, so a
class can be mounted, routed (``Route("/x", MyEndpoint)``) or served as is.
A new instance per scope keeps per-connection state on ``self`` safe.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any, ClassVar, Literal

from pagi.spec import Receive, Scope, Send
from pagi.tools.exception_handlers import defers_http_exceptions
from pagi.tools.exceptions import HTTPException, WebSocketDisconnect
from pagi.tools.handlers import error_response, to_response
from pagi.tools.request import Request
from pagi.tools.response import PlainTextResponse, Response
from pagi.tools.sse import SSE, SSEState
from pagi.tools.websocket import WebSocket, WebSocketState

__all__ = ["HTTPEndpoint", "SSEEndpoint", "WebSocketEndpoint"]

_HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class _Endpoint:
    scope_type: ClassVar[str] = ""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != self.scope_type:
            raise TypeError(
                f"{type(self).__name__} serves {self.scope_type} scopes, got {scope.get('type')!r}"
            )
        self.scope = scope
        self.receive = receive
        self.send = send

    def __await__(self) -> Generator[Any, None, None]:
        return self.dispatch().__await__()

    async def dispatch(self) -> None:
        """Serve the scope this instance was built for."""
        raise NotImplementedError


class HTTPEndpoint(_Endpoint):
    """Define ``async def get(self, request)`` (and ``post``, ``put``...) returning a response.

    HEAD falls back to ``get``; OPTIONS is answered with ``Allow`` unless
    defined; other methods get 405 with ``Allow``. Handlers may raise
    :class:`HTTPException`.
    """

    scope_type = "http"

    @classmethod
    def allowed_methods(cls) -> list[str]:
        """The methods this endpoint answers."""
        methods = [m for m in _HTTP_METHODS if callable(getattr(cls, m.lower(), None))]
        if "GET" in methods and "HEAD" not in methods:
            methods.append("HEAD")
        if "OPTIONS" not in methods:
            methods.append("OPTIONS")
        return sorted(methods)

    async def dispatch(self) -> None:
        """Serve the scope this instance was built for."""
        request = Request(self.scope, self.receive)
        method = request.method
        name = "get" if method == "HEAD" and not hasattr(self, "head") else method.lower()
        handler = getattr(self, name, None) if method in _HTTP_METHODS else None
        allow = {"allow": ", ".join(self.allowed_methods())}
        try:
            if handler is None:
                if method == "OPTIONS":
                    response: Response = Response(status=204, headers=allow)
                else:
                    response = PlainTextResponse("Method Not Allowed", 405, headers=allow)
            else:
                try:
                    response = to_response(await handler(request), handler)
                except HTTPException as exc:
                    if defers_http_exceptions(self.scope):
                        raise  # an ErrorHandler or exception_handlers above answers it
                    response = error_response(exc)
            await response(self.scope, self.receive, self.send)
        finally:
            await request.close()


class WebSocketEndpoint(_Endpoint):
    """Hooks for one WebSocket: ``on_connect``, ``on_receive``, ``on_disconnect``.

    ``encoding`` decides what ``on_receive`` gets: ``"text"`` (str),
    ``"bytes"``, ``"json"`` (parsed; bad JSON closes with 1003) or ``None``
    (whatever arrived). The default ``on_connect`` accepts.
    """

    scope_type = "websocket"
    encoding: ClassVar[Literal["text", "bytes", "json"] | None] = None

    async def on_connect(self, websocket: WebSocket) -> None:
        """Decide on the handshake; accept by default."""
        await websocket.accept()

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        """Handle one message."""

    async def on_disconnect(self, websocket: WebSocket, code: int, reason: str) -> None:
        """Clean up after the connection closed (either side)."""

    async def dispatch(self) -> None:
        """Serve the scope this instance was built for."""
        websocket = WebSocket(self.scope, self.receive, self.send)
        await self.on_connect(websocket)
        if websocket.phase is not WebSocketState.CONNECTED:
            return
        code, reason = 1000, ""
        try:
            while True:
                message = await websocket.receive_message()
                try:
                    data = self._decode(message)
                except ValueError as exc:
                    code, reason = 1003, str(exc)[:120]
                    await websocket.close(code, reason)
                    break
                await self.on_receive(websocket, data)
                if websocket.phase is not WebSocketState.CONNECTED:
                    code, reason = websocket.close_code or 1000, websocket.close_reason or ""
                    break
        except WebSocketDisconnect as exc:
            code, reason = exc.code, exc.reason
        except Exception:
            code, reason = 1011, ""
            await websocket.close(1011)
            raise
        finally:
            await self.on_disconnect(websocket, code, reason)

    def _decode(self, message: str | bytes) -> Any:
        if self.encoding == "text":
            if not isinstance(message, str):
                raise ValueError("expected text frames")
            return message
        if self.encoding == "bytes":
            if not isinstance(message, bytes):
                raise ValueError("expected binary frames")
            return message
        if self.encoding == "json":
            return json.loads(message)
        return message


class SSEEndpoint(_Endpoint):
    """Hooks for one SSE stream.

    ``on_connect`` starts the stream (override to check auth and
    ``decline``); ``stream`` produces events until it returns or the client
    leaves (default: wait for the client to leave); ``on_disconnect`` runs
    at the end. ``keepalive_interval`` > 0 asks the server for comment pings.
    """

    scope_type = "sse"
    keepalive_interval: ClassVar[float] = 0

    async def on_connect(self, sse: SSE) -> None:
        """Start the stream (or decline it)."""
        await sse.start()

    async def stream(self, sse: SSE) -> None:
        """Send events; the default just waits for the client to leave."""
        await sse.wait_disconnect()

    async def on_disconnect(self, sse: SSE) -> None:
        """Clean up at the end of the stream."""

    async def dispatch(self) -> None:
        """Serve the scope this instance was built for."""
        sse = SSE(self.scope, self.receive, self.send)
        await self.on_connect(sse)
        if sse.phase is SSEState.PENDING:
            await sse.start()
        if sse.phase is not SSEState.STARTED:
            return
        try:
            if self.keepalive_interval > 0:
                await sse.keepalive(self.keepalive_interval)
            await sse.run_until_disconnect(lambda: self.stream(sse))
        finally:
            await self.on_disconnect(sse)
