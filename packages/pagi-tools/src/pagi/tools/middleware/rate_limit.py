"""``RateLimit``: a token bucket per client, answered with 429 when it runs dry.

Each request takes one token from the bucket of its key (by default the
client address: put :class:`~pagi.tools.middleware.proxy_headers.ProxyHeaders`
outside it behind a proxy, or every client shares the proxy's bucket).
Buckets hold ``burst`` tokens and refill at ``rate`` per second (see
:mod:`pagi.tools.ratelimit_backends`). Allowed responses carry
``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset``;
refused ones are 429 with ``Retry-After`` as well. A refused WebSocket is
denied with 429 and a refused SSE stream declined with 429.

``key(scope)`` (sync or async) may return ``None`` to leave a request
unlimited. The default backend is a fresh
:class:`~pagi.tools.ratelimit_backends.MemoryBackend` for this instance;
pass a :class:`~pagi.tools.ratelimit_backends.RedisBackend` to share limits
between processes.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Awaitable, Callable, Iterable

from pagi.spec import App, Receive, Scope, Send
from pagi.tools.middleware.base import Middleware, OptionError, add_headers
from pagi.tools.pathmatch import PathMatcher
from pagi.tools.ratelimit_backends import (
    MemoryBackend,
    RateDecision,
    RateLimitBackend,
    RedisBackend,
)
from pagi.tools.response import PlainTextResponse

__all__ = [
    "MemoryBackend",
    "RateDecision",
    "RateLimit",
    "RateLimitBackend",
    "RedisBackend",
    "client_address",
]

KeyFunction = Callable[[Scope], str | None] | Callable[[Scope], Awaitable[str | None]]
_START_TYPES = ("http.response.start", "sse.start")


def client_address(scope: Scope) -> str | None:
    """The default key: the client's host, or ``None`` when the server does not know it."""
    client = scope.get("client")
    return str(client[0]) if client else None


class RateLimit(Middleware):
    """``RateLimit(app, rate=10.0, burst=20, key=None, backend=None, paths=None)``."""

    scope_types = ("http", "websocket", "sse")

    def __init__(
        self,
        app: App,
        rate: float = 10.0,
        burst: int = 20,
        key: KeyFunction | None = None,
        backend: RateLimitBackend | None = None,
        paths: Iterable[str | re.Pattern[str]] | None = None,
    ) -> None:
        super().__init__(app)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
            raise OptionError("RateLimit", "rate", "must be tokens per second (a number > 0)")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise OptionError("RateLimit", "burst", "must be an int >= 1")
        if key is not None and not callable(key):
            raise OptionError("RateLimit", "key", "must be a function (scope) -> str | None")
        if backend is not None and not callable(getattr(backend, "take", None)):
            raise OptionError("RateLimit", "backend", "must have an async take() method")
        self.rate = float(rate)
        self.burst = burst
        self.key: KeyFunction = key or client_address
        self.backend: RateLimitBackend = backend if backend is not None else MemoryBackend()
        self.paths = PathMatcher("RateLimit", "paths", paths)

    def headers(self, decision: RateDecision) -> list[tuple[str, str]]:
        """The ``RateLimit-*`` headers (and ``Retry-After`` when refused)."""
        headers = [
            ("ratelimit-limit", str(self.burst)),
            ("ratelimit-remaining", str(decision.remaining)),
            ("ratelimit-reset", str(math.ceil(decision.reset_after))),
        ]
        if not decision.allowed:
            headers.append(("retry-after", str(max(1, math.ceil(decision.retry_after)))))
        return headers

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.paths.matches(scope):
            await self.app(scope, receive, send)
            return
        key = self.key(scope)
        if inspect.isawaitable(key):
            key = await key
        if key is None:
            await self.app(scope, receive, send)
            return
        decision = await self.backend.take(str(key), self.rate, self.burst)
        headers = self.headers(decision)
        if not decision.allowed:
            await PlainTextResponse("Too Many Requests", 429, headers=headers)(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        pairs = [(name.encode("ascii"), value.encode("ascii")) for name, value in headers]
        limited_send = add_headers(send, pairs, types=_START_TYPES, mode="replace")
        await self.app(scope, receive, limited_send)
