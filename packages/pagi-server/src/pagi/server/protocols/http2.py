"""HTTP/2 connection driver (RFC 9113) on the ``h2`` state machine.

Theory of operation
-------------------
One task reads the socket and feeds ``h2``; every event it produces is
turned into a call on a per-stream :class:`~pagi.server.streams.http.HTTPStream`,
the same class HTTP/1.1 uses, so the event rules, ``pagi.connection`` and
the backstop are shared (R-H2-1). Each request stream runs its application
in its own task of the connection's task group.

* ``RequestReceived`` builds the scope from the pseudo-headers: ``:method``,
  ``:path`` (split into ``raw_path`` and ``query_string``), ``:scheme``;
  ``:authority`` becomes the ``host`` header; pseudo-headers never reach
  the scope; ``cookie`` crumbs are merged (R-H2-10..12).
* ``DataReceived`` feeds the stream; flow-control credit is returned at
  once and the body is bounded by ``max_body_size`` (413 and RST_STREAM
  past it).
* ``StreamReset`` ends the request with reason ``client_closed`` (R-H2-6).
* ``WindowUpdated`` / ``RemoteSettingsChanged`` wake the writers waiting
  for send window.

Writers (:class:`_H2Response`) hold the response head until the first body
bytes (R-HTTP-23), then send DATA frames no larger than the peer's window
and frame size allow, waiting for WINDOW_UPDATE when the window is empty.
Everything ``h2`` wants to send goes through the connection's
:class:`~pagi.server.transport.Outbox`, so watermarks apply per connection.

Not supported: server push (never sent, R-H2-8) and WebSocket over HTTP/2
(RFC 8441): Extended CONNECT is not advertised, so clients use HTTP/1.1
for WebSockets (R-WSH2-6).
"""

from __future__ import annotations

import logging
import time

import anyio
import anyio.abc
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from pagi.server.context import ServerContext
from pagi.server.protocols.http1_parser import H2_PREFACE
from pagi.server.protocols.responses import simple_response
from pagi.server.scope import ConnectionInfo, build_scope
from pagi.server.streams.dispatch import wants_event_stream
from pagi.server.streams.http import HTTPStream, bodiless
from pagi.server.transport import Outbox
from pagi.spec import DisconnectReason

__all__ = ["PREFACE", "H2Connection"]

PREFACE = H2_PREFACE

log = logging.getLogger("pagi.server")


_CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)


class _H2Response:
    """HTTP/2 framing of one response (implements ``ResponseWire``)."""

    __slots__ = (
        "_conn",
        "_headers",
        "_is_head",
        "_no_body",
        "_sid",
        "_trailers",
        "bytes_sent",
        "ended",
        "head_written",
        "status",
    )

    def __init__(self, conn: H2Connection, stream_id: int, *, is_head: bool) -> None:
        self._conn = conn
        self._sid = stream_id
        self._headers: list[tuple[bytes, bytes]] = []
        self._is_head = is_head
        self._no_body = is_head
        self._trailers = False
        self.head_written = False
        self.ended = False
        self.status = 0
        self.bytes_sent = 0

    def start(self, status: int, headers: list[tuple[bytes, bytes]], trailers: bool) -> None:
        self.status = status
        out = [(b":status", b"%d" % status)]
        has_date = has_server = False
        for name, value in headers:
            name = name.lower()
            if name in _CONNECTION_SPECIFIC:
                continue  # connection-specific fields are illegal in HTTP/2 (R-HSRV-4)
            if name == b"date":
                has_date = True
            elif name == b"server":
                has_server = True
            out.append((name, value))
        out.extend(self._conn.ctx.server_fields(has_date, has_server))
        self._headers = out
        self._trailers = trailers
        self._no_body = bodiless(self._is_head, status)

    def _send_head(self, end_stream: bool) -> None:
        self.head_written = True
        self._conn.h2.send_headers(self._sid, self._headers, end_stream=end_stream)
        if end_stream:
            self.ended = True
        self._conn.pump()

    async def body(self, data: bytes, final: bool) -> None:
        conn = self._conn
        end = final and not self._trailers
        if self._no_body:
            data = b""
        if not self.head_written:
            self._send_head(end_stream=end and not data)
            if end and not data:
                await conn.outbox.flush()
                return
        view = memoryview(bytes(data))
        self.bytes_sent += len(view)
        while view or (end and not self.ended):
            if conn.closed or self._sid in conn.reset_streams:
                return
            window = min(
                conn.h2.local_flow_control_window(self._sid), conn.h2.max_outbound_frame_size
            )
            if view and window <= 0:
                await conn.wait_window()
                continue
            chunk, view = view[:window], view[window:]
            last = end and not view
            conn.h2.send_data(self._sid, bytes(chunk), end_stream=last)
            if last:
                self.ended = True
            conn.pump()
            await conn.outbox.write(b"")
        if final:
            await conn.outbox.flush()

    async def trailers(self, headers: list[tuple[bytes, bytes]]) -> None:
        fields = [(n.lower(), v) for n, v in headers if n.lower() not in _CONNECTION_SPECIFIC]
        conn = self._conn
        if not conn.closed and self._sid not in conn.reset_streams:
            conn.h2.send_headers(self._sid, fields, end_stream=True)
            self.ended = True
            conn.pump()
        await conn.outbox.flush()

    async def flush(self) -> None:
        if not self.head_written:
            self._send_head(end_stream=False)
        await self._conn.outbox.flush()

    async def send_continue(self) -> None:
        return None  # HTTP/2 has no interim 100 for PAGI apps to trigger (R-HSRV-7)

    def error_response(self, status: int) -> None:
        self.status = status
        body = simple_response(status, self._conn.ctx).partition(b"\r\n\r\n")[2]
        headers = [
            (b":status", b"%d" % status),
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(body)),
            (b"date", self._conn.ctx.date_value()),
        ]
        conn = self._conn
        if conn.closed or self._sid in conn.reset_streams:
            return
        self.head_written = True
        conn.h2.send_headers(self._sid, headers)
        window = conn.h2.local_flow_control_window(self._sid)
        if window >= len(body):
            conn.h2.send_data(self._sid, body, end_stream=True)
        else:
            conn.h2.end_stream(self._sid)
        self.ended = True
        conn.pump()

    def abort(self) -> None:
        self._conn.reset(self._sid, h2.errors.ErrorCodes.INTERNAL_ERROR)


class H2Connection:
    """One HTTP/2 connection: a reader plus one task per request stream."""

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
        config = h2.config.H2Configuration(
            client_side=False, header_encoding=None, validate_inbound_headers=True
        )
        self.h2 = h2.connection.H2Connection(config=config)
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: cfg.max_header_size,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 65535,
            },
        )
        self.outbox = Outbox(
            stream,
            high=cfg.write_high_watermark,
            low=cfg.write_low_watermark,
            write_timeout=cfg.write_timeout,
        )
        self.outbox.on_broken = self._on_write_failed
        self.streams: dict[int, HTTPStream] = {}
        self.reset_streams: set[int] = set()
        self.closed = False
        self.closing = False
        self._window: anyio.Event | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._read_scope: anyio.CancelScope | None = None
        self._idle_since = time.monotonic()

    # --- plumbing -------------------------------------------------------------------
    def pump(self) -> None:
        """Queue whatever ``h2`` has to send."""
        data = self.h2.data_to_send()
        if data:
            self.outbox.write_nowait(data)

    async def wait_window(self) -> None:
        if self._window is None:
            self._window = anyio.Event()
        await self._window.wait()

    def _wake_writers(self) -> None:
        if self._window is not None:
            self._window.set()
            self._window = None

    def reset(self, stream_id: int, code: h2.errors.ErrorCodes) -> None:
        if self.closed or stream_id in self.reset_streams:
            return
        self.reset_streams.add(stream_id)
        try:
            self.h2.reset_stream(stream_id, error_code=code)
        except h2.exceptions.StreamClosedError:
            return
        self.pump()

    def _on_write_failed(self, reason: str) -> None:
        self.closed = True
        for stream in list(self.streams.values()):
            stream.disconnect(reason)
        self._wake_writers()
        if self._read_scope is not None:
            self._read_scope.cancel()

    # --- server integration ---------------------------------------------------------
    def begin_drain(self) -> None:
        """Send GOAWAY: in-flight streams finish, new ones are refused."""
        self.closing = True
        if not self.closed:
            self.h2.close_connection()
            self.pump()
        if not self.streams and self._read_scope is not None:
            self._read_scope.cancel()

    def force_close(self) -> None:
        for stream in list(self.streams.values()):
            stream.disconnect(DisconnectReason.SERVER_SHUTDOWN)
        self.outbox.abort(DisconnectReason.SERVER_SHUTDOWN)
        self.closed = True
        self._wake_writers()
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    def check_timeouts(self, now: float) -> None:
        timeout = self.cfg.keepalive_timeout
        if (
            timeout
            and not self.streams
            and now - self._idle_since >= timeout
            and self._read_scope is not None
        ):
            self.begin_drain()
        self.outbox.check_write_timeout(now)

    # --- lifecycle ------------------------------------------------------------------
    async def run(self) -> None:
        """Serve streams until the connection ends; never raises."""
        self.ctx.connections.add(self)
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                self.outbox.spawn = tg.start_soon
                self.h2.initiate_connection()
                self.pump()
                await self._read()
                self.closed = True
                for stream in list(self.streams.values()):
                    stream.disconnect(DisconnectReason.CLIENT_CLOSED)
                self._wake_writers()
                with anyio.move_on_after(self.cfg.shutdown_timeout or 5):
                    while self.streams:
                        await anyio.sleep(0.02)
                await self.outbox.flush()
                tg.cancel_scope.cancel()
        except Exception:
            log.exception("HTTP/2 connection handler failed")
        finally:
            self.ctx.connections.discard(self)
            with anyio.CancelScope(shield=True):
                try:
                    with anyio.move_on_after(1):
                        await self.outbox.flush()
                    await self.stream.aclose()
                except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass

    async def _read(self) -> None:
        with anyio.CancelScope() as scope:
            self._read_scope = scope
            data = self._initial
            while True:
                if data:
                    try:
                        events = self.h2.receive_data(data)
                    except h2.exceptions.ProtocolError as exc:
                        log.debug("HTTP/2 protocol error: %s", exc)
                        self.pump()  # h2 has queued the GOAWAY
                        return
                    for event in events:
                        self._dispatch(event)
                    self.pump()
                    if self.closing and not self.streams:
                        return
                try:
                    data = await self.stream.receive(65536)
                except (
                    anyio.EndOfStream,
                    anyio.BrokenResourceError,
                    anyio.ClosedResourceError,
                    OSError,
                ):
                    return

    def _dispatch(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._on_request(event)
        elif isinstance(event, h2.events.DataReceived):
            stream = self.streams.get(event.stream_id)
            if stream is None:
                return
            stream.feed(event.data)
            # Credit returned at once: a body is bounded by max_body_size instead.
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            max_body = self.cfg.max_body_size
            if max_body and stream.body_size > max_body:
                stream.error_status = 413
                stream.disconnect(DisconnectReason.BODY_TOO_LARGE)
                self.reset(event.stream_id, h2.errors.ErrorCodes.CANCEL)
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.end_body()
        elif isinstance(event, h2.events.StreamReset):
            self.reset_streams.add(event.stream_id)
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.disconnect(DisconnectReason.CLIENT_CLOSED)
            self._wake_writers()
        elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            self._wake_writers()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.closing = True
            for stream in list(self.streams.values()):
                stream.disconnect(DisconnectReason.CLIENT_CLOSED)
            self._wake_writers()

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        sid = event.stream_id
        if self.closing:
            self.reset(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        method = path = scheme = authority = b""
        headers: list[tuple[bytes, bytes]] = []
        has_host = False
        for name, value in event.headers:
            if name.startswith(b":"):
                if name == b":method":
                    method = value
                elif name == b":path":
                    path = value
                elif name == b":scheme":
                    scheme = value
                elif name == b":authority":
                    authority = value
                elif name == b":protocol":
                    self._refuse(sid, 501)  # no Extended CONNECT support (R-WSH2-6)
                    return
                continue
            if name == b"host":
                has_host = True
                if authority:
                    value = authority
            headers.append((name, value))
        if authority and not has_host:
            headers.insert(0, (b"host", authority))  # R-H2-11
        if method == b"CONNECT":
            self._refuse(sid, 501)
            return
        accept = b", ".join(v for n, v in headers if n == b"accept")
        scope_type = "sse" if accept and wants_event_stream(accept) else "http"
        info = self.info
        scope = build_scope(
            scope_type,
            info,
            method=method.decode("ascii"),
            http_version="2",
            target=path,
            headers=headers,
        )
        scope["scheme"] = scheme.decode("ascii") or scope["scheme"]
        if scope_type == "http":
            scope["extensions"]["fullflush"] = {}
        wire = _H2Response(self, sid, is_head=method == b"HEAD")
        ended = event.stream_ended is not None
        stream = HTTPStream(scope, wire, transport=self.outbox.handle(), has_body=not ended)
        self.streams[sid] = stream
        assert self._tg is not None
        self._tg.start_soon(self._run_stream, sid, stream)

    def _refuse(self, sid: int, status: int) -> None:
        self.h2.send_headers(sid, [(b":status", b"%d" % status)], end_stream=True)
        self.pump()

    async def _run_stream(self, sid: int, stream: HTTPStream) -> None:
        started = time.perf_counter()
        try:
            if stream.scope["type"] == "sse":
                await self._run_sse(stream)
            else:
                await stream.run(self.ctx.app)
        finally:
            wire = stream.wire
            assert isinstance(wire, _H2Response)
            if not wire.ended and not self.closed:
                self.reset(sid, h2.errors.ErrorCodes.CANCEL)
            del self.streams[sid]
            if not self.streams:
                self._idle_since = time.monotonic()
                if self.closing and self._read_scope is not None:
                    self._read_scope.cancel()
            access_log = self.ctx.access_log
            if access_log is not None:
                elapsed = time.perf_counter() - started
                access_log.log(stream.scope, wire.status, wire.bytes_sent, elapsed)

    async def _run_sse(self, stream: HTTPStream) -> None:
        from pagi.server.streams import sse

        serve = getattr(sse, "serve_sse", None)
        if serve is None:  # SSE over HTTP/2 needs the shared SSE stream entry point
            stream.wire.error_response(501)
            return
        await serve(self.ctx, stream)
