"""Accepting connections, and a lean byte stream for asyncio.

Theory of operation
-------------------
Everything above this module talks to an ``anyio.abc.ByteStream``; this is
the one place that knows how connections are accepted and what backs them.

On trio, connections are anyio's own socket streams.

On asyncio (and uvloop) the server wraps each accepted socket in
:class:`TransportStream`, a byte stream over an ``asyncio.Protocol``. anyio's
generic socket stream is correct but pays for generality on every call: it
pauses and resumes the transport's reading around each ``receive`` (two
``epoll_ctl`` system calls per request), yields to the event loop after each
``send``, and keeps three events and a queue per connection. Measured on a
hello-world request that was about a quarter of the server's CPU time, and
most of an idle connection's memory. This stream keeps received bytes in a
list, pauses reading only when more than ``_READ_HIGH`` bytes are unread,
and waits on a bare future only when it really has to wait.

It honours the same contract the rest of the server relies on: ``receive``
raises ``anyio.EndOfStream`` at EOF and ``anyio.BrokenResourceError`` when
the connection is lost; ``send`` raises ``anyio.BrokenResourceError`` once
the peer is gone and blocks while the transport's buffer is above its high
mark; cancellation works because every wait is an ordinary future.

A transport closed with bytes still buffered keeps them, and the socket,
until the peer reads, outside anything the server counts or times. So the
server never closes one that way: it waits for
:meth:`TransportStream.wait_flushed` (bounded by its write timeout), and past
that :meth:`TransportStream.abort` resets the connection and frees the buffer.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSStream

__all__ = ["TransportStream", "accept", "adopt", "carrier_of", "reset_on_close", "take_waiting"]

_READ_HIGH = 256 * 1024  # unread bytes at which the socket stops being read
_READ_LOW = 64 * 1024
_FAIR_READS = 32  # answer this many reads from the buffer, then yield once
#: Largest read of asyncio's selector transport (its own default is 256 KiB). Each
#: read allocates that much and shrinks it to what came; a read of more than glibc's
#: initial mmap threshold (128 KiB) raises that threshold once freed, after which such
#: buffers come from the heap and fragment it: RSS crept up ~6% over 27 minutes of
#: bench/soak.py, in steps of ~0.5 MiB, and stays flat with reads kept below it (no
#: measurable CPU cost on 256 MiB uploads).
_TRANSPORT_READ_SIZE = 127 * 1024


class _Protocol(asyncio.Protocol):
    __slots__ = (
        "buffer",
        "eof",
        "lost",
        "on_flow",
        "paused_since",
        "read_paused",
        "read_waiter",
        "size",
        "transport",
        "write_paused",
        "write_waiter",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer: list[bytes] = []
        self.size = 0
        self.eof = False
        self.lost = False
        self.read_paused = False
        self.write_paused = False
        self.read_waiter: asyncio.Future[None] | None = None
        self.write_waiter: asyncio.Future[None] | None = None
        #: Called when writing pauses, resumes or the connection is lost.
        self.on_flow: Callable[[], None] | None = None
        self.paused_since: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports quack like asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer.append(data)
        self.size += len(data)
        if self.size > _READ_HIGH and not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()
        _wake(self.read_waiter)

    def eof_received(self) -> bool:
        self.eof = True
        _wake(self.read_waiter)
        return True  # keep the transport open: the response may still be written

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        _wake(self.read_waiter)
        _wake(self.write_waiter)
        if self.on_flow is not None:
            self.on_flow()

    def pause_writing(self) -> None:
        self.write_paused = True
        self.paused_since = time.monotonic()
        if self.on_flow is not None:
            self.on_flow()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.paused_since = None
        _wake(self.write_waiter)
        if self.on_flow is not None:
            self.on_flow()


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class TransportStream(anyio.abc.ByteStream):
    """An anyio byte stream over an asyncio transport; see the module docstring."""

    __slots__ = ("_closed", "_fast_reads", "_loop", "_protocol", "_transport")

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._fast_reads = 0

    async def receive(self, max_bytes: int = 65536) -> bytes:
        protocol = self._protocol
        if protocol.buffer:
            self._fast_reads += 1
            if self._fast_reads >= _FAIR_READS:
                self._fast_reads = 0
                await asyncio.sleep(0)  # a client that never lets up still lets others run
        else:
            self._fast_reads = 0
            while not protocol.buffer:
                if self._closed:
                    raise anyio.ClosedResourceError
                if protocol.eof:
                    raise anyio.EndOfStream
                if protocol.lost:
                    raise anyio.BrokenResourceError
                waiter = protocol.read_waiter = self._loop.create_future()
                try:
                    await waiter
                finally:
                    protocol.read_waiter = None
        buffer = protocol.buffer
        data = buffer[0] if len(buffer) == 1 else b"".join(buffer)
        buffer.clear()
        if len(data) > max_bytes:
            buffer.append(data[max_bytes:])
            data = data[:max_bytes]
        protocol.size = len(buffer[0]) if buffer else 0
        if protocol.read_paused and protocol.size < _READ_LOW:
            protocol.read_paused = False
            self._transport.resume_reading()
        return data

    async def send(self, item: bytes) -> None:
        protocol = self._protocol
        if self._closed:
            raise anyio.ClosedResourceError
        if protocol.lost or self._transport.is_closing():
            raise anyio.BrokenResourceError
        self._transport.write(item)
        while protocol.write_paused and not protocol.lost:
            waiter = protocol.write_waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                protocol.write_waiter = None
        if protocol.lost:
            raise anyio.BrokenResourceError

    # --- direct writes, for the server's outbox ---------------------------------
    # The transport's own buffer, with its watermarks set to the server's, is
    # then the connection's outbound buffer: a small write costs one
    # ``transport.write`` and no task switch.

    def set_write_limits(self, high: int, low: int, on_flow: Callable[[], None]) -> None:
        """Use the transport's buffer with these watermarks; ``on_flow`` hears crossings."""
        self._transport.set_write_buffer_limits(high=high, low=low)
        self._protocol.on_flow = on_flow

    def write_nowait(self, data: bytes) -> bool:
        """Hand ``data`` to the transport; False if the connection is gone."""
        if self._closed or self._protocol.lost or self._transport.is_closing():
            return False
        self._transport.write(data)
        return True

    @property
    def write_buffered(self) -> int:
        """Bytes the transport holds that the kernel has not taken yet."""
        return self._transport.get_write_buffer_size()

    @property
    def lost(self) -> bool:
        """True once the peer's side of the connection is gone (not after our own close)."""
        return self._protocol.lost and not self._closed

    @property
    def write_paused(self) -> bool:
        """True while the buffer is above the high mark (until it falls below the low)."""
        return self._protocol.write_paused and not self._protocol.lost

    @property
    def write_paused_since(self) -> float | None:
        return self._protocol.paused_since if self._protocol.write_paused else None

    async def wait_writable(self) -> None:
        """Wait until the buffer falls below the low mark or the connection is lost."""
        protocol = self._protocol
        while protocol.write_paused and not protocol.lost and not self._closed:
            waiter = protocol.write_waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                protocol.write_waiter = None

    async def wait_flushed(self) -> None:
        """Wait until the transport has handed every byte to the kernel, or the connection ends.

        With both watermarks at zero the transport reports itself paused for
        as long as anything is buffered: this is the wait of a blocked write,
        and :attr:`write_paused_since` lets the server's write timeout end it.
        """
        if self._closed or self._protocol.lost or self._transport.is_closing():
            return
        self._transport.set_write_buffer_limits(high=0, low=0)
        await self.wait_writable()

    @property
    def can_sendfile(self) -> bool:
        """True on the standard asyncio loop, whose ``sendfile`` uses ``os.sendfile``."""
        return isinstance(self._loop, asyncio.BaseEventLoop)

    async def sendfile(self, fh: Any, offset: int, count: int) -> int:
        """Send ``count`` bytes of ``fh`` from ``offset`` with zero copy where possible.

        ``loop.sendfile`` waits for the transport's buffer to empty, then uses
        ``os.sendfile`` on plain sockets (falling back to reads where the
        platform or file cannot). Returns the bytes sent.
        """
        if self._closed or self._protocol.lost:
            raise anyio.BrokenResourceError
        try:
            return await self._loop.sendfile(self._transport, fh, offset, count)
        except (ConnectionError, OSError) as exc:
            raise anyio.BrokenResourceError from exc

    def abort(self) -> None:
        """Drop what is buffered and close at once, with a reset (the kernel's copy goes too)."""
        self._closed = True
        if not self._transport.is_closing():
            reset_on_close(self._transport.get_extra_info("socket"))
        self._transport.abort()
        _wake(self._protocol.read_waiter)
        _wake(self._protocol.write_waiter)

    async def send_eof(self) -> None:
        if self._transport.can_write_eof() and not self._transport.is_closing():
            self._transport.write_eof()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._transport.close()
            _wake(self._protocol.read_waiter)
            _wake(self._protocol.write_waiter)

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        transport = self._transport
        sock = transport.get_extra_info("socket")
        if sock is None:  # uvloop, once the transport has closed (the client reset at once)
            return {}
        names = _SOCKET_ATTRIBUTE
        attributes: dict[Any, Callable[[], Any]] = {
            names.raw_socket: lambda: sock,
            names.family: lambda: sock.family,
            names.local_address: lambda: transport.get_extra_info("sockname"),
        }
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            attributes[names.remote_address] = lambda: transport.get_extra_info("peername")
            attributes[names.local_port] = lambda: transport.get_extra_info("sockname")[1]
            attributes[names.remote_port] = lambda: transport.get_extra_info("peername")[1]
        return attributes


# anyio's typed attributes are sentinel objects declared with the type of the value
# they name (local_port: int). Read through Any, so that this module compiled with
# mypyc does not check a sentinel against that type.
_SOCKET_ATTRIBUTE: Any = SocketAttribute

_LINGER_RESET = struct.pack("ii", 1, 0)


def reset_on_close(sock: Any) -> None:
    """Make closing ``sock`` send a reset and drop unsent data (``SO_LINGER`` 0).

    ``sock`` is a socket, an event loop's socket wrapper, or ``None``.
    """
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    except (OSError, ValueError, AttributeError):
        pass  # already closed, or not a socket that lingers (a Unix socket pair is fine)


def carrier_of(stream: object) -> TransportStream | None:
    """The :class:`TransportStream` under ``stream`` (itself, or under TLS), if any."""
    while not isinstance(stream, TransportStream):
        if not isinstance(stream, TLSStream):
            return None
        stream = stream.transport_stream
    return stream


def _running_asyncio_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


#: Most connections taken from the backlog in one wake-up of the accept loop.
_ACCEPT_BATCH = 64


async def accept(listener: anyio.abc.SocketListener) -> list[anyio.abc.ByteStream]:
    """Accept the connections waiting on ``listener`` (at least one).

    On asyncio every connection already in the kernel's backlog is taken in
    the same wake-up (up to ``_ACCEPT_BATCH``): taking one per event-loop
    turn let the last of a burst of clients wait behind every request of
    the first ones. Each becomes a :class:`TransportStream`. On trio,
    anyio's listener hands out one stream per call.

    Cancelling this (the drain does) never loses a connection: on asyncio
    it waits only for the socket to become readable, then accepts without
    awaiting, and sets up what it took shielded. (``loop.sock_accept`` is not
    safe here: its reader callback can accept a connection after the waiting
    task was cancelled in the same event-loop turn, fail to hand it over,
    "Exception in callback ..._sock_accept", and the client gets a reset.)
    """
    loop = _running_asyncio_loop()
    if loop is None:
        return [await listener.accept()]
    listening: socket.socket = listener.extra(SocketAttribute.raw_socket)
    clients = take_waiting(listening)
    while not clients:
        await _readable(loop, listening)
        clients = take_waiting(listening)  # none if another process was first
    # Once a connection is taken from the kernel it is ours to serve: a drain
    # that cancels the accept loop now must not close what was just accepted
    # (its client's request would get no answer). Setting up is quick.
    with anyio.CancelScope(shield=True):
        streams = await _set_up(loop, clients)
    return streams


def take_waiting(listening: socket.socket) -> list[socket.socket]:
    """The connections queued on the non-blocking ``listening`` socket, without waiting.

    Raises the ``OSError`` of the first ``accept`` (``EMFILE``, a closed
    socket) when it took nothing.
    """
    clients: list[socket.socket] = []
    while len(clients) < _ACCEPT_BATCH:
        try:
            client, _ = listening.accept()
        except (BlockingIOError, InterruptedError):
            break
        except ConnectionAbortedError:
            continue  # reset while queued: the next one
        except OSError:
            if clients:
                break  # e.g. EMFILE: serve what we have; the next call reports it
            raise
        client.setblocking(False)
        clients.append(client)
    return clients


async def adopt(clients: list[socket.socket]) -> list[anyio.abc.ByteStream]:
    """Byte streams for sockets taken with :func:`take_waiting`; set up shielded."""
    loop = _running_asyncio_loop()
    streams: list[anyio.abc.ByteStream] = []
    with anyio.CancelScope(shield=True):
        if loop is not None:
            streams = await _set_up(loop, clients)
        else:
            for sock in clients:
                try:
                    if sock.family == socket.AF_UNIX:
                        streams.append(await anyio.abc.UNIXSocketStream.from_socket(sock))
                    else:
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        streams.append(await anyio.abc.SocketStream.from_socket(sock))
                except (OSError, ValueError):
                    sock.close()  # the client is already gone (anyio: "must be connected")
    return streams


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    """Until ``sock`` is readable. Cancelling it takes nothing from the socket."""
    waiter: asyncio.Future[None] = loop.create_future()
    fd = sock.fileno()
    loop.add_reader(fd, _wake, waiter)
    try:
        await waiter
    finally:
        loop.remove_reader(fd)


async def _set_up(
    loop: asyncio.AbstractEventLoop, clients: list[socket.socket]
) -> list[anyio.abc.ByteStream]:
    streams: list[anyio.abc.ByteStream] = []
    for index, sock in enumerate(clients):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            transport, protocol = await loop.connect_accepted_socket(_Protocol, sock)
        except BaseException:
            for rest in clients[index:]:
                rest.close()
            for stream in streams:
                cast(TransportStream, stream).abort()
            raise
        if hasattr(transport, "max_size"):  # asyncio's selector transport (not uvloop's)
            setattr(transport, "max_size", _TRANSPORT_READ_SIZE)  # noqa: B010 (not typed)
        streams.append(TransportStream(transport, protocol))
    return streams
