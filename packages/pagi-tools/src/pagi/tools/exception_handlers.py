"""A registry of exception handlers, shared by ``ErrorHandler`` and ``Router``.

Keys are exception classes or HTTP status codes; values are handlers
``(request, exc) -> Response``, plain or async. :meth:`ExceptionHandlers.lookup`
picks the handler for an exception the way ``except`` clauses would if they
were sorted from most to least specific: it walks the exception's MRO, so a
handler for ``KeyError`` wins over one for ``LookupError`` or ``Exception``.
A status key is consulted only when no class matched: an
:class:`~pagi.tools.exceptions.HTTPException` by its ``status``, any other
exception as 500.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pagi.spec import Event, Send
from pagi.tools.exceptions import HTTPException
from pagi.tools.request import Request
from pagi.tools.response import PlainTextResponse, Response

__all__ = [
    "HANDLERS_KEY",
    "ExceptionHandler",
    "ExceptionHandlers",
    "HandlerKey",
    "ResponseProgress",
    "defers_http_exceptions",
    "unwrap_group",
]

#: Scope key set by a layer that answers exceptions (``ErrorHandler``, a
#: ``Router`` with ``exception_handlers``): the route adapters then let an
#: :class:`~pagi.tools.exceptions.HTTPException` rise to it instead of
#: answering it with plain text themselves.
HANDLERS_KEY = "pagi.exception_handlers"


def defers_http_exceptions(scope: Mapping[str, Any]) -> bool:
    """True when a layer above answers ``HTTPException`` (so a route should re-raise it)."""
    return HANDLERS_KEY in scope


#: ``handler(request, exc) -> Response`` (or an awaitable of one).
ExceptionHandler = Callable[[Request, Any], Response | Awaitable[Response]]
#: An exception class or an int status.
HandlerKey = type[BaseException] | int


def unwrap_group(exc: BaseException) -> BaseException:
    """The single exception inside (nested) one-member exception groups, else ``exc``.

    Task groups wrap a handler's error in an ``ExceptionGroup``; a lone
    error is still the error the application raised.
    """
    # Duck-typed: Python 3.10 has no built-in group type (anyio uses a backport).
    while hasattr(exc, "derive") and len(getattr(exc, "exceptions", ())) == 1:
        inner: BaseException = exc.exceptions[0]  # type: ignore[attr-defined]
        exc = inner
    return exc


class ExceptionHandlers:
    """Handlers by exception class and by status; checked when built.

    ``owner`` names the thing being configured (``"ErrorHandler"``,
    ``"Router"``) and ``option`` the argument, so a bad key or handler
    raises ``TypeError`` / ``ValueError`` saying where it came from.
    """

    def __init__(
        self,
        handlers: Mapping[HandlerKey, ExceptionHandler] | None = None,
        *,
        owner: str = "ExceptionHandlers",
        option: str = "handlers",
    ) -> None:
        self.by_class: dict[type[BaseException], ExceptionHandler] = {}
        self.by_status: dict[int, ExceptionHandler] = {}
        if handlers is None:
            return
        if not isinstance(handlers, Mapping):
            raise TypeError(
                f"{owner}: option {option!r} must map exception classes or statuses to "
                f"handlers, got {type(handlers).__name__}"
            )
        for key, handler in handlers.items():
            if not callable(handler):
                raise TypeError(
                    f"{owner}: option {option!r}: the handler for {key!r} is not callable"
                )
            if isinstance(key, bool) or not isinstance(key, (int, type)):
                raise TypeError(
                    f"{owner}: option {option!r}: key {key!r} is neither an exception class "
                    "nor an int status"
                )
            if isinstance(key, int):
                if not 400 <= key <= 599:
                    raise ValueError(
                        f"{owner}: option {option!r}: status {key} is not an error status (400-599)"
                    )
                self.by_status[key] = handler
            elif issubclass(key, BaseException):
                self.by_class[key] = handler
            else:
                raise TypeError(
                    f"{owner}: option {option!r}: {key.__name__} is not an exception class"
                )

    def __bool__(self) -> bool:
        return bool(self.by_class or self.by_status)

    def lookup(self, exc: BaseException) -> ExceptionHandler | None:
        """The most specific handler for ``exc``: by class (MRO order), then by status."""
        for klass in type(exc).__mro__:
            handler = self.by_class.get(klass)
            if handler is not None:
                return handler
        status = exc.status if isinstance(exc, HTTPException) else 500
        return self.by_status.get(status)

    async def respond(
        self, handler: ExceptionHandler, request: Request, exc: BaseException
    ) -> Response:
        """Call ``handler`` (sync or async) and return what it gave."""
        result = handler(request, exc)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, Response):
            raise TypeError(
                f"exception handler {getattr(handler, '__qualname__', handler)!r} returned "
                f"{type(result).__name__}, not a Response"
            )
        return result


_STARTS = {
    "http.response.start",
    "websocket.accept",
    "websocket.http.response.start",
    "sse.start",
    "sse.http.response.start",
}
_ENDS = {"websocket.close", "sse.close"}


class ResponseProgress:
    """What an app has sent so far, to know whether an error can still be answered.

    ``started`` turns true with the first start, accept, denial or decline
    event (or a ``websocket.close`` before accept, which is a refusal);
    ``closed`` with ``websocket.close`` / ``sse.close``.
    """

    __slots__ = ("closed", "started")

    def __init__(self) -> None:
        self.started = False
        self.closed = False

    def track(self, send: Send) -> Send:
        """A ``send`` that records each event type before passing it on."""

        async def tracking_send(event: Event) -> None:
            kind = event.get("type")
            if kind in _STARTS:
                self.started = True
            elif kind in _ENDS:
                self.started = self.closed = True
            await send(event)

        return tracking_send


class HandlerLayer:
    """Run ``app``; answer the exceptions ``handlers`` has a handler for.

    What :class:`~pagi.tools.routing.Router` uses for ``exception_handlers``.
    An exception without a handler rises, except an ``HTTPException`` with
    no layer above to answer it, which gets the usual plain-text answer.
    Other scope types (lifespan) go straight to ``app``.
    """

    def __init__(self, app: Any, handlers: ExceptionHandlers) -> None:
        self.app = app
        self.handlers = handlers

    async def __call__(self, scope: Any, receive: Any, send: Send) -> None:
        if scope.get("type") not in ("http", "websocket", "sse"):
            await self.app(scope, receive, send)
            return
        outer = defers_http_exceptions(scope)
        scope = {**scope, HANDLERS_KEY: self.handlers}
        progress = ResponseProgress()
        try:
            await self.app(scope, receive, progress.track(send))
        except Exception as raised:
            exc = unwrap_group(raised)
            handler = self.handlers.lookup(exc)
            if progress.started:
                raise
            if handler is not None:
                response = await self.handlers.respond(handler, Request(scope, receive), exc)
            elif isinstance(exc, HTTPException) and not outer:
                response = PlainTextResponse(exc.detail, exc.status, headers=exc.headers)
            else:
                raise
            await response(scope, receive, send)
