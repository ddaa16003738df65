"""``HTTPSRedirect``: send plain-text clients to the encrypted URL, and keep them there.

An ``http`` request is redirected to ``https`` (a ``ws`` handshake is
denied with a redirect to ``wss``, an ``sse`` stream declined with one),
keeping host, path and query; port 80 is dropped, any other port kept.
Paths in ``exclude`` (exact strings or compiled patterns, matched against
the whole path) are served as they are, which suits health checks from a
load balancer that speaks plain HTTP. With ``hsts_max_age`` set, secure
responses get ``Strict-Transport-Security`` unless the app set one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.datastructures import URL
from pagi.tools.middleware.base import Middleware, OptionError, add_headers
from pagi.tools.response import RedirectResponse

__all__ = ["HTTPSRedirect"]

_REDIRECT_STATUSES = (301, 302, 303, 307, 308)
_SECURE = {"http": "https", "ws": "wss"}
#: A year: what browsers' preload lists ask for.
_PRELOAD_MIN_AGE = 31536000
_START_TYPES = ("http.response.start", "sse.start", "sse.http.response.start")


class HTTPSRedirect(Middleware):
    """``HTTPSRedirect(app, status=308, hsts_max_age=None, include_subdomains=False, ...)``."""

    scope_types = ("http", "websocket", "sse")

    def __init__(
        self,
        app: App,
        status: int = 308,
        hsts_max_age: int | None = None,
        include_subdomains: bool = False,
        preload: bool = False,
        exclude: Iterable[str | re.Pattern[str]] = (),
    ) -> None:
        super().__init__(app)
        if status not in _REDIRECT_STATUSES:
            raise OptionError("HTTPSRedirect", "status", f"must be one of {_REDIRECT_STATUSES}")
        if hsts_max_age is not None and (
            isinstance(hsts_max_age, bool) or not isinstance(hsts_max_age, int) or hsts_max_age < 0
        ):
            raise OptionError("HTTPSRedirect", "hsts_max_age", "must be seconds (an int >= 0)")
        if (include_subdomains or preload) and hsts_max_age is None:
            name = "preload" if preload else "include_subdomains"
            raise OptionError("HTTPSRedirect", name, "needs hsts_max_age")
        if preload and (not include_subdomains or (hsts_max_age or 0) < _PRELOAD_MIN_AGE):
            raise OptionError(
                "HTTPSRedirect",
                "preload",
                f"needs include_subdomains=True and hsts_max_age >= {_PRELOAD_MIN_AGE}",
            )
        if isinstance(exclude, str):
            raise OptionError("HTTPSRedirect", "exclude", "must be a list of paths or patterns")
        self.status = status
        self.exact: set[str] = set()
        self.patterns: list[re.Pattern[str]] = []
        for item in exclude:
            if isinstance(item, re.Pattern):
                self.patterns.append(item)
            elif isinstance(item, str) and item.startswith("/"):
                self.exact.add(item)
            else:
                raise OptionError(
                    "HTTPSRedirect", "exclude", f"has {item!r}; use '/paths' or re.compile(...)"
                )
        self.hsts: bytes | None = None
        if hsts_max_age is not None:
            value = f"max-age={hsts_max_age}"
            if include_subdomains:
                value += "; includeSubDomains"
            if preload:
                value += "; preload"
            self.hsts = value.encode("ascii")

    def _excluded(self, scope: Scope) -> bool:
        path = str(scope.get("root_path", "")) + str(scope.get("path", "/"))
        return path in self.exact or any(p.fullmatch(path) for p in self.patterns)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        scheme = scope.get("scheme") or ("ws" if scope["type"] == "websocket" else "http")
        if scheme in _SECURE:
            if self._excluded(scope):
                await self.app(scope, receive, send)
                return
            url = URL.from_scope(scope)
            netloc = url.netloc
            if url.port == 80:
                netloc = netloc.rsplit(":", 1)[0]
            target = url.replace(scheme=_SECURE[scheme], netloc=netloc)
            await RedirectResponse(str(target), self.status)(scope, receive, send)
            return
        if self.hsts is None:
            await self.app(scope, receive, send)
            return
        hsts = [(b"strict-transport-security", self.hsts)]
        await self.app(scope, receive, add_headers(send, hsts, types=_START_TYPES, mode="missing"))
