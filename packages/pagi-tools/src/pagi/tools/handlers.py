"""Adapters from handler functions to PAGI apps.

A handler is what application code writes: ``async def (request) ->
response`` for HTTP, ``async def (websocket)`` and ``async def (sse)`` for
the other scope types; a handler whose first parameter is annotated with
a context class (:mod:`pagi.tools.context`) gets that context instead. The
adapters here build the helper object, call the
handler, turn :class:`~pagi.tools.exceptions.HTTPException` into the scope's
error answer, and tidy up what a handler leaves open (a WebSocket never
accepted is denied, one left open is closed; an SSE stream never started is
declined with 204).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.context import HTTPContext, SSEContext, WebSocketContext, wants_context
from pagi.tools.exception_handlers import defers_http_exceptions
from pagi.tools.exceptions import HTTPException, WebSocketDisconnect
from pagi.tools.request import Request
from pagi.tools.response import JSONResponse, PlainTextResponse, Response
from pagi.tools.sse import SSE, SSEState
from pagi.tools.websocket import WebSocket, WebSocketState

__all__ = [
    "Handler",
    "SSEHandler",
    "WebSocketHandler",
    "error_response",
    "request_response",
    "sse_session",
    "to_response",
    "websocket_session",
]

#: ``async def handler(request) -> Response | dict | list | str``.
Handler = Callable[[Request], Awaitable[Any]]
#: ``async def handler(websocket) -> None``.
WebSocketHandler = Callable[[WebSocket], Awaitable[None]]
#: ``async def handler(sse) -> None``.
SSEHandler = Callable[[SSE], Awaitable[None]]


def error_response(exc: HTTPException) -> Response:
    """The plain-text response for an :class:`HTTPException`."""
    return PlainTextResponse(exc.detail, exc.status, headers=exc.headers)


def to_response(result: Any, handler: Callable[..., Any]) -> Response:
    """Turn a handler's return value into a response (dict/list: JSON, str: text)."""
    if isinstance(result, Response):
        return result
    if isinstance(result, (dict, list)):
        return JSONResponse(result)
    if isinstance(result, str):
        return PlainTextResponse(result)
    hint = " (did it forget to return?)" if result is None else ""
    raise TypeError(
        f"handler {getattr(handler, '__qualname__', handler)!r} returned "
        f"{type(result).__name__}{hint}; "
        "return a Response, a dict/list (JSON) or a str (text)"
    )


def _check_async(func: Callable[..., Any], what: str) -> None:
    if not inspect.iscoroutinefunction(func) and not inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - async callable objects count
    ):
        raise TypeError(f"{what} {func!r} must be an async function (async def)")


def request_response(handler: Handler) -> App:
    """Wrap ``async def handler(request) -> response`` as an app."""
    _check_async(handler, "HTTP handler")
    with_context = wants_context(handler)
    call: Callable[[Any], Awaitable[Any]] = handler  # takes the helper or its context

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            try:
                argument = HTTPContext(request) if with_context else request
                response = to_response(await call(argument), handler)
            except HTTPException as exc:
                if defers_http_exceptions(scope):
                    raise  # an ErrorHandler or exception_handlers above answers it
                response = error_response(exc)
            await response(scope, receive, send)
        finally:
            await request.close()

    return app


def websocket_session(handler: WebSocketHandler) -> App:
    """Wrap ``async def handler(websocket)`` as an app; tidy up what it leaves open."""
    _check_async(handler, "WebSocket handler")
    with_context = wants_context(handler)
    call: Callable[[Any], Awaitable[Any]] = handler  # takes the helper or its context

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        ws = WebSocket(scope, receive, send)
        try:
            await call(WebSocketContext(ws) if with_context else ws)
        except WebSocketDisconnect:
            return  # the peer left while the handler waited: nothing more to do
        except HTTPException as exc:
            if ws.phase is not WebSocketState.CONNECTING or defers_http_exceptions(scope):
                raise
            await ws.deny(error_response(exc))
            return
        if ws.phase is WebSocketState.CONNECTING:
            await ws.deny()  # never accepted: refuse rather than leave the client hanging
        elif ws.phase is WebSocketState.CONNECTED:
            await ws.close()

    return app


def sse_session(handler: SSEHandler) -> App:
    """Wrap ``async def handler(sse)`` as an app; a handler that never started declines with 204."""
    _check_async(handler, "SSE handler")
    with_context = wants_context(handler)
    call: Callable[[Any], Awaitable[Any]] = handler  # takes the helper or its context

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        sse = SSE(scope, receive, send)
        try:
            await call(SSEContext(sse) if with_context else sse)
        except HTTPException as exc:
            if sse.phase is not SSEState.PENDING or defers_http_exceptions(scope):
                raise
            await sse.decline(error_response(exc))
            return
        if sse.phase is SSEState.PENDING:
            await sse.decline()

    return app
