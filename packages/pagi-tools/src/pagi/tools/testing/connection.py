"""Test doubles for ``pagi.connection`` and ``pagi.transport``.

:class:`FakeConnection` implements the whole connection-state contract so
that code relying on it can be tested without a server:

* exactly one of ``on_disconnect`` / ``on_complete`` fires per request
  (R-CONN-10, R-CONN-11), and a callback registered after the fact runs at
  once if its outcome already happened (R-CONN-12, R-CONN-13);
* an abnormal end updates state in the order R-CONN-40 fixes:
  ``is_connected`` false, then the reason, then ``disconnect_future``, then
  the callbacks in registration order, then ``http.disconnect`` on the
  receive queue (the ``enqueue`` hook);
* a successful end keeps the reason ``None`` and never resolves the future
  (R-CONN-20, R-CONN-41); ``is_connected`` is false after either end, as on
  the server (decision on A-39), and never comes back (R-CONN-32).

:class:`FakeTransport` has watermarks with the hysteresis of R-FLOW-14..17;
tests move the buffer with :meth:`FakeTransport.set_buffered`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any

import anyio

__all__ = ["FakeConnection", "FakeTransport"]


class _ReasonAwaitable:
    """Resolves with the disconnect reason; never on success (R-CONN-20)."""

    def __init__(self, connection: FakeConnection) -> None:
        self._connection = connection

    def __await__(self) -> Generator[Any, None, str]:
        return self._wait().__await__()

    async def _wait(self) -> str:
        conn = self._connection
        if conn._reason is None:
            if conn._event is None:
                conn._event = anyio.Event()
            await conn._event.wait()
        return conn._reason or ""


class FakeConnection:
    """A ``pagi.connection`` object driven by the test client (or by a test)."""

    def __init__(self) -> None:
        self._connected = True
        self._reason: str | None = None
        self._started = False
        self._complete = False
        self._on_disconnect: list[Callable[[str], object]] = []
        self._on_complete: list[Callable[[], object]] = []
        self._event: anyio.Event | None = None
        #: Every state change, in order, for tests of R-CONN-40 itself.
        self.log: list[str] = []

    # -- the ConnectionState protocol -------------------------------------

    def is_connected(self) -> bool:
        """True until the request ends (never true again)."""
        return self._connected

    def disconnect_reason(self) -> str | None:
        """The reason of an abnormal end, else ``None``."""
        return self._reason

    def on_disconnect(self, callback: Callable[[str], object]) -> None:
        """Register ``callback(reason)`` for an abnormal end (runs at once if it happened)."""
        if self._reason is not None:
            callback(self._reason)
        elif not self._complete:
            self._on_disconnect.append(callback)

    def on_complete(self, callback: Callable[[], object]) -> None:
        """Register ``callback()`` for a successful end (runs at once if it happened)."""
        if self._complete:
            callback()
        elif self._reason is None:
            self._on_complete.append(callback)

    def response_started(self) -> bool:
        """True once ``http.response.start`` was processed."""
        return self._started

    def response_complete(self) -> bool | None:
        """True once the response was fully sent."""
        return self._complete

    def disconnect_future(self) -> Awaitable[str] | None:
        """An awaitable of the disconnect reason; never resolves on success."""
        return _ReasonAwaitable(self)

    # -- driven by the client ----------------------------------------------

    def mark_started(self) -> None:
        """``http.response.start`` was processed (by the app or a backstop)."""
        self._started = True

    def mark_complete(self) -> None:
        """The response was fully delivered: run ``on_complete`` callbacks once."""
        if self._complete or self._reason is not None:
            return
        self._complete = True
        self._connected = False  # the request is over (decision on A-39), as on the server
        self.log.append("complete")
        callbacks, self._on_complete, self._on_disconnect = self._on_complete, [], []
        for callback in callbacks:
            callback()

    def mark_disconnected(self, reason: str, enqueue: Callable[[], None] | None = None) -> None:
        """An abnormal end with ``reason``, in the R-CONN-40 order. Later calls are ignored."""
        if self._reason is not None or self._complete:
            if self._complete and self._connected:
                # After a normal completion the request is over; a late socket
                # close changes nothing the app can observe but is_connected.
                self._connected = False
            return
        self._connected = False
        self.log.append("is_connected=False")
        self._reason = reason
        self.log.append(f"reason={reason}")
        if self._event is not None:
            self._event.set()
        self.log.append("future")
        callbacks, self._on_disconnect, self._on_complete = self._on_disconnect, [], []
        for callback in callbacks:
            callback(reason)
        self.log.append("on_disconnect")
        if enqueue is not None:
            enqueue()
            self.log.append("enqueue")


class FakeTransport:
    """A ``pagi.transport`` handle whose buffer level a test controls."""

    def __init__(
        self, high_water_mark: int | None = 65536, low_water_mark: int | None = 16384
    ) -> None:
        self._buffered = 0
        self._high = high_water_mark
        self._low = low_water_mark
        self._above = False
        self._on_high: list[Callable[[], object]] = []
        self._on_drain: list[Callable[[], object]] = []

    def buffered_amount(self) -> int:
        """The buffer level a test set."""
        return self._buffered

    def high_water_mark(self) -> int | None:
        """The high mark."""
        return self._high

    def low_water_mark(self) -> int | None:
        """The low mark."""
        return self._low

    def on_high_water(self, callback: Callable[[], object]) -> None:
        """Register a callback for upward crossings."""
        self._on_high.append(callback)
        if self._above:
            callback()  # already at or above the mark (R-FLOW-14)

    def on_drain(self, callback: Callable[[], object]) -> None:
        """Register a callback for drains after a high."""
        self._on_drain.append(callback)  # never fires just for being low (R-FLOW-15)

    def set_buffered(self, amount: int) -> None:
        """Move the buffer level, firing callbacks on crossings (R-FLOW-16)."""
        self._buffered = amount
        if not self._above and self._high is not None and amount >= self._high:
            self._above = True
            for callback in list(self._on_high):
                callback()
        elif self._above and self._low is not None and amount < self._low:
            self._above = False
            for callback in list(self._on_drain):
                callback()
