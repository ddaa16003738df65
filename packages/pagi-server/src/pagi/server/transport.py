"""Outbound byte buffer with watermarks, and the ``pagi.transport`` handle.

Theory of operation
-------------------
Every connection owns one :class:`Outbox`. Applications never write to a
socket: their ``send`` serialises an event to bytes and appends them to the
outbox, which returns at once unless the buffer holds ``high`` bytes or more;
then it blocks until a writer brings it below ``low`` (R-FLOW-12). This is
what keeps a slow reader from growing the server's memory without bound: per
connection the server holds at most ``high`` bytes plus one chunk the app is
handing over.

Bytes leave the buffer in one of two ways. Whoever needs them on the wire now
(the end of a response, a flush) calls :meth:`Outbox.flush`, which writes
inline in the caller's task; the common request/response path therefore costs
no task switch. Anything written while nobody flushes is picked up by the
connection's writer task (:meth:`Outbox.run`). A flag serialises the two so
bytes always leave in order and never interleave.

A failed or timed-out write marks the outbox broken with the matching
disconnect reason (``write_error`` / ``write_timeout``); later writes are
silently dropped (R-CORE-53) and every waiter is released.

Every wait respects the watermark, the end of a response included:
:meth:`Outbox.flush` also blocks while the buffer is above the high mark, so
a client that pipelines requests and never reads cannot make the server
answer more of them than the buffer holds. And bytes never outlive their
connection: :meth:`Outbox.close` closes the stream only once everything has
left the process, and resets it if the write timeout passes first. Until it
returns the owner stays in the server's registry, so it counts toward
``max_connections`` and the ticker's :meth:`Outbox.check_write_timeout`
bounds the wait.

:class:`TransportHandle` is the per-scope view exposed as
``scope["pagi.transport"]``. Its callbacks fire on edges with hysteresis:
``on_high_water`` once per upward crossing (immediately if registered while
above), ``on_drain`` once per fall below the low mark after a high
(R-FLOW-14..17). Callbacks get no arguments and a raising callback is logged,
never propagated into the writer.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from pagi.server.io import TransportStream, carrier_of, reset_on_close
from pagi.spec import DisconnectReason

__all__ = ["Outbox", "TransportHandle"]

log = logging.getLogger("pagi.server")


class TransportHandle:
    """``scope["pagi.transport"]``: read-only flow-control view for one scope."""

    __slots__ = ("_above", "_drain_cbs", "_high_cbs", "_outbox")

    def __init__(self, outbox: Outbox) -> None:
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


class Outbox:
    """A connection's outbound buffer; see the module docstring."""

    __slots__ = (
        "_below_low",
        "_carrier",
        "_chunks",
        "_direct",
        "_handle",
        "_idle",
        "_queued",
        "_sending",
        "_stream",
        "_wakeup",
        "_write_timeout",
        "_writer_running",
        "broken",
        "high",
        "inflight",
        "low",
        "on_broken",
        "spawn",
        "write_started",
    )

    def __init__(
        self,
        stream: anyio.abc.ByteSendStream,
        *,
        high: int,
        low: int,
        write_timeout: float,
    ) -> None:
        self._stream = stream
        self.high = high
        self.low = low
        self._write_timeout = write_timeout or None
        self._chunks: list[bytes] = []
        self._queued = 0
        self.inflight = 0
        self._sending = False
        self._wakeup: anyio.Event | None = None
        self._idle: anyio.Event | None = None
        self._below_low: anyio.Event | None = None
        self._handle: TransportHandle | None = None
        #: ``time.monotonic()`` when the write in progress began, else ``None``.
        self.write_started: float | None = None
        #: ``None`` while healthy, else the disconnect reason of the failure.
        self.broken: str | None = None
        #: Called once with the reason when a write fails.
        self.on_broken: Callable[[str], None] | None = None
        #: Starts the writer task when first needed (a task group's ``start_soon``).
        self.spawn: Callable[[Callable[[], Coroutine[Any, Any, None]]], object] | None = None
        self._writer_running = False
        # On asyncio the connection's transport buffer, with the same
        # watermarks, is the outbound buffer: writes cost no task switch.
        self._direct: TransportStream | None = None
        if isinstance(stream, TransportStream):
            self._direct = stream
            stream.set_write_limits(high, low, self._after_progress)
        # The transport at the bottom (under TLS too): its buffer must be empty
        # before the connection may close.
        self._carrier = carrier_of(stream)

    @property
    def direct(self) -> bool:
        """True when writes go straight to a transport buffer (never a writer task)."""
        return self._direct is not None

    @property
    def buffered(self) -> int:
        """Bytes queued plus bytes being written right now."""
        if self._direct is not None:
            return self._direct.write_buffered
        return self._queued + self.inflight

    def handle(self) -> TransportHandle:
        """A fresh ``pagi.transport`` handle; the outbox reports to the newest one."""
        self._handle = TransportHandle(self)
        return self._handle

    def write_nowait(self, data: bytes, *, wake: bool = True) -> None:
        """Queue ``data`` without waiting on the watermark (server-owned bytes).

        ``wake=False`` is for callers about to :meth:`flush` themselves: the
        writer task is left asleep, saving a task switch per response.
        """
        if self.broken is not None or not data:
            return
        direct = self._direct
        if direct is not None:
            if not direct.write_nowait(data):
                self._break(DisconnectReason.WRITE_ERROR)
            elif self._handle is not None:
                self._handle._update(direct.write_buffered)
            return
        self._chunks.append(data)
        self._queued += len(data)
        if self._handle is not None:
            self._handle._update(self.buffered)
        if wake and not self._sending:
            self._wake_writer()

    def _wake_writer(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
        elif not self._writer_running and self.spawn is not None:
            # The writer task is started on first need: most connections
            # never write while nobody flushes, and an idle keep-alive
            # connection should cost as little memory as possible.
            self._writer_running = True
            self.spawn(self.run)

    async def write(self, data: bytes) -> None:
        """Queue ``data``; block while the buffer is at or above the high mark."""
        direct = self._direct
        if direct is not None:
            self.write_nowait(data)
            if direct.write_paused and self.broken is None:
                await direct.wait_writable()
                self._after_progress()
            return
        self.write_nowait(data, wake=False)
        if self._sending:
            pass  # the task writing now picks these bytes up too
        elif self.buffered >= self.high:
            # A large write: hand it to the socket in this task rather than
            # waking the writer and waiting for it (two task switches per chunk
            # of a streamed body). This blocks only as long as the socket does.
            await self._send_pending()
        elif self._chunks:
            self._wake_writer()
        while self.buffered >= self.high and self.broken is None:
            if self._below_low is None:
                self._below_low = anyio.Event()
            await self._below_low.wait()

    async def flush(self) -> None:
        """Return once everything queued so far has been handed to the socket.

        With a transport-backed stream the bytes were handed over when written;
        this then waits only while the buffer is above the high mark (until it
        falls below the low one), like :meth:`write`.
        """
        direct = self._direct
        if direct is not None:
            if direct.write_paused and self.broken is None:
                await direct.wait_writable()
                self._after_progress()
            return
        while self.broken is None and (self._chunks or self._sending):
            if self._sending:
                if self._idle is None:
                    self._idle = anyio.Event()
                await self._idle.wait()
            else:
                await self._send_pending()

    async def _send_pending(self) -> None:
        self._sending = True
        try:
            while self._chunks and self.broken is None:
                data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
                self._chunks.clear()
                self.inflight = len(data)
                self._queued -= self.inflight
                self.write_started = time.monotonic()
                try:
                    await self._stream.send(data)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    self._break(DisconnectReason.WRITE_ERROR)
                finally:
                    self.write_started = None
                    self.inflight = 0
                    self._after_progress()
        finally:
            self._sending = False
            if self._idle is not None:
                self._idle.set()
                self._idle = None

    def check_write_timeout(self, now: float) -> None:
        """Reset a connection whose writes are stuck longer than ``write_timeout`` (the ticker).

        Stuck means a send in progress (``write_started``) or a transport
        paused above its high mark, which includes :meth:`close` waiting
        for the last bytes. No per-write timer is needed on the hot path.
        """
        timeout = self._write_timeout
        if timeout is None or self.broken is not None:
            return
        stuck = self.write_started
        carrier = self._carrier
        if carrier is not None:
            paused = carrier.write_paused_since
            if paused is not None and (stuck is None or paused < stuck):
                stuck = paused
        if stuck is not None and now - stuck >= timeout:
            self._break(DisconnectReason.WRITE_TIMEOUT)
            self._cut()

    def _cut(self) -> None:
        """Reset the connection: wakes a blocked send on either backend, frees every buffer."""
        if self._carrier is not None:
            self._carrier.abort()
            return
        raw = self._stream.extra(SocketAttribute.raw_socket, None)
        if raw is not None:
            reset_on_close(raw)
            try:
                raw.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    async def close(self) -> None:
        """Deliver everything, then close the stream; reset it if that cannot be done.

        The caller shields this and keeps its connection in the registry until
        it returns (see the module docstring); the write timeout ends the wait.
        """
        await self.flush()
        carrier = self._carrier
        if carrier is not None and self.broken is None:
            await carrier.wait_flushed()
            self._after_progress()
        if self.broken is not None:
            self._cut()
        try:
            await self._stream.aclose()
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    def _after_progress(self) -> None:
        direct = self._direct
        if direct is not None and direct.lost and self.broken is None:
            self._break(DisconnectReason.WRITE_ERROR)
        buffered = self.buffered
        if self._handle is not None:
            self._handle._update(buffered)
        if self._below_low is not None and (buffered < self.low or self.broken is not None):
            self._below_low.set()
            self._below_low = None

    def _break(self, reason: str) -> None:
        if self.broken is not None:
            return
        self.broken = reason
        self._chunks.clear()
        self._queued = 0
        if self.on_broken is not None:
            self.on_broken(reason)

    def abort(self, reason: str) -> None:
        """Drop everything queued, refuse further writes and reset the connection."""
        self._break(reason)
        self._cut()
        self._after_progress()
        if self._wakeup is not None:
            self._wakeup.set()

    async def run(self) -> None:
        """The writer task: send whatever is queued while nobody else flushes."""
        self._writer_running = True
        try:
            while self.broken is None:
                if self._chunks and not self._sending:
                    await self._send_pending()
                    continue
                self._wakeup = anyio.Event()
                await self._wakeup.wait()
                self._wakeup = None
        finally:
            self._writer_running = False
            self._wakeup = None
