"""Waiting primitives cheaper than ``anyio.Event`` where the server waits most.

Every live WebSocket session and request holds a few "has this happened
yet?" flags. An ``anyio.Event`` allocates its waiter queue up front (about
750 bytes on asyncio, most of it an empty ``deque``), so a handful per
connection is several KiB of an idle connection's memory. A :class:`Flag`
is a boolean until a task actually waits on it; only then does it create
the event underneath.

A :class:`Wakeup` serves the one-waiter case on the hot path: a stream's
``receive`` waiting for the next message or body chunk, once per message.
On asyncio it is a bare future (no lock, no waiter queue, no loop lookup on
``set``); elsewhere an ``anyio.Event``. Cancellation works as for any
awaited future.
"""

from __future__ import annotations

import asyncio

import anyio

__all__ = ["Flag", "Wakeup"]


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


class Wakeup:
    """One task's wake-up call: created by the waiter, set (at most once) by anyone.

    Strictly one waiter: a task cancelled while waiting cancels the future,
    which another task awaiting the same future would see as its own
    cancellation. Where several tasks may wait, use ``anyio.Event``.
    """

    __slots__ = ("_event", "_future")

    def __init__(self) -> None:
        try:
            self._future: asyncio.Future[None] | None = asyncio.get_running_loop().create_future()
            self._event: anyio.Event | None = None
        except RuntimeError:  # not on asyncio (trio)
            self._future = None
            self._event = anyio.Event()

    def set(self) -> None:
        future = self._future
        if future is not None:
            if not future.done():
                future.set_result(None)
        else:
            assert self._event is not None
            self._event.set()

    async def wait(self) -> None:
        if self._future is not None:
            await self._future
        else:
            assert self._event is not None
            await self._event.wait()
