"""A connection's outbound byte buffer with watermarks: one interface, two strategies.

Theory of operation
-------------------
Every connection owns one :class:`Outbox`. Applications never write to a
socket: their ``send`` serialises an event to bytes and appends them to the
outbox, which returns at once unless the buffer holds ``high`` bytes or more;
then it blocks until the bytes drain below ``low`` (R-FLOW-12). This is what
keeps a slow reader from growing the server's memory without bound: per
connection the server holds at most ``high`` bytes plus one chunk the app is
handing over.

There are two ways to hold those bytes, chosen once per connection by
:meth:`Outbox.open`:

* :class:`TransportOutbox`, on asyncio (and uvloop): the connection's
  transport buffer *is* the outbox, with the server's watermarks set on it
  (``net.stream.TransportStream``). A write is one ``transport.write``; no
  writer task exists and no task switch happens on the request path.
* :class:`StreamOutbox`, for any other anyio byte stream (trio, TLS over
  trio): a list of chunks. Whoever needs bytes on the wire now (the end of a
  response, a flush) writes them inline in its own task; anything written
  while nobody flushes is picked up by a writer task (:meth:`Outbox.run`)
  started on first need through the task group lent by the connection
  (:attr:`Outbox.spawn`). A flag serialises the two so bytes leave in order.

Shared by both: a failed or timed-out write marks the outbox broken with the
matching disconnect reason (``write_error`` / ``write_timeout``); later
writes are silently dropped (R-CORE-53) and every waiter is released. Every
wait respects the watermark, the end of a response included:
:meth:`Outbox.flush` also blocks while the buffer is above the high mark, so
a client that pipelines requests and never reads cannot make the server
answer more of them than the buffer holds. And bytes never outlive their
connection: :meth:`Outbox.close` closes the stream only once everything has
left the process, and resets it if the write timeout passes first. Until it
returns the owner stays in the server's registry, so it counts toward
``max_connections`` and the ticker's :meth:`Outbox.check_write_timeout`
bounds the wait. Socket and anyio errors are translated here, once, into
those disconnect reasons.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from pagi.server.net.stream import TransportStream, carrier_of, reset_on_close
from pagi.server.transport import TransportHandle
from pagi.spec import DisconnectReason

__all__ = ["Outbox", "StreamOutbox", "TransportOutbox"]

Spawn = Callable[[Callable[[], Coroutine[Any, Any, None]]], object]


class Outbox:
    """A connection's outbound buffer; see the module docstring."""

    __slots__ = (
        "_below_low",
        "_carrier",
        "_handle",
        "_stream",
        "_write_timeout",
        "broken",
        "high",
        "low",
        "on_broken",
        "spawn",
    )

    #: True when writes go straight to a transport buffer (never a writer task).
    direct = False

    def __init__(
        self, stream: anyio.abc.ByteSendStream, *, high: int, low: int, write_timeout: float
    ) -> None:
        self._stream = stream
        self.high = high
        self.low = low
        self._write_timeout = write_timeout or None
        self._handle: TransportHandle | None = None
        self._below_low: anyio.Event | None = None
        #: ``None`` while healthy, else the disconnect reason of the failure.
        self.broken: str | None = None
        #: Called once with the reason when a write fails.
        self.on_broken: Callable[[str], None] | None = None
        #: Starts the writer task when first needed (a task group's ``start_soon``).
        self.spawn: Spawn | None = None
        # The transport at the bottom (under TLS too): its buffer must be empty
        # before the connection may close.
        self._carrier = carrier_of(stream)

    @staticmethod
    def open(
        stream: anyio.abc.ByteSendStream, *, high: int, low: int, write_timeout: float
    ) -> Outbox:
        """The right outbox for ``stream``: its transport buffer, or a queue of chunks."""
        if isinstance(stream, TransportStream):
            return TransportOutbox(stream, high=high, low=low, write_timeout=write_timeout)
        return StreamOutbox(stream, high=high, low=low, write_timeout=write_timeout)

    # --- the interface ---------------------------------------------------------------
    @property
    def buffered(self) -> int:
        """Bytes accepted and not yet handed to the network."""
        raise NotImplementedError

    def write_nowait(self, data: bytes, *, wake: bool = True) -> None:
        """Queue ``data`` without waiting on the watermark (server-owned bytes).

        ``wake=False`` is for callers about to :meth:`flush` themselves.
        """
        raise NotImplementedError

    async def write(self, data: bytes) -> None:
        """Queue ``data``; block while the buffer is at or above the high mark."""
        raise NotImplementedError

    async def flush(self) -> None:
        """Return once everything queued has been handed over, and the buffer is below high."""
        raise NotImplementedError

    def must_flush(self) -> bool:
        """Whether :meth:`flush` has anything to wait for (lets the hot path skip the await)."""
        raise NotImplementedError

    def writer(self) -> Callable[[], Coroutine[Any, Any, None]] | None:
        """The writer task to run beside the connection, if this strategy needs one."""
        return None

    async def run(self) -> None:
        """The writer task (only a queued outbox has one)."""

    def _stuck_since(self) -> float | None:
        """When a write that has not finished began, if one is in progress."""
        return None

    # --- shared behaviour ------------------------------------------------------------
    def handle(self) -> TransportHandle:
        """A fresh ``pagi.transport`` handle; the outbox reports to the newest one."""
        self._handle = TransportHandle(self)
        return self._handle

    def check_write_timeout(self, now: float) -> None:
        """Reset a connection whose writes are stuck longer than ``write_timeout`` (the ticker).

        Stuck means a send in progress or a transport paused above its high
        mark, which includes :meth:`close` waiting for the last bytes. No
        per-write timer is needed on the hot path.
        """
        timeout = self._write_timeout
        if timeout is None or self.broken is not None:
            return
        stuck = self._stuck_since()
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
        it returns; the write timeout ends the wait.
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
        self._drop_queued()
        if self.on_broken is not None:
            self.on_broken(reason)

    def _drop_queued(self) -> None:
        """Forget bytes not yet handed over (after a failure)."""

    def abort(self, reason: str) -> None:
        """Drop everything queued, refuse further writes and reset the connection."""
        self._break(reason)
        self._cut()
        self._after_progress()


class TransportOutbox(Outbox):
    """The asyncio transport's own buffer, with the server's watermarks."""

    __slots__ = ("_direct",)

    direct = True

    def __init__(
        self, stream: TransportStream, *, high: int, low: int, write_timeout: float
    ) -> None:
        super().__init__(stream, high=high, low=low, write_timeout=write_timeout)
        self._direct = stream
        stream.set_write_limits(high, low, self._after_progress)

    @property
    def buffered(self) -> int:
        return self._direct.write_buffered

    def write_nowait(self, data: bytes, *, wake: bool = True) -> None:
        if self.broken is not None or not data:
            return
        direct = self._direct
        if not direct.write_nowait(data):
            self._break(DisconnectReason.WRITE_ERROR)
        elif self._handle is not None:
            self._handle._update(direct.write_buffered)

    async def write(self, data: bytes) -> None:
        self.write_nowait(data)
        if self._direct.write_paused and self.broken is None:  # must_flush(), inline
            await self.flush()

    def must_flush(self) -> bool:
        return self._direct.write_paused and self.broken is None

    async def flush(self) -> None:
        # The bytes were handed over when written; wait only while the buffer
        # is above the high mark (until it falls below the low one).
        direct = self._direct
        if direct.write_paused and self.broken is None:
            await direct.wait_writable()
            self._after_progress()

    def _after_progress(self) -> None:
        if self._direct.lost and self.broken is None:
            self._break(DisconnectReason.WRITE_ERROR)
        super()._after_progress()


class StreamOutbox(Outbox):
    """A queue of chunks in front of any anyio byte stream, with a writer task."""

    __slots__ = (
        "_chunks",
        "_idle",
        "_queued",
        "_sending",
        "_wakeup",
        "_writer_running",
        "inflight",
        "write_started",
    )

    def __init__(
        self, stream: anyio.abc.ByteSendStream, *, high: int, low: int, write_timeout: float
    ) -> None:
        super().__init__(stream, high=high, low=low, write_timeout=write_timeout)
        self._chunks: list[bytes] = []
        self._queued = 0
        self.inflight = 0
        self._sending = False
        self._wakeup: anyio.Event | None = None
        self._idle: anyio.Event | None = None
        self._writer_running = False
        #: ``time.monotonic()`` when the write in progress began, else ``None``.
        self.write_started: float | None = None

    @property
    def buffered(self) -> int:
        return self._queued + self.inflight

    def write_nowait(self, data: bytes, *, wake: bool = True) -> None:
        if self.broken is not None or not data:
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

    def must_flush(self) -> bool:
        return self.broken is None and bool(self._chunks or self._sending)

    async def flush(self) -> None:
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

    def _stuck_since(self) -> float | None:
        return self.write_started

    def _drop_queued(self) -> None:
        self._chunks.clear()
        self._queued = 0

    def abort(self, reason: str) -> None:
        super().abort(reason)
        if self._wakeup is not None:
            self._wakeup.set()

    def writer(self) -> Callable[[], Coroutine[Any, Any, None]] | None:
        # Lent a task group, the outbox starts its writer on demand instead.
        return self.run if self.spawn is None else None

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
