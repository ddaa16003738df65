"""RequestId: one id per request, in the scope, in logs and on the response.

The id is the incoming ``header`` when ``trust_incoming`` is set and the
value is valid (1-128 characters of letters, digits and ``-_.:+=/``),
otherwise ``generator()`` (default: 32 random hex digits). It goes into the
scope copy as ``pagi.request_id``, into the :data:`request_id` context
variable for the app's task (so :class:`RequestIdFilter` can put it on every
log record as ``record.request_id``), and back out in the same header on
the response (HTTP responses, SSE starts, denials and declines).
"""

from __future__ import annotations

import contextvars
import logging
import re
import secrets
from collections.abc import Callable

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.headers import Headers
from pagi.tools.middleware.base import (
    Middleware,
    OptionError,
    ResponseStart,
    copy_scope,
    intercept_start,
)

__all__ = ["RequestId", "RequestIdFilter", "request_id", "valid_request_id"]

#: The current request's id (``None`` outside a request).
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "pagi_request_id", default=None
)
_VALID = re.compile(r"[A-Za-z0-9._:+=/-]{1,128}")
_STARTS = (
    "http.response.start",
    "sse.start",
    "sse.http.response.start",
    "websocket.http.response.start",
)


def valid_request_id(value: str) -> bool:
    """True for 1-128 characters of letters, digits and ``-_.:+=/``."""
    return _VALID.fullmatch(value) is not None


class RequestIdFilter(logging.Filter):
    """A logging filter that sets ``record.request_id`` (``"-"`` outside a request).

    ``handler.addFilter(RequestIdFilter())`` and a format with
    ``%(request_id)s``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get() or "-"
        return True


def _new_id() -> str:
    return secrets.token_hex(16)


class RequestId(Middleware):
    """``RequestId(app, header="x-request-id", trust_incoming=False, generator=None)``."""

    scope_types = ("http", "websocket", "sse")

    def __init__(
        self,
        app: App,
        header: str = "x-request-id",
        trust_incoming: bool = False,
        generator: Callable[[], str] | None = None,
    ) -> None:
        super().__init__(app)
        if not isinstance(header, str) or not re.fullmatch(r"[A-Za-z0-9-]+", header):
            raise OptionError("RequestId", "header", f"must be a header name, got {header!r}")
        if not isinstance(trust_incoming, bool):
            raise OptionError(
                "RequestId", "trust_incoming", f"must be a bool, got {trust_incoming!r}"
            )
        if generator is not None and not callable(generator):
            raise OptionError("RequestId", "generator", f"must be callable, got {generator!r}")
        self.header = header.lower()
        self.trust_incoming = trust_incoming
        self.generator = generator or _new_id

    def _id_for(self, scope: Scope) -> str:
        if self.trust_incoming:
            incoming = Headers.from_scope(scope).get(self.header)
            if incoming is not None and valid_request_id(incoming):
                return incoming
        value = str(self.generator())
        if not valid_request_id(value):
            raise ValueError(f"RequestId: the generator made an invalid id {value!r}")
        return value

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = self._id_for(scope)

        def echo(start: ResponseStart) -> None:
            start.headers[self.header] = rid

        token = request_id.set(rid)
        try:
            await self.app(
                copy_scope(scope, {"pagi.request_id": rid}),
                receive,
                intercept_start(send, echo, types=_STARTS),
            )
        finally:
            request_id.reset(token)
