"""A waiting primitive that costs nothing until somebody waits.

Every live WebSocket session and request holds a few "has this happened
yet?" flags. An ``anyio.Event`` allocates its waiter queue up front (about
750 bytes on asyncio, most of it an empty ``deque``), so a handful per
connection is several KiB of an idle connection's memory. A :class:`Flag`
is a boolean until a task actually waits on it; only then does it create
the event underneath.
"""

from __future__ import annotations

import anyio

__all__ = ["Flag"]


class Flag:
    """A one-way flag with an ``anyio.Event``'s ``set``/``is_set``/``wait``, built lazily."""

    __slots__ = ("_event", "_set")

    def __init__(self) -> None:
        self._set = False
        self._event: anyio.Event | None = None

    def set(self) -> None:
        """Raise the flag and wake every waiter (idempotent)."""
        if not self._set:
            self._set = True
            if self._event is not None:
                self._event.set()

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> None:
        """Return once the flag is raised (at once if it already is)."""
        if self._set:
            return
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()
