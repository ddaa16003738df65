"""One way to get a Redis client for the toolkit's shared-state backends.

The session store and the rate-limit backend keep state in Redis so that
several server processes share it. Both use the ``redis`` package's
asyncio client, installed with the ``redis`` extra
(``pip install 'pagi-tools[redis]'``) and imported only when a Redis
backend is built. That client runs on asyncio only: on trio the backends
raise a :class:`RuntimeError` saying so rather than failing deep inside.

A client built from a URL is created lazily on first use, inside the event
loop that serves requests (an asyncio client is bound to its loop).
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["LazyRedis"]


class LazyRedis:
    """A ``redis.asyncio.Redis`` made from ``url`` on first use, or the ``client`` given."""

    def __init__(self, owner: str, url: str | None, client: Any = None) -> None:
        if (url is None) == (client is None):
            raise TypeError(f"{owner} needs exactly one of url and client=")
        if url is not None:
            try:
                import redis.asyncio  # noqa: F401  (checked here, used in get())
            except ImportError:
                raise ImportError(
                    f"{owner} needs the redis client: pip install 'pagi-tools[redis]'"
                ) from None
        self.owner = owner
        self.url = url
        self._client = client
        self._owned = client is None

    def get(self) -> Any:
        """The client; raises ``RuntimeError`` when not running on asyncio."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                f"{self.owner} uses the redis asyncio client, which runs on asyncio only "
                "(not trio); run the server on asyncio or use a memory backend"
            ) from None
        if self._client is None:
            import redis.asyncio

            self._client = redis.asyncio.from_url(str(self.url))
        return self._client

    async def aclose(self) -> None:
        """Close a client this object created (a client passed in is the caller's)."""
        client, self._client = self._client, None
        if client is not None and self._owned:
            await client.aclose()
        elif not self._owned:
            self._client = client
