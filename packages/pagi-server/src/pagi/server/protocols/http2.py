"""HTTP/2 connection driver (RFC 9113) on the ``h2`` state machine.

Theory of operation
-------------------
One task reads the socket. Each chunk first goes through the connection's
:class:`~pagi.server.protocols.http2_guard.FrameGuard` (frame size, header
block size, control-frame floods), then to ``h2``; every event ``h2``
produces becomes a call on a per-stream :class:`H2Stream`, which is both the
:class:`~pagi.server.streams.http.HTTPStream`'s response wire and its body
source, so the event rules, ``pagi.connection`` and the backstop are the
ones HTTP/1.1 uses (R-H2-1). Each request runs its application in its own
task of the connection's task group.

* ``RequestReceived`` builds the scope from the pseudo-headers: ``:method``,
  ``:path`` (split into ``raw_path`` and ``query_string``), ``:scheme``;
  ``:authority`` becomes the ``host`` header; pseudo-headers never reach
  the scope; ``cookie`` crumbs are merged (R-H2-10..12). A method or scheme
  that is not a token gets RST_STREAM PROTOCOL_ERROR; a header list over
  ``max_header_size``/``max_header_count`` gets 431, a declared body over
  ``max_body_size`` 413, and the connection lives on.
* Request bodies are pulled, as in HTTP/1.1: DATA is queued on its stream
  and its flow-control credit is returned only when the app comes back to
  ``receive`` for more, so a stream buffers at most its window
  (``h2_initial_stream_window``) and a connection at most
  ``h2_initial_connection_window``. Bytes nobody will read (the stream
  finished, was reset, or is over ``max_body_size``) are credited at once,
  and a response that completes while the client is still sending is
  followed by RST_STREAM NO_ERROR.
* Bounds: at most ``h2_max_concurrent_streams`` app tasks per connection,
  reset or not (more streams get REFUSED_STREAM); streams reset by the
  client before their response (Rapid Reset) and refused streams count
  toward ``h2_max_resets_per_window``; past it, or past a guard limit, the
  connection gets GOAWAY ENHANCE_YOUR_CALM, a warning naming the peer and
  the limit, and is closed. While the outbound buffer is above its high
  watermark (a client that sends PINGs but does not read the ACKs) the
  socket is not read.
* Deadlines come from the server's ticker (:meth:`H2Connection.check_timeouts`):
  a header block unfinished after ``header_timeout`` ends the connection;
  an app waiting in ``receive`` longer than ``body_timeout`` for body bytes
  gets ``http.disconnect`` and its stream RST_STREAM CANCEL; a connection
  with no stream for ``keepalive_timeout`` gets GOAWAY and is closed.

Writers hold the response head until the first body bytes (R-HTTP-23), send
DATA no larger than the peer's window and frame size allow and wait for
WINDOW_UPDATE when it is empty. What ``h2`` has to send is not written per
frame: one sender task moves it to the connection's
:class:`~pagi.server.transport.Outbox` once every stream that was ready has
had its turn, so responses finishing together leave in one write. A stream
sending a large body yields after every ``write_low_watermark`` bytes and
waits while the outbox is above its high mark, so streams share the
connection in turn.

WebSockets (RFC 8441): with ``h2_websocket`` on, the first SETTINGS
advertise ``SETTINGS_ENABLE_CONNECT_PROTOCOL`` and an Extended CONNECT with
``:protocol websocket`` becomes a ``websocket`` scope whose session runs on
the stream through ``http2_websocket.H2Carrier``: it takes one of the
``h2_max_concurrent_streams`` places, its DATA is credited as the session
reads it, a drain closes it with 1001, and ending it ends only that stream.
Any other CONNECT gets 501.

Not supported: server push (never sent, R-H2-8).
"""

from __future__ import annotations

import logging
import time

import anyio
import anyio.abc
import anyio.lowlevel
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from pagi.server.context import ServerContext
from pagi.server.net.outbox import Outbox
from pagi.server.protocols.http1_parser import H2_PREFACE
from pagi.server.protocols.http2_guard import FrameGuard, H2LimitExceeded, RateWindow
from pagi.server.protocols.http2_request import MalformedRequest, RequestHead, read_request_head
from pagi.server.protocols.http2_stream import H2Stream
from pagi.server.protocols.http2_websocket import H2Carrier
from pagi.server.protocols.responses import error_response
from pagi.server.protocols.ws_handshake import HandshakeError, check_handshake
from pagi.server.protocols.ws_session import WebSocketSession
from pagi.server.scope import ConnectionInfo, build_scope
from pagi.server.streams.dispatch import choose_scope_type
from pagi.server.streams.http import HTTPStream
from pagi.spec import DisconnectReason

__all__ = ["PREFACE", "H2Connection"]

PREFACE = H2_PREFACE

log = logging.getLogger("pagi.server")

ErrorCodes = h2.errors.ErrorCodes
_H2Error = h2.exceptions.ProtocolError
_SettingCodes = h2.settings.SettingCodes

_DEFAULT_WINDOW = 65535
_MAX_PARKED = 10  # idle app workers kept per connection

_RequestReceived = h2.events.RequestReceived
_DataReceived = h2.events.DataReceived
_StreamEnded = h2.events.StreamEnded
_StreamReset = h2.events.StreamReset
_WindowUpdated = h2.events.WindowUpdated
_RemoteSettingsChanged = h2.events.RemoteSettingsChanged
_ConnectionTerminated = h2.events.ConnectionTerminated


def _goaway_frame(last_stream_id: int, code: int) -> bytes:
    """A serialised GOAWAY frame (RFC 9113 section 6.8), sent without telling ``h2``.

    ``h2`` refuses to send anything after its own GOAWAY, which would cut off
    the responses a graceful drain is meant to let finish.
    """
    payload = last_stream_id.to_bytes(4, "big") + int(code).to_bytes(4, "big")
    return len(payload).to_bytes(3, "big") + b"\x07\x00\x00\x00\x00\x00" + payload


class _Parked:
    """An idle worker waiting for its next request."""

    __slots__ = ("state", "wake")

    def __init__(self) -> None:
        self.wake = anyio.Event()
        self.state: H2Stream | H2Carrier | None = None


class H2Connection:
    """One HTTP/2 connection: a reader, a sender, and one task per request stream."""

    __slots__ = (
        "_all_done",
        "_guard",
        "_idle_since",
        "_initial",
        "_linger",
        "_linger_scope",
        "_parked",
        "_read_scope",
        "_resets",
        "_send_scheduled",
        "_send_wanted",
        "_socket_closed",
        "_tg",
        "_unpumped",
        "_window",
        "cfg",
        "closed",
        "closing",
        "ctx",
        "h2",
        "info",
        "outbox",
        "peer",
        "stream",
        "streams",
        "waiting",
    )

    def __init__(
        self,
        ctx: ServerContext,
        stream: anyio.abc.ByteStream,
        info: ConnectionInfo,
        *,
        initial: bytes = b"",
    ) -> None:
        self.ctx = ctx
        self.cfg = cfg = ctx.config
        self.stream = stream
        self.info = info
        self._initial = initial
        # Request heads are checked by http2_request (malformed is a stream error
        # there, a connection error in h2); responses were checked by pagi.spec
        # and are normalised in H2Stream.start.
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self.h2 = conn = h2.connection.H2Connection(config=config)
        # What the first SETTINGS frame announces (see _start) ...
        conn.local_settings = h2.settings.Settings(client=False, initial_values=self._settings())
        conn.max_inbound_frame_size = cfg.h2_max_frame_size
        conn.decoder.max_header_list_size = cfg.h2_max_header_list_size
        self.outbox = Outbox.open(
            stream,
            high=cfg.write_high_watermark,
            low=cfg.write_low_watermark,
            write_timeout=cfg.write_timeout,
        )
        self.outbox.on_broken = self._on_write_failed
        #: Streams whose app task is running (reset or not), by stream id.
        self.streams: dict[int, H2Stream | H2Carrier] = {}
        #: Streams whose app waits in ``receive`` for body bytes (``body_timeout``).
        self.waiting: dict[int, H2Stream] = {}
        #: No frame may be sent any more (GOAWAY sent or received, or the socket failed).
        self.closed = False
        #: No new stream is accepted (draining, or closed).
        self.closing = False
        self._guard = FrameGuard(
            max_frame_size=cfg.h2_max_frame_size,
            max_header_block=cfg.h2_max_header_list_size,
            max_cheap_frames=cfg.h2_max_control_frames_per_window,
            window=cfg.h2_flood_window,
            is_open=self.streams.__contains__,
        )
        self._resets = RateWindow(cfg.h2_max_resets_per_window, cfg.h2_flood_window)
        self._window: anyio.Event | None = None
        self._send_wanted: anyio.Event | None = None
        self._send_scheduled = False
        self._unpumped = 0
        self._all_done: anyio.Event | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._parked: list[_Parked] = []
        self._read_scope: anyio.CancelScope | None = None
        self._idle_since = time.monotonic()
        self._socket_closed = False
        self._linger = False
        self._linger_scope: anyio.CancelScope | None = None
        client = info.client
        self.peer = f"{client[0]}:{client[1]}" if client is not None else "unix socket"

    # --- output ---------------------------------------------------------------------
    def pump(self) -> None:
        """Hand whatever ``h2`` has to send to the outbox now."""
        self._unpumped = 0
        data = self.h2.data_to_send()
        if data:
            self.outbox.write_nowait(data)

    def send_soon(self) -> None:
        """Have the sender pump once every stream that is ready has run (coalesced writes)."""
        if not self._send_scheduled:
            self._send_scheduled = True
            if self._send_wanted is not None:
                self._send_wanted.set()

    def queued(self, size: int) -> bool:
        """``size`` body bytes were given to ``h2``; True when the writer should yield."""
        self._unpumped += size
        if self._unpumped < self.outbox.low:
            self.send_soon()
            return False
        self.pump()
        return True

    async def make_room(self) -> None:
        """Let other streams run; wait while the outbox is above its high watermark."""
        outbox = self.outbox
        if outbox.buffered >= outbox.high:
            await outbox.write(b"")
        else:
            await anyio.lowlevel.checkpoint()

    async def _sender(self) -> None:
        outbox = self.outbox
        while True:
            if not self._send_scheduled:
                wanted = self._send_wanted = anyio.Event()
                await wanted.wait()
                self._send_wanted = None
            self._send_scheduled = False
            self._unpumped = 0
            data = self.h2.data_to_send()
            if data:
                outbox.write_nowait(data, wake=False)
                if not outbox.direct:
                    await outbox.flush()

    async def wait_window(self) -> None:
        if self._window is None:
            self._window = anyio.Event()
        await self._window.wait()

    def _wake_writers(self) -> None:
        if self._window is not None:
            self._window.set()
            self._window = None

    def credit(self, stream_id: int, size: int) -> None:
        """Return ``size`` bytes of flow-control credit (``h2`` decides when to send it)."""
        if size <= 0 or self.closed:
            return
        try:
            self.h2.acknowledge_received_data(size, stream_id)
        except (_H2Error, ValueError):
            return
        self.send_soon()

    def reset_id(self, stream_id: int, code: ErrorCodes) -> None:
        """Send RST_STREAM ``code`` for ``stream_id`` (nothing once the connection is closed)."""
        self._reset_id(stream_id, code)

    def window_changed(self) -> None:
        """Flow-control room may have changed: wake writers and tunnels waiting for it."""
        self._wake_writers()
        for state in list(self.streams.values()):
            if type(state) is H2Carrier:
                state.window_opened()

    def _reset_id(self, stream_id: int, code: ErrorCodes) -> None:
        if self.closed:
            return
        try:
            self.h2.reset_stream(stream_id, error_code=code)
        except _H2Error:
            return
        self.send_soon()

    def reset_stream(self, state: H2Stream | H2Carrier, code: ErrorCodes) -> None:
        """Reset one stream; its unread body is dropped and its credit returned."""
        if state.reset:
            return
        state.reset = True
        self._reset_id(state.sid, code)
        self._drop_body(state)

    def _drop_body(self, state: H2Stream | H2Carrier) -> None:
        if state.http is not None:
            state.http.discard_body()
        if state.unacked:
            self.credit(state.sid, state.unacked)
            state.unacked = 0

    def _respond_at_once(self, stream_id: int, status: int, ended: bool) -> None:
        """A server-made response without running the app (431, 413, 501)."""
        if self.closed:
            return
        if self.ctx.metrics is not None:
            self.ctx.metrics.answered(status)
        headers = [
            (b":status", b"%d" % status),
            (b"content-length", b"0"),
            (b"date", self.ctx.date_value()),
        ]
        try:
            self.h2.send_headers(stream_id, headers, end_stream=True)
        except _H2Error:
            return
        if not ended:
            self._reset_id(stream_id, ErrorCodes.NO_ERROR)  # the body is not wanted
        self.send_soon()

    # --- ending the connection ------------------------------------------------------
    def _stop(self, reason: str) -> None:
        """No more frames: end every stream with ``reason`` and stop reading."""
        self.closed = True
        self.closing = True
        for state in list(self.streams.values()):
            if state.http is not None:
                state.http.disconnect(reason)
            elif type(state) is H2Carrier:
                state.end_input(reason)  # its session sees the drop (1006)
        self._wake_writers()
        parked, self._parked = self._parked, []
        for slot in parked:
            slot.wake.set()  # no request: the worker ends
        if self._read_scope is not None:
            self._read_scope.cancel()

    def _goaway(self, code: ErrorCodes, debug: str, reason: str) -> None:
        """Send GOAWAY ``code`` and close; in-flight streams end with ``reason``."""
        if self.closed:
            return
        self.pump()
        try:
            self.h2.close_connection(error_code=code, additional_data=debug.encode()[:256])
        except _H2Error:
            pass
        self.pump()
        self._linger = True
        self._stop(reason)

    def _too_much(self, code: ErrorCodes, limit: str, detail: str) -> None:
        """A client went past a limit: a warning naming it, GOAWAY, close."""
        if self.closed:
            return
        log.warning(
            "HTTP/2 client %s: %s; limit %s=%s reached, sending GOAWAY %s and closing",
            self.peer,
            detail,
            limit,
            getattr(self.cfg, limit),
            code.name,
        )
        self._goaway(code, limit, DisconnectReason.PROTOCOL_ERROR)

    def _on_write_failed(self, reason: str) -> None:
        self._stop(reason)

    # --- server integration ---------------------------------------------------------
    def begin_drain(self) -> None:
        """Send GOAWAY NO_ERROR: in-flight streams finish, new ones are refused."""
        if self._linger_scope is not None:
            self._linger_scope.cancel()  # the server is stopping: no need to wait
        for state in list(self.streams.values()):
            if type(state) is H2Carrier and state.session is not None:
                state.session.begin_drain()  # Close 1001; the stream ends after the handshake
        if self.closing:
            return
        self.closing = True
        if not self.closed:
            self.pump()
            self.outbox.write_nowait(
                _goaway_frame(self.h2.highest_inbound_stream_id, ErrorCodes.NO_ERROR)
            )
        if not self.streams and self._read_scope is not None:
            self._read_scope.cancel()

    def force_close(self) -> None:
        for state in list(self.streams.values()):
            if state.http is not None:
                state.http.disconnect(DisconnectReason.SERVER_SHUTDOWN)
            elif type(state) is H2Carrier and state.session is not None:
                state.session.force_close()
        self.outbox.abort(DisconnectReason.SERVER_SHUTDOWN)
        self.closed = self.closing = True
        self._wake_writers()
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    def check_timeouts(self, now: float) -> None:
        """Called by the server's ticker: header, body and idle deadlines, stuck writes."""
        self.outbox.check_write_timeout(now)
        if self.closed:
            return
        cfg = self.cfg
        since = self._guard.header_since
        if since is not None and cfg.header_timeout and now - since >= cfg.header_timeout:
            log.warning(
                "HTTP/2 client %s: header block unfinished after header_timeout=%ss, closing",
                self.peer,
                cfg.header_timeout,
            )
            self._goaway(ErrorCodes.NO_ERROR, "header_timeout", DisconnectReason.CLIENT_TIMEOUT)
            return
        if cfg.body_timeout and self.waiting:
            for state in list(self.waiting.values()):
                waiting = state.waiting_since
                if waiting is not None and now - waiting >= cfg.body_timeout:
                    self._body_timed_out(state)
        timeout = cfg.keepalive_timeout
        if (
            timeout
            and not self.streams
            and since is None
            and not self.closing
            and now - self._idle_since >= timeout
        ):
            self._goaway(ErrorCodes.NO_ERROR, "idle", DisconnectReason.KEEPALIVE_TIMEOUT)

    def _body_timed_out(self, state: H2Stream) -> None:
        log.warning(
            "HTTP/2 client %s: stream %d sent no body bytes for body_timeout=%ss,"
            " sending RST_STREAM CANCEL",
            self.peer,
            state.sid,
            self.cfg.body_timeout,
        )
        self.waiting.pop(state.sid, None)
        state.waiting_since = None
        if state.http is not None:
            state.http.body_timed_out()
        self.reset_stream(state, ErrorCodes.CANCEL)

    def buffered_body_bytes(self) -> dict[int, int]:
        """Request body bytes held per stream (received, credit not yet returned)."""
        return {sid: state.unacked for sid, state in self.streams.items()}

    # --- lifecycle ------------------------------------------------------------------
    async def run(self) -> None:
        """Serve streams until the connection ends; never raises."""
        self.ctx.connections.add(self)
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                self.outbox.spawn = tg.start_soon
                tg.start_soon(self._sender, name="h2 sender")
                self._start()
                await self._read()
                if not self.closed:
                    self._stop(DisconnectReason.CLIENT_CLOSED)
                self.pump()
                with anyio.CancelScope(shield=True):
                    await self._close_socket()
                if self.streams:  # apps that have not noticed yet; they cannot write now
                    done = self._all_done = anyio.Event()
                    with anyio.move_on_after(self.cfg.shutdown_timeout or 5):
                        await done.wait()
                tg.cancel_scope.cancel()
        except Exception:
            log.exception("HTTP/2 connection handler failed")
        finally:
            with anyio.CancelScope(shield=True):
                await self._close_socket()
            self.ctx.connections.discard(self)

    def _settings(self) -> dict[h2.settings.SettingCodes, int]:
        cfg = self.cfg
        return {
            _SettingCodes.MAX_CONCURRENT_STREAMS: cfg.h2_max_concurrent_streams,
            _SettingCodes.MAX_HEADER_LIST_SIZE: cfg.h2_max_header_list_size,
            _SettingCodes.MAX_FRAME_SIZE: cfg.h2_max_frame_size,
            _SettingCodes.INITIAL_WINDOW_SIZE: cfg.h2_initial_stream_window,
            _SettingCodes.ENABLE_CONNECT_PROTOCOL: int(cfg.h2_websocket),
        }

    def _start(self) -> None:
        cfg = self.cfg
        conn = self.h2
        conn.initiate_connection()
        # ... and what h2 enforces. The stream limit is the driver's: it refuses
        # streams past it with REFUSED_STREAM (RFC 9113 5.1.2) and counts the apps
        # of reset streams too, where h2 would end the whole connection. A window
        # smaller than the default applies once the client has acknowledged it.
        settings = self._settings()
        settings[_SettingCodes.MAX_CONCURRENT_STREAMS] = 2**31 - 1
        window = cfg.h2_initial_stream_window
        settings[_SettingCodes.INITIAL_WINDOW_SIZE] = max(window, _DEFAULT_WINDOW)
        conn.local_settings = h2.settings.Settings(client=False, initial_values=settings)
        if window < _DEFAULT_WINDOW:
            conn.local_settings[_SettingCodes.INITIAL_WINDOW_SIZE] = window  # pending the ACK
        extra = cfg.h2_initial_connection_window - _DEFAULT_WINDOW
        if extra > 0:
            conn.increment_flow_control_window(extra)
        self.pump()

    async def _close_socket(self) -> None:
        if self._socket_closed:
            return
        self._socket_closed = True
        if self._linger:
            with anyio.move_on_after(1) as self._linger_scope:
                await self.outbox.flush()
                await self._drain_input()
        # Every byte delivered, or a reset at write_timeout: never left to the event loop.
        await self.outbox.close()

    async def _drain_input(self) -> None:
        """After our GOAWAY: half-close, then read and drop what still comes.

        Closing with unread input makes the kernel send a reset, which can
        destroy the GOAWAY before the client has read it.
        """
        try:
            await self.stream.send_eof()
        except Exception:
            return
        total = 0
        while total < 1024 * 1024:
            try:
                total += len(await self.stream.receive(65536))
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                return
            except OSError:
                return

    async def _read(self) -> None:
        with anyio.CancelScope() as scope:
            self._read_scope = scope
            data = self._initial
            self._initial = b""
            receive = self.stream.receive
            guard = self._guard
            outbox = self.outbox
            while not self.closed:
                if data:
                    try:
                        guard.scan(data, time.monotonic())
                    except H2LimitExceeded as exc:
                        self._too_much(exc.code, exc.limit, exc.detail)
                        return
                    try:
                        events = self.h2.receive_data(data)
                    except h2.exceptions.ProtocolError as exc:
                        self._protocol_error(exc)
                        return
                    if events:
                        self._dispatch(events)
                    if self.closed or (self.closing and not self.streams):
                        return
                    self.pump()
                    if outbox.buffered >= outbox.high:
                        # Stop reading while the client does not read what we send
                        # (a PING flood's ACKs): it cannot make us queue more.
                        await outbox.write(b"")
                try:
                    data = await receive(65536)
                except (
                    anyio.EndOfStream,
                    anyio.BrokenResourceError,
                    anyio.ClosedResourceError,
                    OSError,
                ):
                    return

    def _protocol_error(self, exc: h2.exceptions.ProtocolError) -> None:
        """``h2`` found the client at fault and has queued its GOAWAY."""
        if isinstance(exc, h2.exceptions.DenialOfServiceError):
            log.warning(
                "HTTP/2 client %s: %s; limit h2_max_header_list_size=%s, closing",
                self.peer,
                exc,
                self.cfg.h2_max_header_list_size,
            )
        else:
            log.info("HTTP/2 client %s: protocol error: %s; closing", self.peer, exc)
        self.pump()
        self._stop(DisconnectReason.PROTOCOL_ERROR)

    def _dispatch(self, events: list[h2.events.Event]) -> None:
        reset_at_once: set[int] | None = None
        for event in events:
            kind = type(event)
            if kind is _RequestReceived:
                if reset_at_once is None:
                    reset_at_once = {e.stream_id for e in events if type(e) is _StreamReset}
                self._on_request(event, reset_at_once)  # type: ignore[arg-type]
            elif kind is _DataReceived:
                self._on_data(event)  # type: ignore[arg-type]
            elif kind is _StreamEnded:
                state = self.streams.get(event.stream_id)  # type: ignore[attr-defined]
                if state is not None and state.http is not None:
                    state.http.end_body()
                elif type(state) is H2Carrier:
                    state.end_input()  # the peer's side of the byte stream is over
            elif kind is _StreamReset:
                self._on_reset(event)  # type: ignore[arg-type]
            elif kind is _WindowUpdated or kind is _RemoteSettingsChanged:
                self.window_changed()
            elif kind is _ConnectionTerminated:
                # h2 sends nothing after the client's GOAWAY: what is in flight ends here.
                self._stop(DisconnectReason.CLIENT_CLOSED)
            if self.closed:
                return

    def _count_reset(self, what: str) -> None:
        if self._resets.hit(time.monotonic()):
            self._too_much(
                ErrorCodes.ENHANCE_YOUR_CALM,
                "h2_max_resets_per_window",
                f"{self._resets.count} streams {what} before their response"
                f" in under {self._resets.window:g}s",
            )

    def _on_reset(self, event: h2.events.StreamReset) -> None:
        state = self.streams.get(event.stream_id)
        if state is None or state.reset:
            return  # finished already, or we reset it first
        state.reset = True
        if state.http is not None:
            state.http.disconnect(DisconnectReason.CLIENT_CLOSED)
        elif type(state) is H2Carrier:
            state.end_input(DisconnectReason.CLIENT_CLOSED)  # a drop: the app sees 1006
        self._drop_body(state)
        self._wake_writers()
        if not state.ended:
            self._count_reset("reset")

    def _on_data(self, event: h2.events.DataReceived) -> None:
        sid = event.stream_id
        size = event.flow_controlled_length
        state = self.streams.get(sid)
        if type(state) is H2Carrier:
            self._tunnel_data(state, event)
            return
        http = state.http if state is not None else None
        if state is None or http is None or state.reset or http.discarding:
            self.credit(sid, size)  # nobody will read it
            return
        data = event.data
        length = len(data)
        if size > length:
            self.credit(sid, size - length)  # padding
        if not length:
            return
        http.feed(data)
        state.unacked += length
        max_body = self.cfg.max_body_size
        if max_body and http.body_size > max_body:
            http.error_status = 413
            http.disconnect(DisconnectReason.BODY_TOO_LARGE)
            self._drop_body(state)

    def _on_request(self, event: h2.events.RequestReceived, reset_at_once: set[int]) -> None:
        sid = event.stream_id
        if self.closing:
            self._reset_id(sid, ErrorCodes.REFUSED_STREAM)
            return
        if sid in reset_at_once:
            self._count_reset("reset")  # Rapid Reset: the app is never started
            return
        cfg = self.cfg
        if len(self.streams) >= cfg.h2_max_concurrent_streams:
            # Apps of streams the client reset still run and still count.
            self._reset_id(sid, ErrorCodes.REFUSED_STREAM)
            self._count_reset("refused")
            return
        ended = event.stream_ended is not None
        try:
            head = read_request_head(event.headers or ())
        except MalformedRequest as exc:
            log.info("HTTP/2 client %s: stream %d is malformed (%s)", self.peer, sid, exc)
            self._reset_id(sid, ErrorCodes.PROTOCOL_ERROR)  # a stream error (RFC 9113 8.1.1)
            return
        if head.size > cfg.max_header_size or head.field_count > cfg.max_header_count:
            self._respond_at_once(sid, 431, ended)
            return
        method = head.method
        if head.protocol or method == b"CONNECT":
            if method == b"CONNECT" and head.protocol == b"websocket" and cfg.h2_websocket:
                self._open_tunnel(sid, head, ended)
            else:
                self._respond_at_once(sid, 501, ended)  # no other CONNECT is served
            return
        declared = head.content_length
        if (
            declared
            and cfg.max_body_size
            and (not declared.isdigit() or int(declared) > cfg.max_body_size)
        ):
            self._respond_at_once(sid, 413 if declared.isdigit() else 400, ended)
            return
        method_name = method.decode("ascii")
        scope_type = choose_scope_type(method_name, accept=head.accept)
        scope = build_scope(
            scope_type,
            self.info,
            method=method_name,
            http_version="2",
            target=head.path,
            headers=head.headers,
        )
        scope["scheme"] = head.scheme.decode("ascii")
        if scope_type == "http":
            scope["extensions"]["fullflush"] = {}
        state = H2Stream(self, sid, is_head=method == b"HEAD")
        http = HTTPStream(scope, state, transport=self.outbox.handle(), has_body=not ended)
        http.source = state
        state.http = http
        self.streams[sid] = state
        self._start_app(state)

    def _start_app(self, state: H2Stream | H2Carrier) -> None:
        parked = self._parked
        if parked:
            slot = parked.pop()
            slot.state = state
            slot.wake.set()
        else:
            assert self._tg is not None
            self._tg.start_soon(self._worker, state, name="h2 stream")

    async def _worker(self, state: H2Stream | H2Carrier) -> None:
        """Run apps one after another: a busy connection does not start a task per request.

        Like keep-alive requests on HTTP/1.1, requests of one connection may
        follow each other in the same task; a connection keeps at most
        ``_MAX_PARKED`` idle workers.
        """
        current: H2Stream | H2Carrier | None = state
        while current is not None:
            await self._run_stream(current)
            if self.closing or len(self._parked) >= _MAX_PARKED:
                return
            slot = _Parked()
            self._parked.append(slot)
            await slot.wake.wait()
            current = slot.state

    async def _run_stream(self, state: H2Stream | H2Carrier) -> None:
        if type(state) is H2Carrier:
            await self._run_tunnel(state)
            return
        assert type(state) is H2Stream
        http = state.http
        assert http is not None
        access_log = self.ctx.access_log
        started = time.perf_counter() if access_log is not None else 0.0
        try:
            if http.scope["type"] == "sse":
                from pagi.server.streams.sse import serve_sse

                await serve_sse(self.ctx, http)
            else:
                await http.run(self.ctx.app)
        finally:
            self._finish(state)
            if access_log is not None:
                elapsed = time.perf_counter() - started
                access_log.log(http.scope, state.status, state.bytes_sent, elapsed)

    def _finish(self, state: H2Stream) -> None:
        http = state.http
        assert http is not None
        if not self.closed and not state.reset:
            if not state.ended:
                self.reset_stream(state, ErrorCodes.CANCEL)
            elif not http.body_complete:
                # The response is complete and the client is still sending:
                # ask it to stop (RFC 9113 section 8.1) rather than read on.
                self.reset_stream(state, ErrorCodes.NO_ERROR)
        http.discard_body()
        # Break the reference cycles of the exchange (stream <-> wire, the
        # connection's hook -> stream) so it is freed now: left to the cycle
        # collector, a busy connection's garbage cost ~20% of the CPU and
        # full collections of 100+ ms.
        http.connection.on_disconnected = None
        http.source = None
        state.http = None
        self._release(state)

    def _release(self, state: H2Stream | H2Carrier) -> None:
        """The stream's app is done: return its credit, free its place."""
        if state.unacked:
            self.credit(state.sid, state.unacked)
            state.unacked = 0
        self.waiting.pop(state.sid, None)
        if self.streams.pop(state.sid, None) is None:
            return
        if not self.streams:
            self._idle_since = time.monotonic()
            if self._all_done is not None:
                self._all_done.set()
            if self.closing and self._read_scope is not None:
                self._read_scope.cancel()

    # --- WebSockets on streams (RFC 8441) -------------------------------------------------
    def _open_tunnel(self, sid: int, head: RequestHead, ended: bool) -> None:
        if not head.scheme or not head.path or ended:
            # RFC 8441 4: an Extended CONNECT carries :scheme and :path, and a
            # WebSocket needs the stream open in both directions.
            log.info("HTTP/2 client %s: stream %d is a malformed Extended CONNECT", self.peer, sid)
            self._reset_id(sid, ErrorCodes.PROTOCOL_ERROR)
            return
        scope = build_scope(
            "websocket",
            self.info,
            method="CONNECT",
            http_version="2",
            target=head.path,
            headers=head.headers,
        )
        carrier = H2Carrier(self, sid, scope)
        self.streams[sid] = carrier
        self._start_app(carrier)

    def _tunnel_data(self, carrier: H2Carrier, event: h2.events.DataReceived) -> None:
        size = event.flow_controlled_length
        data = event.data
        if carrier.reset:
            self.credit(carrier.sid, size)  # nobody will read it
            return
        if size > len(data):
            self.credit(carrier.sid, size - len(data))  # padding
        if data:
            carrier.unacked += len(data)  # credited when the session reads it
            carrier.feed(data)

    async def _run_tunnel(self, carrier: H2Carrier) -> None:
        scope = carrier.scope
        try:
            try:
                check_handshake(scope, carrier="h2")
            except HandshakeError as exc:
                fields, body = error_response(
                    exc.status, self.ctx, text=exc.text, headers=exc.headers
                )
                fields = [(n, v) for n, v in fields if n != b"content-length"]
                carrier.refuse(exc.status, fields, body)
                await carrier.flush()
                if self.ctx.access_log is not None:
                    self.ctx.access_log.log(scope, exc.status, 0, 0.0)
                return
            await WebSocketSession(self.ctx, carrier, scope).run()
        finally:
            if not self.closed and not carrier.reset and not carrier.ended:
                self.reset_stream(carrier, ErrorCodes.CANCEL)
            self._release(carrier)
