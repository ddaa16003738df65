"""``Throttle``: a token bucket in front of an app, one bucket for everyone by default.

Built on :class:`~pagi.tools.middleware.rate_limit.RateLimit` and its
backends: a per-instance bounded memory backend by default, or a
:class:`~pagi.tools.ratelimit_backends.RedisBackend` shared by every
process. Refused requests get 429 with ``Retry-After`` (WebSockets are
denied with 429, SSE streams declined with 429).
"""

from __future__ import annotations

from pagi.spec import App, Scope
from pagi.tools.middleware.rate_limit import KeyFunction, RateLimit
from pagi.tools.ratelimit_backends import RateLimitBackend

__all__ = ["Throttle"]


def _one_bucket(scope: Scope) -> str:
    return "throttle"


class Throttle(RateLimit):
    """``Throttle(app, rate=10.0, burst=None, key=None, backend=None)``.

    ``burst`` defaults to ``rate`` (rounded up); ``key(scope)`` picks the
    bucket (default: one shared bucket; return ``None`` to let a request
    through unthrottled).
    """

    def __init__(
        self,
        app: App,
        rate: float = 10.0,
        burst: int | None = None,
        key: KeyFunction | None = None,
        backend: RateLimitBackend | None = None,
    ) -> None:
        if burst is None:
            burst = max(1, int(-(-float(rate) // 1))) if isinstance(rate, (int, float)) else 1
        super().__init__(app, rate=rate, burst=burst, key=key or _one_bucket, backend=backend)
