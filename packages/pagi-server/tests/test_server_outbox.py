"""Unit tests of the outbound buffer (``net/outbox.py``), without sockets.

:class:`StreamOutbox` runs over :class:`GatedStream`, a byte stream whose
sends wait until the test releases them, so "the socket is slow" is a
state the test holds rather than a timing it hopes for. Its raw socket is
:class:`FakeSocket`, which records the reset the outbox asks for and makes
the send in progress fail, as shutting a real socket down does.
:class:`TransportOutbox` runs over a real :class:`TransportStream` whose
asyncio transport is :class:`FakeTransport`: it keeps a byte count instead
of a kernel buffer and calls the protocol's ``pause_writing`` /
``resume_writing`` at its watermarks as asyncio's transports do.

Requirement ids: R-FLOW-10..17 (buffered amount, watermarks, hysteresis),
R-CORE-53 (sends after a failure are no-ops).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.abc import SocketAttribute

from pagi.server.net.outbox import Outbox, StreamOutbox, TransportOutbox
from pagi.server.net.stream import TransportStream, _Protocol

pytestmark = pytest.mark.anyio


# --- fakes ---------------------------------------------------------------------------------


class FakeSocket:
    """Stands for the raw socket under a stream: records SO_LINGER and shutdown."""

    def __init__(self, on_shutdown: Callable[[], None]) -> None:
        self.linger_reset = False
        self.shut_down = False
        self._on_shutdown = on_shutdown

    def setsockopt(self, level: int, option: int, value: bytes) -> None:
        self.linger_reset = True

    def shutdown(self, how: int) -> None:
        self.shut_down = True
        self._on_shutdown()


class GatedStream(anyio.abc.ByteSendStream):
    """A byte stream whose sends complete only when the test says so (if gated)."""

    def __init__(self, *, gated: bool = False) -> None:
        self.gated = gated
        self.log: list[Any] = []  # bytes sent, and "closed"
        self.waiting: bytes | None = None
        self.failure: BaseException | None = None
        self.socket = FakeSocket(self._reset)
        self._arrived = anyio.Event()
        self._release = anyio.Event()

    @property
    def sent(self) -> bytes:
        return b"".join(item for item in self.log if isinstance(item, bytes))

    async def send(self, item: bytes) -> None:
        if self.failure is not None:
            raise self.failure
        if self.gated:
            release = self._release
            self.waiting = bytes(item)
            self._arrived.set()
            await release.wait()
            self.waiting = None
            if self.failure is not None:
                raise self.failure
        self.log.append(bytes(item))

    async def next_send(self) -> bytes:
        """The bytes of the send now blocked (waits for one to arrive)."""
        with anyio.fail_after(5):
            await self._arrived.wait()
        assert self.waiting is not None
        return self.waiting

    def release(self) -> None:
        """Let the blocked send complete."""
        release, self._release = self._release, anyio.Event()
        self._arrived = anyio.Event()
        release.set()

    def _reset(self) -> None:
        self.failure = anyio.BrokenResourceError()
        self.release()

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        self.log.append("closed")

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return {SocketAttribute.raw_socket: lambda: self.socket}


def stream_outbox(
    stream: GatedStream, high: int = 10, low: int = 5, write_timeout: float = 0
) -> tuple[StreamOutbox, list[str]]:
    outbox = Outbox.open(stream, high=high, low=low, write_timeout=write_timeout)
    assert isinstance(outbox, StreamOutbox)
    reasons: list[str] = []
    outbox.on_broken = reasons.append
    return outbox, reasons


# --- StreamOutbox --------------------------------------------------------------------------


async def test_small_writes_wait_for_flush_and_leave_in_order_R_FLOW_10() -> None:
    stream = GatedStream()
    outbox, _ = stream_outbox(stream)
    await outbox.write(b"ab")
    await outbox.write(b"cd")
    # No writer task was lent: nothing reached the stream, all of it is buffered.
    assert (stream.log, outbox.buffered) == ([], 4)
    await outbox.flush()
    assert (stream.log, outbox.buffered) == ([b"abcd"], 0)


async def test_write_blocks_between_the_marks_until_below_low_R_FLOW_12() -> None:
    """high=10, low=5: a write that takes the buffer to 12 returns only once it is under 5."""
    stream = GatedStream(gated=True)
    outbox, _ = stream_outbox(stream, high=10, low=5)
    returned = anyio.Event()
    async with anyio.create_task_group() as tg:
        outbox.spawn = tg.start_soon  # the connection lends its task group
        await outbox.write(b"a" * 4)  # under high: returns, the writer takes it
        assert await stream.next_send() == b"a" * 4

        async def big_write() -> None:
            await outbox.write(b"b" * 8)
            returned.set()

        tg.start_soon(big_write)
        await anyio.wait_all_tasks_blocked()
        assert outbox.buffered == 12 and not returned.is_set()  # 4 in flight + 8 queued
        stream.release()  # 8 left: under high but not under low, still blocked
        assert await stream.next_send() == b"b" * 8
        assert outbox.buffered == 8 and not returned.is_set()
        stream.release()
        with anyio.fail_after(5):
            await returned.wait()
        assert outbox.buffered == 0
        tg.cancel_scope.cancel()
    assert stream.sent == b"a" * 4 + b"b" * 8


async def test_handle_reports_buffer_and_crossings_with_hysteresis_R_FLOW_14_15_16() -> None:
    stream = GatedStream(gated=True)
    outbox, _ = stream_outbox(stream, high=10, low=5)
    handle = outbox.handle()
    calls: list[str] = []
    handle.on_high_water(lambda: calls.append("high"))
    handle.on_drain(lambda: calls.append("drain"))
    assert (handle.high_water_mark(), handle.low_water_mark()) == (10, 5)
    outbox.write_nowait(b"x" * 6, wake=False)
    assert handle.buffered_amount() == 6 and calls == []
    outbox.write_nowait(b"x" * 4, wake=False)
    assert calls == ["high"]  # reached the high mark: one call
    outbox.write_nowait(b"x", wake=False)
    assert calls == ["high"]  # still above: no second call
    async with anyio.create_task_group() as tg:
        tg.start_soon(outbox.flush)
        assert len(await stream.next_send()) == 11
        assert handle.buffered_amount() == 11  # in flight still counts as buffered
        stream.release()
    assert handle.buffered_amount() == 0
    assert calls == ["high", "drain"]
    late: list[str] = []
    handle.on_drain(lambda: late.append("drain"))
    assert late == []  # never merely because the buffer is low at registration (R-FLOW-15)


async def test_flush_waits_for_the_writer_tasks_send() -> None:
    stream = GatedStream(gated=True)
    outbox, _ = stream_outbox(stream, high=100, low=50)
    flushed = anyio.Event()
    async with anyio.create_task_group() as tg:
        outbox.spawn = tg.start_soon
        outbox.write_nowait(b"first")  # wakes the writer task
        assert await stream.next_send() == b"first"

        async def flush() -> None:
            await outbox.flush()
            flushed.set()

        tg.start_soon(flush)
        outbox.write_nowait(b"second", wake=False)
        await anyio.wait_all_tasks_blocked()
        assert not flushed.is_set()  # the writer's send is not done
        stream.release()
        assert await stream.next_send() == b"second"
        assert not flushed.is_set()
        stream.release()
        with anyio.fail_after(5):
            await flushed.wait()
        tg.cancel_scope.cancel()
    assert stream.log == [b"first", b"second"]


async def test_failed_write_is_write_error_and_later_writes_are_dropped_R_CORE_53() -> None:
    stream = GatedStream()
    stream.failure = anyio.BrokenResourceError()
    outbox, reasons = stream_outbox(stream)
    await outbox.write(b"lost")
    await outbox.flush()
    assert outbox.broken == "write_error" and reasons == ["write_error"]
    await outbox.write(b"x" * 100)  # far above high: returns at once, drops the bytes
    outbox.write_nowait(b"more")
    await outbox.flush()
    assert outbox.buffered == 0 and reasons == ["write_error"]  # reported once


async def test_write_timeout_resets_a_stuck_send_and_releases_the_writer() -> None:
    stream = GatedStream(gated=True)
    outbox, reasons = stream_outbox(stream, high=10, low=5, write_timeout=2.0)
    finished = anyio.Event()

    async def write() -> None:
        await outbox.write(b"z" * 20)  # at high: sent in this task, blocks with the socket
        finished.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(write)
        await stream.next_send()
        started = outbox.write_started
        assert started is not None
        outbox.check_write_timeout(started + 1.9)
        assert outbox.broken is None and not stream.socket.shut_down
        outbox.check_write_timeout(started + 2.01)
        assert outbox.broken == "write_timeout"
        assert stream.socket.linger_reset and stream.socket.shut_down  # a reset, not a FIN
        with anyio.fail_after(5):
            await finished.wait()
    # The failure the reset caused does not replace the first reason.
    assert reasons == ["write_timeout"]
    assert stream.sent == b""


async def test_no_write_timeout_when_disabled_or_idle() -> None:
    stream = GatedStream(gated=True)
    outbox, _ = stream_outbox(stream, write_timeout=0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(outbox.write, b"z" * 20)
        await stream.next_send()
        outbox.check_write_timeout(time.monotonic() + 3600)
        assert outbox.broken is None
        stream.release()
    idle, _ = stream_outbox(GatedStream(), write_timeout=1.0)
    idle.check_write_timeout(time.monotonic() + 3600)  # nothing in progress
    assert idle.broken is None


async def test_close_sends_the_last_byte_then_closes() -> None:
    stream = GatedStream(gated=True)
    outbox, _ = stream_outbox(stream)
    outbox.write_nowait(b"last bytes", wake=False)
    async with anyio.create_task_group() as tg:
        tg.start_soon(outbox.close)
        assert await stream.next_send() == b"last bytes"
        await anyio.wait_all_tasks_blocked()
        assert "closed" not in stream.log  # not while the last bytes are on their way
        stream.release()
    assert stream.log == [b"last bytes", "closed"]
    assert not stream.socket.shut_down  # a clean close


async def test_close_after_a_failure_resets_and_closes() -> None:
    stream = GatedStream()
    outbox, _ = stream_outbox(stream)
    outbox.abort("server_shutdown")
    outbox.write_nowait(b"never")
    await outbox.close()
    assert outbox.broken == "server_shutdown"
    assert stream.socket.linger_reset and stream.socket.shut_down
    assert stream.log == ["closed"]


# --- TransportOutbox (asyncio) -------------------------------------------------------------


class FakeTransport:
    """An asyncio write transport with a byte count for a buffer; ``drain`` plays the kernel."""

    def __init__(self, protocol: _Protocol) -> None:
        self.protocol = protocol
        self.buffered = 0
        self.written: list[bytes] = []
        self.high = 64 * 1024
        self.low = 16 * 1024
        self.paused = False
        self.closing = False
        self.aborted = False

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        self.high, self.low = high, low
        self._check()

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))
        self.buffered += len(data)
        self._check()

    def drain(self, count: int) -> None:
        self.buffered -= count
        self._check()

    def _check(self) -> None:
        # asyncio pauses above high and resumes at or below low.
        if not self.paused and self.buffered > self.high:
            self.paused = True
            self.protocol.pause_writing()
        elif self.paused and self.buffered <= self.low:
            self.paused = False
            self.protocol.resume_writing()

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        if not self.aborted:
            self.closing = self.aborted = True
            self.buffered = 0
            self.protocol.connection_lost(None)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default  # no socket: reset_on_close(None) does nothing

    def can_write_eof(self) -> bool:
        return False


def transport_outbox(
    high: int = 10, low: int = 5, write_timeout: float = 0
) -> tuple[TransportOutbox, FakeTransport, list[str]]:
    protocol = _Protocol()
    transport = FakeTransport(protocol)
    protocol.connection_made(transport)  # type: ignore[arg-type]
    stream = TransportStream(transport, protocol)  # type: ignore[arg-type]
    outbox = Outbox.open(stream, high=high, low=low, write_timeout=write_timeout)
    assert isinstance(outbox, TransportOutbox) and outbox.direct
    reasons: list[str] = []
    outbox.on_broken = reasons.append
    return outbox, transport, reasons


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_transport_outbox_writes_straight_through_and_blocks_above_high_R_FLOW_12(
    anyio_backend: str,
) -> None:
    outbox, transport, _ = transport_outbox(high=10, low=5)
    handle = outbox.handle()
    calls: list[str] = []
    handle.on_high_water(lambda: calls.append("high"))
    handle.on_drain(lambda: calls.append("drain"))
    await outbox.write(b"abc")  # one transport.write, no wait
    assert transport.written == [b"abc"] and handle.buffered_amount() == 3
    returned = anyio.Event()

    async def big_write() -> None:
        await outbox.write(b"d" * 9)
        returned.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(big_write)
        await anyio.wait_all_tasks_blocked()
        assert transport.paused and not returned.is_set()  # 12 > high
        assert calls == ["high"]
        transport.drain(6)  # 6 left: above low, still paused
        await anyio.wait_all_tasks_blocked()
        assert not returned.is_set() and calls == ["high"]
        transport.drain(2)  # 4 left: below low
        with anyio.fail_after(5):
            await returned.wait()
    assert calls == ["high", "drain"]
    assert handle.buffered_amount() == 4


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_transport_outbox_close_waits_for_the_last_byte(anyio_backend: str) -> None:
    outbox, transport, _ = transport_outbox(high=100, low=50)
    await outbox.write(b"tail")
    closed = anyio.Event()

    async def close() -> None:
        await outbox.close()
        closed.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(close)
        await anyio.wait_all_tasks_blocked()
        # Both marks are now zero: the transport counts as paused while anything is left.
        assert (transport.high, transport.low) == (0, 0)
        assert not closed.is_set() and not transport.closing
        transport.drain(4)
        with anyio.fail_after(5):
            await closed.wait()
    assert transport.closing and not transport.aborted


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_transport_outbox_write_timeout_aborts_a_stalled_close(anyio_backend: str) -> None:
    outbox, transport, reasons = transport_outbox(high=100, low=50, write_timeout=2.0)
    await outbox.write(b"never read")
    async with anyio.create_task_group() as tg:
        tg.start_soon(outbox.close)
        await anyio.wait_all_tasks_blocked()
        since = transport.protocol.paused_since
        assert since is not None  # the close waits, paused: the ticker can see since when
        outbox.check_write_timeout(since + 1.9)
        assert not transport.aborted
        outbox.check_write_timeout(since + 2.01)
        assert transport.aborted
    assert reasons == ["write_timeout"]
    assert outbox.broken == "write_timeout"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_transport_outbox_lost_connection_is_write_error_R_CORE_53(
    anyio_backend: str,
) -> None:
    outbox, transport, reasons = transport_outbox()
    transport.protocol.connection_lost(ConnectionResetError())
    await outbox.write(b"x")  # dropped, no exception
    assert outbox.broken == "write_error" and reasons == ["write_error"]
    assert transport.written == []
