"""The ``pagi.transport`` handle: an application's view of its outbound buffer.

:class:`TransportHandle` is the per-scope object exposed as
``scope["pagi.transport"]`` (R-FLOW-*). It reads the connection's outbound
buffer (``net.outbox``) through the small :class:`BufferView` interface,
so the streams that hand it to applications never depend on the socket
layer. Its callbacks fire on edges with hysteresis: ``on_high_water`` once
per upward crossing (immediately if registered while above), ``on_drain``
once per fall below the low mark after a high (R-FLOW-14..17). Callbacks get
no arguments and a raising callback is logged, never propagated into the
writer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

__all__ = ["BufferView", "TransportHandle"]

log = logging.getLogger("pagi.server")


class BufferView(Protocol):
    """What the handle reads of an outbound buffer."""

    @property
    def buffered(self) -> int: ...

    @property
    def high(self) -> int: ...

    @property
    def low(self) -> int: ...


class TransportHandle:
    """``scope["pagi.transport"]``: read-only flow-control view for one scope."""

    __slots__ = ("_above", "_drain_cbs", "_high_cbs", "_outbox")

    def __init__(self, outbox: BufferView) -> None:
        self._outbox = outbox
        self._high_cbs: list[Callable[[], object]] = []
        self._drain_cbs: list[Callable[[], object]] = []
        self._above = False

    def buffered_amount(self) -> int:
        """Bytes accepted from the app that have not reached the socket yet."""
        return self._outbox.buffered

    def high_water_mark(self) -> int:
        """At or above this many buffered bytes, ``send`` blocks."""
        return self._outbox.high

    def low_water_mark(self) -> int:
        """A blocked ``send`` resumes once the buffer falls below this."""
        return self._outbox.low

    def on_high_water(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` at each upward crossing of the high mark."""
        self._high_cbs.append(callback)
        if self._above:
            _call(callback)

    def on_drain(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` whenever the buffer falls below the low mark after a high."""
        self._drain_cbs.append(callback)

    def _update(self, buffered: int) -> None:
        if not self._above and buffered >= self._outbox.high:
            self._above = True
            for cb in tuple(self._high_cbs):
                _call(cb)
        elif self._above and buffered < self._outbox.low:
            self._above = False
            for cb in tuple(self._drain_cbs):
                _call(cb)


def _call(callback: Callable[[], object]) -> None:
    try:
        callback()
    except Exception:
        log.exception("pagi.transport callback %r raised", callback)
