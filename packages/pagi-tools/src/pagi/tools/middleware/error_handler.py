"""ErrorHandler: turn exceptions into answers, in the scope type's own terms.

Theory of operation
-------------------
The app runs with a ``send`` that records progress
(:class:`~pagi.tools.exception_handlers.ResponseProgress`) and a scope copy
carrying ``pagi.exception_handlers``, which tells the route adapters to let
:class:`~pagi.tools.exceptions.HTTPException` rise to here. When the app
raises, the answer depends on how far it got:

* nothing started -- the most specific handler from ``handlers`` answers
  (by class through the MRO, then by status); else an ``HTTPException``
  answers with its status (JSON when the client prefers JSON); else a 500:
  the debug page (HTML, or JSON for API clients) with ``debug=True``, a
  plain 500 otherwise. On WebSocket this is a denial, on SSE a decline.
* a WebSocket already accepted -- ``websocket.close`` with 1011; an SSE
  stream already started -- ``sse.close``.
* an HTTP response already started -- nothing can be said any more: the
  error is re-raised so the server cuts the response short.

Unexpected exceptions (not ``HTTPException``) are logged once, on the
``pagi.tools.errors`` logger, with the traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.debug_page import render_html, render_json
from pagi.tools.exception_handlers import (
    HANDLERS_KEY,
    ExceptionHandler,
    ExceptionHandlers,
    HandlerKey,
    ResponseProgress,
    unwrap_group,
)
from pagi.tools.exceptions import HTTPException, WebSocketDisconnect
from pagi.tools.headers import Headers
from pagi.tools.middleware.base import Middleware, OptionError, copy_scope
from pagi.tools.negotiation import best_match
from pagi.tools.request import Request
from pagi.tools.response import HTMLResponse, JSONResponse, PlainTextResponse, Response

__all__ = ["ErrorHandler", "http_exception_response"]

logger = logging.getLogger("pagi.tools.errors")


def _prefers_json(scope: Scope, other: str) -> bool:
    accept = Headers.from_scope(scope).get("accept")
    return best_match((other, "application/json"), accept) == "application/json"


def http_exception_response(scope: Scope, exc: HTTPException) -> Response:
    """The answer to an unhandled ``HTTPException``: JSON if the client prefers it, else text."""
    if _prefers_json(scope, "text/plain"):
        return JSONResponse(
            {"detail": exc.detail, "status": exc.status}, exc.status, headers=exc.headers
        )
    return PlainTextResponse(exc.detail, exc.status, headers=exc.headers)


class ErrorHandler(Middleware):
    """``ErrorHandler(app, debug=False, handlers=None)``: answer exceptions instead of crashing.

    ``handlers`` maps exception classes or int statuses to
    ``handler(request, exc) -> Response`` (plain or async). ``debug=True``
    shows a traceback page with local variables: development only.
    """

    scope_types = ("http", "websocket", "sse")

    def __init__(
        self,
        app: App,
        debug: bool = False,
        handlers: Mapping[HandlerKey, ExceptionHandler] | None = None,
    ) -> None:
        super().__init__(app)
        if not isinstance(debug, bool):
            raise OptionError("ErrorHandler", "debug", f"must be a bool, got {debug!r}")
        self.debug = debug
        self.handlers = ExceptionHandlers(handlers, owner="ErrorHandler", option="handlers")

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope = copy_scope(scope, {HANDLERS_KEY: self.handlers})
        progress = ResponseProgress()
        try:
            await self.app(scope, receive, progress.track(send))
        except Exception as raised:
            exc = unwrap_group(raised)
            if isinstance(exc, WebSocketDisconnect):
                return  # the peer left; there is no one to answer
            if not isinstance(exc, HTTPException):
                logger.error(
                    "unhandled %s in %s %s",
                    type(exc).__name__,
                    scope.get("method", scope["type"]),
                    scope.get("path", ""),
                    exc_info=exc,
                )
            if progress.started:
                await self._after_start(scope, send, progress, exc, raised)
                return
            await self._answer(scope, receive, send, exc)

    async def _after_start(
        self,
        scope: Scope,
        send: Send,
        progress: ResponseProgress,
        exc: BaseException,
        raised: Exception,
    ) -> None:
        kind = scope["type"]
        if kind == "http" or progress.closed:
            if kind == "http":
                logger.warning(
                    "the response to %s %s had started: it will be cut short",
                    scope.get("method"),
                    scope.get("path"),
                )
                raise raised
            return
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1011, "reason": "internal error"})
        else:
            await send({"type": "sse.close", "reason": f"{type(exc).__name__}: {exc}"})

    async def _answer(self, scope: Scope, receive: Receive, send: Send, exc: BaseException) -> None:
        response = await self._response_for(scope, receive, exc)
        await response(scope, receive, send)

    async def _response_for(self, scope: Scope, receive: Receive, exc: BaseException) -> Response:
        handler = self.handlers.lookup(exc)
        debug_page = self.debug and not isinstance(exc, HTTPException)
        if handler is not None and not (debug_page and handler is self.handlers.by_status.get(500)):
            try:
                return await self.handlers.respond(handler, Request(scope, receive), exc)
            except Exception as failure:
                logger.error("the exception handler %r failed", handler, exc_info=failure)
                return PlainTextResponse("Internal Server Error", 500)
        if isinstance(exc, HTTPException):
            return http_exception_response(scope, exc)
        if debug_page:
            if _prefers_json(scope, "text/html"):
                return JSONResponse(render_json(exc), 500)
            details = {
                "method": str(scope.get("method", scope["type"])),
                "path": str(scope.get("path", "")),
                "query": bytes(scope.get("query_string", b"")).decode("latin-1"),
                **{f"header {k}": v for k, v in Headers.from_scope(scope).multi_items()},
            }
            return HTMLResponse(render_html(exc, details), 500)
        return PlainTextResponse("Internal Server Error", 500)
