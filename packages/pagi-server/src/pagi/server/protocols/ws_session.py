"""A WebSocket session (RFC 6455 framing, ``ws_frames``) on any carrier.

Theory of operation
-------------------
Once a request has been dispatched as a ``websocket`` scope and its
handshake checked (``ws_handshake``), a :class:`WebSocketSession` runs the
application and the frames. It never touches a socket: it reads and writes
through a :class:`WebSocketCarrier`, which is either an HTTP/1.1 connection
after its upgrade request (``http1_websocket``) or one HTTP/2 stream opened
by an Extended CONNECT (RFC 8441, in the HTTP/2 driver). The carrier frames
the handshake answer its own way (``101`` or ``:status 200``), owns the
outbound buffer and its watermarks, and says how the bytes ended; the
session is the same on both.

1. **Handshake with the app**: the scope has ``subprotocols``, the denial
   extension and ``pagi.transport``; the app's first ``receive`` is
   ``websocket.connect``. Its answer goes through the session's
   :class:`~pagi.server.streams.websocket.WebSocketWire` methods: an accept
   (with permessage-deflate when the client offered it and the server
   allows it), ``403`` or the app's own HTTP response.
2. **Open**: the *reader* (in the session's I/O task) feeds bytes to the
   connection's :class:`~pagi.server.protocols.ws_frames.FrameCodec`,
   hands the whole messages it returns to the stream (the codec joins
   fragments, inflates and checks UTF-8 as bytes arrive), answers pings,
   and stops reading while the stream's receive queue is full (see
   *Backpressure*); the *timer*, started only when something needs it,
   sends keepalive pings and watches the pong, idle and close deadlines.
   Every frame is produced by one synchronous codec call and queued whole,
   so concurrent senders never interleave frames and the deflate context
   stays in order.
3. **Closing**: whoever closes first decides what the app is told
   (R-WS-30..34): a peer's Close is echoed and reported with its own code
   (1005 when it had none); a server-side close (app, shutdown 1001, queue
   overflow 1008, idle 1001) is reported with the code sent; a protocol
   violation sends 1002/1007/1009 and reports ``protocol_error`` (or
   ``body_too_large`` for 1009); a drop without a Close frame (a TCP close,
   or an HTTP/2 stream reset) is 1006 with the reason token
   (``client_closed``, ``keepalive_timeout``, ``write_error``/
   ``write_timeout``, ``server_shutdown``). After our Close the peer has
   ``ws_close_timeout`` seconds to answer before the carrier is dropped;
   the server ends its side first, as RFC 6455 7.1.1 asks.

Limits: a frame over ``max_ws_frame_size`` or a message over
``max_ws_message_size`` (counted after decompression, and decompression
stops at the limit, so a small compressed bomb cannot inflate) closes with
1009. Up to ``max_receive_queue`` messages wait for an app that does not
receive; one more closes with 1008: that count is the hard limit, for
floods of small messages. The permessage-deflate compressor uses
``ws_deflate_window_bits`` and a memory level to match, about 32 KiB per
connection at the default of 12 bits instead of zlib's 256 KiB.

Backpressure: the receive queue is also bounded in bytes, by
``max_receive_queue_bytes`` of decompressed payload, and that bound never
closes the connection. The codec parses only when asked, so the reader
stops pulling events from it as soon as a queued message leaves the stream
:attr:`~pagi.server.streams.websocket.WebSocketStream.backlogged`; the
rest of the bytes already read stay unparsed in the codec's buffer
(at most one 64 KiB read) and the socket is not read again. The client's
writes then stall in TCP. When the app has taken the queue down to half the
bound (or the session ends, e.g. a server-side Close whose answer must be
read) the reader parses what it held and reads on. The queue therefore never
holds more than the bound plus one message. While reading is paused, pings
from the peer wait unanswered with the rest of its bytes, and neither the
pong deadline of our keepalive nor ``ws_idle_timeout`` runs: both restart
when reading resumes.

``ws_idle_timeout`` counts data messages only, in either direction: a peer
that answers keepalive pings but says nothing is idle (Close 1001, reason
``idle_timeout``). ``ws_close_timeout`` of 0 waits for the peer's Close
without a deadline.

While the session runs the carrier registers it with the server, so a
graceful drain reaches it (Close 1001, reason ``server_shutdown``) and a
forced one aborts it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Literal, Protocol

import anyio

from pagi.server.protocols.ws_frames import (
    Close,
    CodecState,
    FrameCodec,
    Message,
    Ping,
    Pong,
    Violation,
)
from pagi.server.protocols.ws_handshake import accept_fields, negotiate_deflate
from pagi.server.streams.websocket import WebSocketStream
from pagi.server.transport import TransportHandle
from pagi.server.waits import Flag
from pagi.spec import DisconnectReason

if TYPE_CHECKING:
    from pagi.server.context import ServerContext

__all__ = ["WebSocketCarrier", "WebSocketSession"]

log = logging.getLogger("pagi.server")

#: How a session's carrier ends: after a closing handshake, or dropped.
Ending = Literal["graceful", "abort"]

_PENDING_LIMIT = 65536  # bytes a client may send before the app has accepted


class WebSocketCarrier(Protocol):
    """What a session needs from the connection or stream that carries it."""

    @property
    def peer(self) -> object:
        """Who is on the other end, for log lines."""

    def transport(self) -> TransportHandle:
        """The ``pagi.transport`` handle of the carrier's outbound buffer."""

    def attach(self, session: WebSocketSession) -> None:
        """Register the session with the server (drain, force close, ticker)."""

    def detach(self, session: WebSocketSession) -> None:
        """The session is over; undo :meth:`attach`."""

    def writer(self) -> Callable[[], Coroutine[Any, Any, None]] | None:
        """A writer task to run beside the session, if the buffer needs one."""

    async def receive(self) -> tuple[bytes, str]:
        """Bytes from the peer; at the end ``(b"", reason)``, or ``(b"", "")`` if we closed."""

    def write_nowait(self, data: bytes) -> None:
        """Queue bytes without waiting (server-owned frames)."""

    async def write(self, data: bytes) -> None:
        """Queue bytes, waiting while the buffer is above its high-water mark."""

    def congested(self) -> bool:
        """True while the outbound buffer is at or above its high-water mark."""

    async def flush(self) -> None:
        """Wait until what was queued has been handed to the network."""

    def open(self, fields: list[tuple[bytes, bytes]]) -> None:
        """Queue the answer that accepts the handshake, with these response fields."""

    def refuse(self, status: int, fields: list[tuple[bytes, bytes]], body: bytes) -> None:
        """Queue a complete HTTP response instead of the handshake (denial, 403)."""

    async def send_eof(self) -> None:
        """End our direction after the last queued byte (half-close)."""

    def abort(self, reason: str) -> None:
        """Drop the carrier at once (reset)."""

    async def finish(self) -> None:
        """Close once the last byte has left, or reset at the write timeout."""

    def check_write_timeout(self, now: float) -> None:
        """Called by the server's ticker: enforce the write timeout."""


class WebSocketSession:
    """One WebSocket session, on whatever carries it (see the module docstring)."""

    def __init__(
        self,
        ctx: ServerContext,
        carrier: WebSocketCarrier,
        scope: dict[str, Any],
        leftover: bytes = b"",
    ) -> None:
        self.ctx = ctx
        self.cfg = ctx.config
        self.carrier = carrier
        self.deflate = negotiate_deflate(scope["headers"], self.cfg)
        self.stream = WebSocketStream(
            scope,
            self,
            transport=carrier.transport(),
            max_queue=self.cfg.max_receive_queue,
            max_queue_bytes=self.cfg.max_receive_queue_bytes,
        )
        self.ws: FrameCodec | None = None  # set when the app accepts
        self.bytes_sent = 0
        self._pending = bytearray(leftover)
        self._handshake_over = Flag()
        self._failed = False  # a protocol violation: stop parsing, discard input
        self._backlogged = False  # the receive queue is full: parse and read nothing more
        self._half_closed = False
        self._close_sent_at: float | None = None
        self._draining = False
        self._ending: Ending | None = None  # set once the carrier is to close
        self._end = Flag()
        self._closed = Flag()
        self._idle = self.cfg.ws_idle_timeout
        self._ka_interval = 0.0
        self._ka_timeout: float | None = None
        self._next_ping = 0.0
        self._unanswered_since: float | None = None
        self._last_activity = anyio.current_time()
        self._timer_wakeup: anyio.Event | None = None
        # The timer task runs only once something needs it (keepalive, a close
        # in progress, an idle timeout): most sessions never start it.
        self._timers_running = False
        # The session's task group; helpers (writer, timers) may start while _helpers_open.
        self._group: anyio.abc.TaskGroup | None = None
        self._helpers_open = False
        self._helpers: list[tuple[anyio.CancelScope, Flag]] = []
        self._reading: anyio.CancelScope | None = None
        self._outer: anyio.CancelScope | None = None

    # --- lifecycle ---------------------------------------------------------------------
    async def run(self) -> None:
        """Run the application's session to its end; never raises."""
        ctx = self.ctx
        started = time.perf_counter()
        self.carrier.attach(self)
        if ctx.draining:
            self._draining = True
        try:
            with ctx.track_session("websocket"):
                async with anyio.create_task_group() as tg:
                    self._outer = tg.cancel_scope
                    self._group = tg
                    tg.start_soon(self._io)
                    await self.stream.run(self.ctx.app)
                    await self._closed.wait()
                    tg.cancel_scope.cancel()
        finally:
            self.carrier.detach(self)
            if ctx.access_log is not None:
                ctx.access_log.log(
                    self.stream.scope,
                    self.stream.status,
                    self.bytes_sent,
                    time.perf_counter() - started,
                )

    def begin_drain(self) -> None:
        """Graceful shutdown: Close 1001, the app sees ``server_shutdown``."""
        self._draining = True
        self._server_close(1001, "server shutdown", DisconnectReason.SERVER_SHUTDOWN)

    def force_close(self) -> None:
        self._abort(DisconnectReason.SERVER_SHUTDOWN)
        if self._outer is not None:
            self._outer.cancel()

    def check_timeouts(self, now: float) -> None:
        self.carrier.check_write_timeout(now)

    def end_after_return(self, failed: bool) -> None:
        """The app returned with the session open: Close 1000, or 1011 if it raised (R-WS-22)."""
        self._server_close(1011 if failed else 1000, "", "")

    def write_failed(self, reason: str) -> None:
        """The carrier could not deliver our bytes: the session is over (1006)."""
        self._abort(reason)

    def _abort(self, reason: str) -> None:
        """Drop the connection without a closing handshake: the app sees 1006."""
        self.stream.disconnected(1006, reason)
        self.carrier.abort(reason)
        self._set_ending("abort")

    def _finish(self) -> None:
        """The closing handshake is over (or never began): flush, then close TCP."""
        self._set_ending("graceful")

    def _set_ending(self, how: Ending) -> None:
        if self._ending is None:
            self._ending = how
            self._end.set()
            if self._reading is not None:
                self._reading.cancel()
        self._handshake_over.set()

    async def _io(self) -> None:
        self._helpers_open = True
        writer = self.carrier.writer()
        if writer is not None:
            self._start_helper(writer)  # a carrier whose buffer needs a writer task
        needed = (
            self.cfg.ws_idle_timeout
            or self._ka_interval
            or self._close_sent_at is not None
            or self._failed
        )
        if needed:
            self._start_timers()
        # The reader runs in this task (one task fewer per session); ending
        # the session cancels it wherever it waits.
        with anyio.CancelScope() as reading:
            self._reading = reading
            if self._ending is None:
                await self._reader()
        self._reading = None
        await self._end.wait()
        if self._ending == "graceful":
            with anyio.move_on_after(self.cfg.ws_close_timeout or 1.0):
                await self.carrier.flush()
        # No helper may start now (a drain that arrives finds the session
        # ending and needs no timer); those running stop before the carrier
        # finishes, as the task group they once had did on its way out.
        self._helpers_open = False
        for scope, _ in self._helpers:
            scope.cancel()
        for _, stopped in self._helpers:
            await stopped.wait()
        with anyio.CancelScope(shield=True):
            await self.carrier.finish()  # registered until the last byte left, or write_timeout
        self._closed.set()

    def _start_helper(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``work`` beside the reader until the session ends (the writer, the timers).

        In the session's own task group, under a cancel scope of its own: a
        nested task group per session would cost every idle WebSocket most of
        a kilobyte for helpers most sessions never start.
        """
        assert self._group is not None
        scope = anyio.CancelScope()
        stopped = Flag()
        self._helpers.append((scope, stopped))

        async def helper() -> None:
            try:
                with scope:
                    await work()
            finally:
                stopped.set()

        self._group.start_soon(helper)

    # --- the reader ----------------------------------------------------------------------
    async def _reader(self) -> None:
        carrier = self.carrier
        while True:
            if self._backlogged:
                await self._wait_for_room()
                continue
            data, reason = await carrier.receive()
            if not data:
                if reason:
                    self._on_eof(reason)
                return
            if self.ws is None:
                if self.stream.ended:
                    continue  # an HTTP response replaced the upgrade; ignore the rest
                self._pending += data
                if len(self._pending) > _PENDING_LIMIT:
                    await self._handshake_over.wait()
                continue
            if self._failed or self.ws.state is CodecState.CLOSED:
                continue
            self._feed(data)
            if carrier.congested():
                await carrier.write(b"")  # owed pongs wait for the client to read

    async def _wait_for_room(self) -> None:
        """Backpressure: read nothing until the app has drained the queue, then go on."""
        await self.stream.wait_room()
        self._backlogged = False
        now = anyio.current_time()
        self._last_activity = now  # the peer was not idle: we were not listening
        if self._unanswered_since is not None:
            self._unanswered_since = now  # its pong may be among the unread bytes
        if self._timer_wakeup is not None:
            self._timer_wakeup.set()  # deadlines changed (the timer runs only if needed)
        ws = self.ws
        if ws is None or self._failed or ws.state is CodecState.CLOSED:
            return
        self._process()  # the frames left unparsed when the queue filled
        if self.carrier.congested():
            await self.carrier.write(b"")

    def _on_eof(self, reason: str) -> None:
        ws = self.ws
        if ws is None or ws.state in (CodecState.OPEN, CodecState.REMOTE_CLOSING):
            self.stream.disconnected(1006, reason)  # gone without a Close frame (R-WS-32)
        self._finish()

    def _feed(self, data: bytes) -> None:
        ws = self.ws
        assert ws is not None
        ws.receive_data(data)
        self._process()

    def _process(self) -> None:
        """Act on the events in what the codec holds, until it needs more or the queue fills.

        Leaving early is safe: the codec keeps the unparsed bytes and its
        place, and the next call carries on where this one stopped.
        """
        ws = self.ws
        assert ws is not None
        stream = self.stream
        if stream.backlogged:
            self._backlogged = True
            return
        while (event := ws.next_event()) is not None:
            if isinstance(event, Message):
                if self._close_sent_at is not None:
                    continue  # we are closing: the app is no longer listening
                if self._idle:  # the clock is read only when something uses it
                    self._last_activity = anyio.current_time()
                if not stream.feed_message(event.data):
                    self._server_close(
                        1008, "receive queue overflow", DisconnectReason.QUEUE_OVERFLOW
                    )  # R-WSP-4
                if stream.backlogged:
                    self._backlogged = True
                    return
            elif isinstance(event, Ping):
                if ws.state is CodecState.OPEN:
                    self._write(ws.pong(event.payload))
            elif isinstance(event, Pong):
                self._unanswered_since = None
            elif isinstance(event, Close):
                self._on_close(event)
                return
            else:
                self._on_violation(event)
                return

    def _on_close(self, event: Close) -> None:
        ws = self.ws
        assert ws is not None
        if ws.state is CodecState.REMOTE_CLOSING:
            # The peer closes first: echo its code, report it unchanged (R-WS-31).
            self.stream.disconnected(event.code, event.reason)
            self._write(ws.close(event.code, event.reason))
        self._finish()  # otherwise the answer to our Close: the handshake is over

    def _on_violation(self, event: Violation) -> None:
        """The peer broke the protocol: Close with the codec's code, report it, wait for EOF."""
        ws = self.ws
        assert ws is not None
        code = event.code
        token = DisconnectReason.BODY_TOO_LARGE if code == 1009 else DisconnectReason.PROTOCOL_ERROR
        self._failed = True
        self.stream.disconnected(code, token)
        if ws.state is CodecState.OPEN:
            self._write(ws.close(code))
            log.debug("WebSocket protocol violation from %s: %s", self.carrier.peer, event.detail)
        self._close_sent_at = self._close_sent_at or anyio.current_time()
        self._wake_timer()  # the timer task half-closes; the reader waits for EOF

    # --- writing -------------------------------------------------------------------------
    def _write(self, frame: bytes) -> None:
        """Queue a server-owned frame (pong, ping, close) without waiting."""
        self.bytes_sent += len(frame)
        self.carrier.write_nowait(frame)

    def _server_close(self, code: int, text: str, token: str) -> None:
        """Start a closing handshake the server decided on."""
        ws = self.ws
        if ws is None or ws.state is not CodecState.OPEN:
            return
        self.stream.disconnected(code, token)
        self._write(ws.close(code, text))
        self._close_sent_at = anyio.current_time()
        self._wake_timer()

    # --- WebSocketWire ---------------------------------------------------------------------
    async def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        params = reply = None
        if self.deflate is not None:
            params, reply = self.deflate
        fields, has_date, has_server = accept_fields(subprotocol, reply, headers)
        fields.extend(self.ctx.server_fields(has_date, has_server))
        self.carrier.open(fields)
        self._last_activity = anyio.current_time()
        self.ws = FrameCodec(
            max_frame=self.cfg.max_ws_frame_size,
            max_message=self.cfg.max_ws_message_size,
            deflate=params,
        )
        pending, self._pending = bytes(self._pending), bytearray()
        self._handshake_over.set()
        if pending:
            self._feed(pending)
        if self._draining:
            self._server_close(1001, "server shutdown", DisconnectReason.SERVER_SHUTDOWN)
        await self.carrier.flush()

    async def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        # The same field rules as an accept, without subprotocol or extensions.
        fields, has_date, has_server = accept_fields(None, None, headers)
        fields.extend(self.ctx.server_fields(has_date, has_server))
        self.bytes_sent += len(body)
        self.carrier.refuse(status, fields, body)
        self._handshake_over.set()
        await self.carrier.flush()
        self._finish()

    async def send_message(self, data: str | bytes) -> None:
        ws = self.ws
        if ws is None or ws.state is not CodecState.OPEN or self._ending is not None:
            return
        frame = ws.message(data)
        self.bytes_sent += len(frame)
        if self._idle:
            self._last_activity = anyio.current_time()
        await self.carrier.write(frame)  # blocks at the high-water mark (R-FLOW-12)

    async def close(self, code: int, reason: str) -> None:
        ws = self.ws
        if ws is None or ws.state is not CodecState.OPEN:
            return
        self.stream.disconnected(code, reason)
        self._write(ws.close(code, reason))
        self._close_sent_at = anyio.current_time()
        self._wake_timer()
        await self.carrier.flush()

    def keepalive(self, interval: float, timeout: float | None) -> None:
        self._ka_interval = interval
        self._ka_timeout = timeout if interval else None
        self._next_ping = anyio.current_time() + interval
        if not interval:
            self._unanswered_since = None
        self._wake_timer()

    async def _half_close(self) -> None:
        """After failing the connection: our Close out, then FIN, so the peer reads it.

        Closing outright could reset the connection while the peer's unread
        bytes sit in our buffer, and a reset can destroy our Close frame
        before the peer reads it. The reader discards input until EOF.
        """
        self._half_closed = True
        await self.carrier.flush()
        await self.carrier.send_eof()

    # --- timers ----------------------------------------------------------------------------
    def _wake_timer(self) -> None:
        if self._timer_wakeup is not None:
            self._timer_wakeup.set()
        elif not self._timers_running and self._helpers_open:
            self._start_timers()

    def _start_timers(self) -> None:
        self._timers_running = True
        self._start_helper(self._timers)

    async def _timers(self) -> None:
        idle = self.cfg.ws_idle_timeout
        close_timeout = self.cfg.ws_close_timeout
        while True:
            if self._failed and not self._half_closed:
                await self._half_close()
            now = anyio.current_time()
            deadline = float("inf")
            ws = self.ws
            if self._close_sent_at is not None:
                if close_timeout:
                    due = self._close_sent_at + close_timeout
                    if now >= due:
                        self._abort(DisconnectReason.CLIENT_TIMEOUT)  # no answer to our Close
                        return
                    deadline = due
            elif ws is not None and ws.state is CodecState.OPEN:
                if self._ka_interval:
                    if now >= self._next_ping:
                        self._write(ws.ping(b"pagi"))
                        self._next_ping = now + self._ka_interval
                        if self._ka_timeout and self._unanswered_since is None:
                            self._unanswered_since = now
                    deadline = min(deadline, self._next_ping)
                # While reading is paused a pong cannot be seen and the peer is
                # not idle; _wait_for_room restarts both clocks and wakes us.
                if self._unanswered_since is not None and self._ka_timeout and not self._backlogged:
                    due = self._unanswered_since + self._ka_timeout
                    if now >= due:
                        self._abort(DisconnectReason.KEEPALIVE_TIMEOUT)  # R-WS-43
                        return
                    deadline = min(deadline, due)
                if idle and not self._backlogged:
                    due = self._last_activity + idle
                    if now >= due:
                        self._server_close(1001, "idle timeout", DisconnectReason.IDLE_TIMEOUT)
                        continue
                    deadline = min(deadline, due)
            wakeup = self._timer_wakeup = anyio.Event()
            with anyio.move_on_after(deadline - now if deadline != float("inf") else None):
                await wakeup.wait()
            self._timer_wakeup = None
