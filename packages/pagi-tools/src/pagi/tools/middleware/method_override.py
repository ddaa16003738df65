"""MethodOverride: let HTML forms and limited clients PUT, PATCH and DELETE through POST.

Only a POST is changed. The new method comes from the ``header`` (default
``X-HTTP-Method-Override``), then the ``param`` in the query string, then
the same field of an ``application/x-www-form-urlencoded`` body (read up
to ``max_size`` bytes and replayed to the app unchanged). It must be one
of ``allowed``; anything else leaves the request a POST. The app sees a
scope copy with the new ``method`` and ``pagi.original_method`` ``POST``.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.headers import Headers
from pagi.tools.middleware.base import (
    Middleware,
    OptionError,
    copy_scope,
    read_body,
    replay_receive,
)

__all__ = ["MethodOverride"]

_FORM = "application/x-www-form-urlencoded"


class MethodOverride(Middleware):
    """``MethodOverride(app, header=..., param="_method", allowed=("PUT", "PATCH", "DELETE"))``."""

    def __init__(
        self,
        app: App,
        header: str | None = "x-http-method-override",
        param: str | None = "_method",
        allowed: Iterable[str] = ("PUT", "PATCH", "DELETE"),
        *,
        max_size: int = 1024 * 1024,
    ) -> None:
        super().__init__(app)
        if header is not None and (not isinstance(header, str) or not header):
            raise OptionError("MethodOverride", "header", f"must be a header name, got {header!r}")
        if param is not None and (not isinstance(param, str) or not param):
            raise OptionError("MethodOverride", "param", f"must be a field name, got {param!r}")
        if isinstance(allowed, str):
            raise OptionError(
                "MethodOverride", "allowed", "must be a list of methods, not a string"
            )
        self.allowed = frozenset(str(m).upper() for m in allowed)
        if not self.allowed or not all(m.isalpha() for m in self.allowed):
            raise OptionError("MethodOverride", "allowed", f"must list methods, got {allowed!r}")
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0:
            raise OptionError(
                "MethodOverride", "max_size", f"must be an int >= 0, got {max_size!r}"
            )
        self.header = header.lower() if header else None
        self.param = param
        self.max_size = max_size

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        headers = Headers.from_scope(scope)
        wanted = headers.get(self.header) if self.header else None
        if wanted is None and self.param:
            query = bytes(scope.get("query_string", b"")).decode("latin-1")
            wanted = dict(parse_qsl(query)).get(self.param)
        kind = (headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        if wanted is None and self.param and kind == _FORM:
            body = await read_body(receive, self.max_size)
            receive = replay_receive(body, receive)
            wanted = dict(parse_qsl(body.decode("latin-1"))).get(self.param)
        if wanted is None or wanted.upper() not in self.allowed:
            await self.app(scope, receive, send)
            return
        scope = copy_scope(scope, {"pagi.original_method": "POST"}, method=wanted.upper())
        await self.app(scope, receive, send)
