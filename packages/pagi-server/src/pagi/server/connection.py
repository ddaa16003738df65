"""``pagi.connection``: the per-request connection state object.

Theory of operation
-------------------
One :class:`RequestConnection` is made for each ``http`` request (a fresh
one per keep-alive request and per HTTP/2 stream, R-CONN-16) and put in the
scope before the app runs, so every middleware layer shares it (R-MW-8).

A request ends exactly one way (R-CONN-10/11):

* **complete**: the final body or trailers went out. ``on_complete``
  callbacks run in registration order; ``disconnect_reason()`` stays
  ``None``; the disconnect future never resolves (R-CONN-41, R-CONN-20).
* **disconnected**: anything abnormal. The steps run in the order R-CONN-40
  fixes: ``is_connected()`` turns false, the reason is set, the future
  resolves, ``on_disconnect`` callbacks run, and finally the stream's hook
  queues ``http.disconnect`` for ``receive``.

Whichever comes first wins; the other is ignored. Callbacks registered after
the end run at once if they match the way it ended, never otherwise. After a
successful completion ``is_connected()`` is false too: the object describes
the request, and the request is over (decision on A-39).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from typing import Any

import anyio

__all__ = ["RequestConnection"]

log = logging.getLogger("pagi.server")


class _DisconnectWaiter:
    """Awaitable returned by ``disconnect_future()``; works on asyncio and trio."""

    __slots__ = ("_conn",)

    def __init__(self, conn: RequestConnection) -> None:
        self._conn = conn

    def __await__(self) -> Generator[Any, None, str]:
        return self._wait().__await__()

    async def _wait(self) -> str:
        conn = self._conn
        if conn._reason is None:
            if conn._event is None:
                conn._event = anyio.Event()
            await conn._event.wait()
        assert conn._reason is not None
        return conn._reason

    def done(self) -> bool:
        """True once the request has ended abnormally."""
        return self._conn._reason is not None


class RequestConnection:
    """The ``pagi.connection`` object of one HTTP request."""

    __slots__ = (
        "_complete",
        "_complete_cbs",
        "_disconnect_cbs",
        "_ended",
        "_event",
        "_reason",
        "_started",
        "on_disconnected",
    )

    def __init__(self) -> None:
        self._ended = False
        self._reason: str | None = None
        self._started = False
        self._complete = False
        self._disconnect_cbs: list[Callable[[str], object]] = []
        self._complete_cbs: list[Callable[[], object]] = []
        self._event: anyio.Event | None = None
        #: Step 5 of R-CONN-40: the stream queues ``http.disconnect``.
        self.on_disconnected: Callable[[str], None] | None = None

    # --- the application's side -------------------------------------------------
    def is_connected(self) -> bool:
        """True while the request is in progress; never true again once false."""
        return not self._ended

    def disconnect_reason(self) -> str | None:
        """The standard reason after an abnormal end; ``None`` otherwise."""
        return self._reason

    def on_disconnect(self, callback: Callable[[str], object]) -> None:
        """Run ``callback(reason)`` on an abnormal end (at once if it already ended so)."""
        if self._reason is not None:
            _run(callback, self._reason)
        elif not self._ended:
            self._disconnect_cbs.append(callback)

    def on_complete(self, callback: Callable[[], object]) -> None:
        """Run ``callback()`` once the response is fully sent (at once if it already is)."""
        if self._complete and self._reason is None:
            _run(callback)
        elif not self._ended:
            self._complete_cbs.append(callback)

    def response_started(self) -> bool:
        """True once ``http.response.start`` was processed, by the app or the server."""
        return self._started

    def response_complete(self) -> bool:
        """True once the final body (or trailers) has been written."""
        return self._complete

    def disconnect_future(self) -> _DisconnectWaiter:
        """Awaitable that resolves with the reason on an abnormal end, never on success."""
        return _DisconnectWaiter(self)

    # --- the server's side ----------------------------------------------------------
    def mark_started(self) -> None:
        self._started = True

    def mark_complete(self) -> None:
        """The response went out whole: run ``on_complete`` callbacks (R-CONN-41)."""
        if self._ended:
            return
        self._ended = True
        self._complete = True
        callbacks, self._complete_cbs = self._complete_cbs, []
        self._disconnect_cbs = []
        for cb in callbacks:
            _run(cb)

    def mark_disconnected(self, reason: str) -> None:
        """An abnormal end, in the order R-CONN-40 fixes."""
        if self._ended:
            return
        self._ended = True  # (1) is_connected() -> false
        self._reason = reason  # (2) disconnect_reason()
        if self._event is not None:  # (3) the future resolves
            self._event.set()
        callbacks, self._disconnect_cbs = self._disconnect_cbs, []
        self._complete_cbs = []
        for cb in callbacks:  # (4) callbacks, in registration order
            _run(cb, reason)
        if self.on_disconnected is not None:  # (5) http.disconnect is queued
            self.on_disconnected(reason)


def _run(callback: Callable[..., object], *args: Any) -> None:
    try:
        callback(*args)
    except Exception:
        log.exception("pagi.connection callback %r raised", callback)
