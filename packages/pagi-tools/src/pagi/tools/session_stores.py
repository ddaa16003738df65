"""Server-side session stores: where :class:`~pagi.tools.middleware.session.Session` keeps data.

With a store, the session cookie (or header) carries only a random id and
the data stays on the server. A store is any object with three coroutines,
:class:`SessionStore`:

* ``load(session_id)`` -> the data dict, or ``None`` if unknown or expired;
* ``save(session_id, data, max_age)`` -> keep ``data`` for ``max_age``
  seconds (``None``: until deleted);
* ``delete(session_id)``.

Data is stored as JSON, so what a handler puts in a session must be
JSON-serialisable (the cookie store has the same rule).

:class:`MemoryStore` lives in one process (tests, a single worker).
:class:`RedisStore` is shared by every process that points at the same
Redis, and lets Redis expire old sessions.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from typing import Any, Protocol, runtime_checkable

from pagi.tools.redis_client import LazyRedis

__all__ = ["MemoryStore", "RedisStore", "SessionStore"]


@runtime_checkable
class SessionStore(Protocol):
    """What a session store provides."""

    async def load(self, session_id: str) -> dict[str, Any] | None:
        """The data saved under ``session_id``, or ``None``."""
        ...

    async def save(self, session_id: str, data: dict[str, Any], max_age: int | None) -> None:
        """Keep ``data`` under ``session_id`` for ``max_age`` seconds."""
        ...

    async def delete(self, session_id: str) -> None:
        """Forget ``session_id`` (no error if unknown)."""
        ...


class MemoryStore:
    """Sessions in this process's memory, at most ``max_sessions`` (oldest dropped first).

    Each instance has its own sessions; nothing is shared between
    processes, so use :class:`RedisStore` with several workers.
    """

    def __init__(self, max_sessions: int = 100_000) -> None:
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {max_sessions}")
        self.max_sessions = max_sessions
        # id -> (deadline or None, JSON text); JSON so a handler's later
        # changes to a dict never leak into the stored copy.
        self._data: OrderedDict[str, tuple[float | None, str]] = OrderedDict()

    async def load(self, session_id: str) -> dict[str, Any] | None:
        entry = self._data.get(session_id)
        if entry is None:
            return None
        deadline, text = entry
        if deadline is not None and time.monotonic() >= deadline:
            del self._data[session_id]
            return None
        self._data.move_to_end(session_id)
        data: dict[str, Any] = json.loads(text)
        return data

    async def save(self, session_id: str, data: dict[str, Any], max_age: int | None) -> None:
        deadline = None if max_age is None else time.monotonic() + max_age
        self._data[session_id] = (deadline, json.dumps(data, separators=(",", ":")))
        self._data.move_to_end(session_id)
        while len(self._data) > self.max_sessions:
            self._data.popitem(last=False)

    async def delete(self, session_id: str) -> None:
        self._data.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._data)


class RedisStore:
    """Sessions in Redis under ``prefix + id``, expired by Redis itself.

    ``RedisStore("redis://localhost:6379/0")`` or ``RedisStore(client=...)``
    with a ``redis.asyncio.Redis`` you manage. Needs the ``redis`` extra and
    asyncio (the redis client does not run on trio).
    """

    def __init__(
        self, url: str | None = None, *, client: Any = None, prefix: str = "pagi:session:"
    ) -> None:
        self.redis = LazyRedis("RedisStore", url, client)
        self.prefix = prefix

    async def load(self, session_id: str) -> dict[str, Any] | None:
        raw = await self.redis.get().get(self.prefix + session_id)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    async def save(self, session_id: str, data: dict[str, Any], max_age: int | None) -> None:
        text = json.dumps(data, separators=(",", ":"))
        await self.redis.get().set(self.prefix + session_id, text, ex=max_age)

    async def delete(self, session_id: str) -> None:
        await self.redis.get().delete(self.prefix + session_id)

    async def aclose(self) -> None:
        """Close the Redis connection pool this store opened."""
        await self.redis.aclose()
