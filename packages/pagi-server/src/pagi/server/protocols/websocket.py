"""WebSocket framing (RFC 6455 over ``wsproto``) and the HTTP/1.1 upgrade.

Theory of operation
-------------------
The HTTP/1.1 driver parses the upgrade request like any other request, then
hands the socket to :func:`serve_websocket_over_http1`. From there on a
:class:`WebSocketSession` owns the connection:

1. **Handshake check** (:func:`check_handshake`): version 13, a 16-byte
   base64 key, ``Upgrade: websocket`` and ``Connection: upgrade``. A bad
   handshake gets ``400`` (or ``426`` with ``Sec-WebSocket-Version: 13``)
   and the application is never called.
2. **Handshake with the app**: the scope gets ``subprotocols``, the denial
   extension and ``pagi.transport``; the app's first ``receive`` is
   ``websocket.connect``. Its answer goes through the session's
   :class:`~pagi.server.streams.websocket.WebSocketWire` methods: ``101``
   (with permessage-deflate when the client offered it and the server allows
   it), ``403`` or the app's own HTTP response.
3. **Open**: three tasks share the socket. The *reader* feeds bytes to a
   server-side ``wsproto`` connection and turns its events into whole
   messages for the stream (fragments reassembled, pings answered, UTF-8
   checked per fragment by ``wsproto``) and stops reading while the
   stream's receive queue is full (see *Backpressure* below); the outbox
   *writer* sends what the app and the server queued; the *timer* sends
   keepalive pings and watches the pong, idle and close deadlines. Every
   frame is produced by one synchronous ``wsproto`` call and queued whole,
   so concurrent senders never interleave frames and the deflate context
   stays in order.
4. **Closing**: whoever closes first decides what the app is told
   (R-WS-30..34): a peer's Close is echoed and reported with its own code
   (1005 when it had none); a server-side close (app, shutdown 1001, queue
   overflow 1008, idle 1001) is reported with the code sent; a protocol
   violation sends 1002/1007/1009 and reports ``protocol_error`` (or
   ``body_too_large`` for 1009); a drop without a Close frame is 1006 with
   the reason token (``client_closed``, ``keepalive_timeout``,
   ``write_error``/``write_timeout``, ``server_shutdown``). After our Close
   the peer has ``ws_close_timeout`` seconds to answer before the TCP
   connection is dropped; the server closes TCP first, as RFC 6455 7.1.1
   asks.

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
closes the connection. ``wsproto`` parses frames lazily, so the reader
stops pulling events from it as soon as a queued message leaves the stream
:attr:`~pagi.server.streams.websocket.WebSocketStream.backlogged`; the
rest of the bytes already read stay unparsed in ``wsproto``'s buffer
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

While the session runs it stands in for the HTTP/1.1 connection in the
server's registry, so a graceful drain reaches it (Close 1001, reason
``server_shutdown``) and a forced one aborts it.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
import zlib
from typing import TYPE_CHECKING, Any

import anyio
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import CloseReason, Opcode, RsvBits
from wsproto.utilities import LocalProtocolError, generate_accept_token

from pagi.server.protocols.http1_parser import split_tokens
from pagi.server.protocols.http1_response import simple_response, status_line
from pagi.server.streams.http import HTTPStream
from pagi.server.streams.websocket import WebSocketStream
from pagi.spec import DisconnectReason

if TYPE_CHECKING:
    from pagi.server.config import ServerConfig
    from pagi.server.protocols.http1 import H1Connection

__all__ = ["HandshakeError", "WebSocketSession", "check_handshake", "serve_websocket_over_http1"]

log = logging.getLogger("pagi.server")

_PENDING_LIMIT = 65536  # bytes a client may send before the app has accepted
_DATA_OPCODES = (Opcode.TEXT, Opcode.BINARY)
_SERVER_OWNED = frozenset(
    {
        b"upgrade",
        b"connection",
        b"sec-websocket-accept",
        b"sec-websocket-extensions",
        b"content-length",
        b"transfer-encoding",
    }
)


# --- opening handshake ---------------------------------------------------------------
class HandshakeError(Exception):
    """The upgrade request is not a valid RFC 6455 handshake."""

    def __init__(self, status: int, text: str, headers: tuple[tuple[bytes, bytes], ...] = ()):
        super().__init__(text)
        self.status = status
        self.text = text
        self.headers = headers


def _values(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [value for key, value in headers if key == name]


def _tokens(values: list[bytes]) -> set[bytes]:
    return {token for value in values for token in split_tokens(value)}


def check_handshake(scope: dict[str, Any]) -> bytes:
    """Validate an upgrade request's head; return its ``Sec-WebSocket-Key``."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    if scope.get("http_version") != "1.1":
        raise HandshakeError(400, "WebSocket upgrades need HTTP/1.1")
    if b"websocket" not in _tokens(_values(headers, b"upgrade")):
        raise HandshakeError(400, "Upgrade header does not name websocket")
    if b"upgrade" not in _tokens(_values(headers, b"connection")):
        raise HandshakeError(400, "Connection header does not name upgrade")
    versions = _values(headers, b"sec-websocket-version")
    if len(versions) != 1 or versions[0].strip() != b"13":
        raise HandshakeError(
            426,
            "Unsupported WebSocket version; this server speaks version 13",
            ((b"sec-websocket-version", b"13"),),
        )
    keys = _values(headers, b"sec-websocket-key")
    if len(keys) != 1:
        raise HandshakeError(400, "Exactly one Sec-WebSocket-Key header is required")
    key = keys[0].strip()
    try:
        nonce = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        nonce = b""
    if len(nonce) != 16:
        raise HandshakeError(400, "Sec-WebSocket-Key is not a base64-encoded 16-byte value")
    return key


# --- extensions --------------------------------------------------------------------------
class _Limits(Extension):
    """Frame and message size caps, checked as bytes arrive (always active).

    Placed after permessage-deflate, so it counts decompressed bytes.
    """

    name = "x-pagi-limits"  # never negotiated

    def __init__(self, max_frame: int, max_message: int) -> None:
        self._max_frame = max_frame
        self._max_message = max_message
        self._data_frame = False
        self._size = 0

    def enabled(self) -> bool:
        return True

    def offer(self) -> bool:
        return False

    def frame_inbound_header(
        self, proto: Any, opcode: Opcode, rsv: RsvBits, payload_length: int
    ) -> CloseReason | RsvBits:
        if payload_length > self._max_frame:
            return CloseReason.MESSAGE_TOO_BIG
        self._data_frame = not opcode.iscontrol()
        if opcode in _DATA_OPCODES:
            self._size = 0
        return RsvBits(False, False, False)

    def frame_inbound_payload_data(self, proto: Any, data: bytes) -> bytes | CloseReason:
        if self._data_frame:
            self._size += len(data)
            if self._size > self._max_message:
                return CloseReason.MESSAGE_TOO_BIG
        return data


class _BoundedDeflate(PerMessageDeflate):
    """permessage-deflate with bounded inflation and a memory-conscious compressor.

    Differences from ``wsproto``'s class: decompression never produces more
    than the message limit (a compression bomb closes with 1009 instead of
    filling memory), a control frame between the fragments of a compressed
    message does not reset the message's state, and the compressor uses a
    memory level sized to the window instead of zlib's default.
    """

    def __init__(self, *, max_message: int, mem_level: int, **options: Any) -> None:
        super().__init__(**options)
        self._max_message = max_message
        self._mem_level = mem_level
        self._inflated = 0
        self._control = False

    def frame_inbound_header(
        self, proto: Any, opcode: Opcode, rsv: RsvBits, payload_length: int
    ) -> CloseReason | RsvBits:
        self._control = opcode.iscontrol()
        if opcode in _DATA_OPCODES:
            self._inflated = 0
        result: CloseReason | RsvBits = super().frame_inbound_header(
            proto, opcode, rsv, payload_length
        )
        return result

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        assert self._decompressor is not None
        room = self._max_message - self._inflated
        try:
            out: bytes = self._decompressor.decompress(data, room + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        if len(out) > room:
            return CloseReason.MESSAGE_TOO_BIG
        self._inflated += len(out)
        return out

    def frame_inbound_payload_data(self, proto: Any, data: bytes) -> bytes | CloseReason:
        if self._control or not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        return self._inflate(bytes(data))

    def frame_inbound_complete(self, proto: Any, fin: bool) -> bytes | CloseReason | None:
        if self._control or not fin:
            return None
        if not self._inbound_compressed:
            self._inbound_compressed = None
            return None
        out = self._inflate(b"\x00\x00\xff\xff")
        if self.client_no_context_takeover:
            self._decompressor = None
        self._inbound_compressed = None
        return out

    def frame_outbound(
        self, proto: Any, opcode: Opcode, rsv: RsvBits, data: bytes, fin: bool
    ) -> tuple[RsvBits, bytes]:
        if self._compressor is None and opcode in _DATA_OPCODES:
            self._compressor = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION,
                zlib.DEFLATED,
                -self.server_max_window_bits,
                self._mem_level,
            )
        result: tuple[RsvBits, bytes] = super().frame_outbound(proto, opcode, rsv, data, fin)
        return result


def _parse_offer(offer: str) -> dict[str, str | None] | None:
    """The parameters of one permessage-deflate offer, or ``None`` if it is invalid."""
    parts = [p.strip() for p in offer.split(";")]
    if parts[0].lower() != "permessage-deflate":
        return None
    params: dict[str, str | None] = {}
    for part in parts[1:]:
        name, eq, value = part.partition("=")
        name = name.strip().lower()
        if name in params:
            return None  # RFC 7692 5: duplicate parameters make the offer invalid
        if name in ("server_no_context_takeover", "client_no_context_takeover"):
            if eq:
                return None
            params[name] = None
        elif name in ("server_max_window_bits", "client_max_window_bits"):
            value = value.strip().strip('"')
            if not eq:
                if name == "server_max_window_bits":
                    return None
                params[name] = None
                continue
            if not value.isdigit() or not 8 <= int(value) <= 15:
                return None
            params[name] = value
        else:
            return None
    return params


def negotiate_deflate(
    headers: list[tuple[bytes, bytes]], config: ServerConfig
) -> tuple[_BoundedDeflate, str] | None:
    """Accept the first usable permessage-deflate offer: the extension and the reply."""
    if not config.ws_per_message_deflate:
        return None
    ours = config.ws_deflate_window_bits
    for value in _values(headers, b"sec-websocket-extensions"):
        for offer in value.decode("latin-1").split(","):
            params = _parse_offer(offer)
            if params is None:
                continue
            requested = params.get("server_max_window_bits")
            server_bits = min(int(requested) if requested else 15, ours)
            if server_bits < 9:
                continue  # zlib cannot compress with an 8-bit raw window
            reply = ["permessage-deflate"]
            server_nct = "server_no_context_takeover" in params
            client_nct = "client_no_context_takeover" in params
            if server_nct:
                reply.append("server_no_context_takeover")
            if client_nct:
                reply.append("client_no_context_takeover")
            if server_bits < 15 or requested is not None:
                reply.append(f"server_max_window_bits={server_bits}")
            client_bits = 15
            if "client_max_window_bits" in params:
                offered = params["client_max_window_bits"]
                client_bits = min(int(offered) if offered else 15, ours)
                reply.append(f"client_max_window_bits={client_bits}")
            ext = _BoundedDeflate(
                max_message=config.max_ws_message_size,
                mem_level=max(1, min(9, server_bits - 7)),
                client_no_context_takeover=client_nct,
                server_no_context_takeover=server_nct,
                client_max_window_bits=max(9, client_bits),
                server_max_window_bits=server_bits,
            )
            ext.finalize("permessage-deflate")
            return ext, "; ".join(reply)
    return None


# --- the session ---------------------------------------------------------------------------
class WebSocketSession:
    """One WebSocket connection after the upgrade request (HTTP/1.1)."""

    def __init__(
        self,
        conn: H1Connection,
        request: HTTPStream,
        leftover: bytes,
        key: bytes,
    ) -> None:
        self.conn = conn
        self.ctx = conn.ctx
        self.cfg = conn.cfg
        self.outbox = conn.outbox
        self.key = key
        scope = request.scope
        self.deflate = negotiate_deflate(scope["headers"], self.cfg)
        self.stream = WebSocketStream(
            scope,
            self,
            transport=self.outbox.handle(),
            max_queue=self.cfg.max_receive_queue,
            max_queue_bytes=self.cfg.max_receive_queue_bytes,
        )
        self.ws: Connection | None = None
        self.bytes_sent = 0
        self._pending = bytearray(leftover)
        self._handshake_over = anyio.Event()
        self._fragments: list[Any] = []
        self._failed = False  # a protocol violation: stop parsing, discard input
        self._backlogged = False  # the receive queue is full: parse and read nothing more
        self._half_closed = False
        self._close_sent_at: float | None = None
        self._draining = False
        self._ending: str | None = None  # "graceful" or "abort" once the socket is to close
        self._end = anyio.Event()
        self._closed = anyio.Event()
        self._ka_interval = 0.0
        self._ka_timeout: float | None = None
        self._next_ping = 0.0
        self._unanswered_since: float | None = None
        self._last_activity = anyio.current_time()
        self._timer_wakeup: anyio.Event | None = None
        # The timer task runs only once something needs it (keepalive, a close
        # in progress, an idle timeout): most sessions never start it.
        self._timers_running = False
        self._io_group: anyio.abc.TaskGroup | None = None
        self._reading: anyio.CancelScope | None = None
        self._outer: anyio.CancelScope | None = None

    # --- lifecycle ---------------------------------------------------------------------
    async def run(self) -> None:
        ctx = self.ctx
        started = time.perf_counter()
        ctx.connections.discard(self.conn)  # the session is the live connection now
        ctx.connections.add(self)
        self.outbox.on_broken = self._on_write_failed
        if ctx.draining:
            self._draining = True
        try:
            async with anyio.create_task_group() as tg:
                self._outer = tg.cancel_scope
                tg.start_soon(self._io)
                await self._run_app()
                await self._closed.wait()
                tg.cancel_scope.cancel()
        finally:
            ctx.connections.discard(self)
            if ctx.access_log is not None:
                ctx.access_log.log(
                    self.stream.scope,
                    self.stream.status,
                    self.bytes_sent,
                    time.perf_counter() - started,
                )

    async def _run_app(self) -> None:
        stream = self.stream
        failure: BaseException | None = None
        try:
            await self.ctx.app(stream.scope, stream.receive, stream.send)
        except Exception as exc:
            failure = exc
        state = stream.machine.state
        if failure is not None:
            log.error("exception in WebSocket application", exc_info=failure)
        if state == "handshake":
            if failure is None:
                log.warning("WebSocket application returned without accepting; sending 403")
            await stream.reject(500 if failure is not None else 403)  # R-WS-21
        elif state == "denying":
            await stream.finish_denial()
        elif state == "open":
            self._server_close(1011 if failure is not None else 1000, "", "")  # R-WS-22

    def begin_drain(self) -> None:
        """Graceful shutdown: Close 1001, the app sees ``server_shutdown``."""
        self._draining = True
        self._server_close(1001, "server shutdown", DisconnectReason.SERVER_SHUTDOWN)

    def force_close(self) -> None:
        self._abort(DisconnectReason.SERVER_SHUTDOWN)
        if self._outer is not None:
            self._outer.cancel()

    def check_timeouts(self, now: float) -> None:
        self.outbox.check_write_timeout(now)

    def _on_write_failed(self, reason: str) -> None:
        self._abort(reason)

    def _abort(self, reason: str) -> None:
        """Drop the connection without a closing handshake: the app sees 1006."""
        self.stream.disconnected(1006, reason)
        self.outbox.abort(reason)
        self._set_ending("abort")

    def _finish(self) -> None:
        """The closing handshake is over (or never began): flush, then close TCP."""
        self._set_ending("graceful")

    def _set_ending(self, how: str) -> None:
        if self._ending is None:
            self._ending = how
            self._end.set()
            if self._reading is not None:
                self._reading.cancel()
        self._handshake_over.set()

    async def _io(self) -> None:
        async with anyio.create_task_group() as io:
            if getattr(self.outbox, "spawn", None) is None:
                io.start_soon(self.outbox.run)  # else the outbox starts its writer on demand
            self._io_group = io
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
                    await self.outbox.flush()
            io.cancel_scope.cancel()
        self._io_group = None
        with anyio.CancelScope(shield=True):
            try:
                await self.conn.stream.aclose()
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass
        self._closed.set()

    # --- the reader ----------------------------------------------------------------------
    async def _reader(self) -> None:
        stream = self.conn.stream
        while True:
            if self._backlogged:
                await self._wait_for_room()
                continue
            try:
                data = await stream.receive(65536)
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                data, reason = b"", DisconnectReason.CLIENT_CLOSED
            except anyio.ClosedResourceError:
                return
            except OSError:
                data, reason = b"", DisconnectReason.READ_ERROR
            if not data:
                self._on_eof(reason)
                return
            if self.ws is None:
                if self.stream.ended:
                    continue  # an HTTP response replaced the upgrade; ignore the rest
                self._pending += data
                if len(self._pending) > _PENDING_LIMIT:
                    await self._handshake_over.wait()
                continue
            if self._failed or self.ws.state is ConnectionState.CLOSED:
                continue
            self._feed(data)
            if self.outbox.buffered >= self.outbox.high:
                await self.outbox.write(b"")  # owed pongs wait for the client to read

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
        if ws is None or self._failed or ws.state is ConnectionState.CLOSED:
            return
        self._process()  # the frames left unparsed when the queue filled
        if self.outbox.buffered >= self.outbox.high:
            await self.outbox.write(b"")

    def _on_eof(self, reason: str) -> None:
        ws = self.ws
        if ws is None or ws.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            self.stream.disconnected(1006, reason)  # gone without a Close frame (R-WS-32)
        self._finish()

    def _feed(self, data: bytes) -> None:
        ws = self.ws
        assert ws is not None
        ws.receive_data(data)
        self._process()

    def _process(self) -> None:
        """Act on the events in what ``wsproto`` holds, until it needs more or the queue fills.

        Leaving ``ws.events()`` early is safe: the frame parser keeps its
        state, and the unparsed bytes, in the connection, and the next call
        carries on where this one stopped.
        """
        ws = self.ws
        assert ws is not None
        if self.stream.backlogged:
            self._backlogged = True
            return
        for event in ws.events():
            if isinstance(event, Message):
                self._on_message(event)
                if self.stream.backlogged:
                    self._backlogged = True
                    return
            elif isinstance(event, Ping):
                if ws.state is ConnectionState.OPEN:
                    self._write(event.response())
            elif isinstance(event, Pong):
                self._unanswered_since = None
            elif isinstance(event, CloseConnection):
                self._on_close(event)
                return

    def _on_message(self, event: Message[Any]) -> None:
        if self._close_sent_at is not None:
            return  # we are closing: the app is no longer listening
        self._fragments.append(event.data)
        if not event.message_finished:
            return
        if isinstance(event, TextMessage):
            message: str | bytes = "".join(self._fragments)
        else:
            message = b"".join(self._fragments)
        self._fragments = []
        self._last_activity = anyio.current_time()
        if not self.stream.feed_message(message):
            self._server_close(
                1008, "receive queue overflow", DisconnectReason.QUEUE_OVERFLOW
            )  # R-WSP-4

    def _on_close(self, event: CloseConnection) -> None:
        ws = self.ws
        assert ws is not None
        state = ws.state
        if state is ConnectionState.REMOTE_CLOSING:
            # The peer closes first: echo its code, report it unchanged (R-WS-31).
            self.stream.disconnected(int(event.code), event.reason or "")
            self._write(event.response())
            self._finish()
        elif state is ConnectionState.CLOSED:
            self._finish()  # the answer to our Close
        else:
            # wsproto reports a violation as a Close it did not receive (state unchanged).
            code = int(event.code)
            token = (
                DisconnectReason.BODY_TOO_LARGE if code == 1009 else DisconnectReason.PROTOCOL_ERROR
            )
            self._failed = True
            self.stream.disconnected(code, token)
            if state is ConnectionState.OPEN:
                self._write(CloseConnection(code=code))
                log.debug("WebSocket protocol violation from %s: %s", self.conn.info.client, event)
            self._close_sent_at = self._close_sent_at or anyio.current_time()
            self._wake_timer()  # the timer task half-closes; the reader waits for EOF

    # --- writing -------------------------------------------------------------------------
    def _write(self, event: Event) -> None:
        """Queue a server-owned frame (pong, ping, close) without waiting."""
        assert self.ws is not None
        try:
            data = self.ws.send(event)
        except LocalProtocolError:
            return
        self.bytes_sent += len(data)
        self.outbox.write_nowait(data)

    def _server_close(self, code: int, text: str, token: str) -> None:
        """Start a closing handshake the server decided on."""
        ws = self.ws
        if ws is None or ws.state is not ConnectionState.OPEN:
            return
        self.stream.disconnected(code, token)
        self._write(CloseConnection(code=code, reason=text))
        self._close_sent_at = anyio.current_time()
        self._wake_timer()

    # --- WebSocketWire ---------------------------------------------------------------------
    async def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        lines = [
            status_line(101),
            b"upgrade: websocket\r\n",
            b"connection: Upgrade\r\n",
            b"sec-websocket-accept: " + generate_accept_token(self.key) + b"\r\n",
        ]
        if subprotocol is not None:
            lines.append(b"sec-websocket-protocol: " + subprotocol.encode("ascii") + b"\r\n")
        extensions: list[Extension] = []
        if self.deflate is not None:
            ext, reply = self.deflate
            lines.append(b"sec-websocket-extensions: " + reply.encode("ascii") + b"\r\n")
            extensions.append(ext)
        extensions.append(_Limits(self.cfg.max_ws_frame_size, self.cfg.max_ws_message_size))
        has_date = has_server = False
        for name, value in headers:
            name = bytes(name).lower()
            if name in _SERVER_OWNED or (name == b"sec-websocket-protocol" and subprotocol):
                continue
            has_date = has_date or name == b"date"
            has_server = has_server or name == b"server"
            lines.append(name + b": " + bytes(value) + b"\r\n")
        lines.extend(
            n + b": " + v + b"\r\n" for n, v in self.ctx.server_fields(has_date, has_server)
        )
        lines.append(b"\r\n")
        self.outbox.write_nowait(b"".join(lines))
        self._last_activity = anyio.current_time()
        self.ws = Connection(ConnectionType.SERVER, extensions=extensions)
        pending, self._pending = bytes(self._pending), bytearray()
        self._handshake_over.set()
        if pending:
            self._feed(pending)
        if self._draining:
            self._server_close(1001, "server shutdown", DisconnectReason.SERVER_SHUTDOWN)
        await self.outbox.flush()

    async def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        lines = [status_line(status)]
        has_date = has_server = False
        for name, value in headers:
            name = bytes(name).lower()
            if name in _SERVER_OWNED:
                continue
            has_date = has_date or name == b"date"
            has_server = has_server or name == b"server"
            lines.append(name + b": " + bytes(value) + b"\r\n")
        lines.append(b"content-length: %d\r\n" % len(body))
        lines.extend(
            n + b": " + v + b"\r\n" for n, v in self.ctx.server_fields(has_date, has_server)
        )
        lines.append(b"connection: close\r\n\r\n")
        self.bytes_sent += len(body)
        self.outbox.write_nowait(b"".join(lines) + body)
        self._handshake_over.set()
        await self.outbox.flush()
        self._finish()

    async def send_message(self, data: str | bytes) -> None:
        ws = self.ws
        if ws is None or ws.state is not ConnectionState.OPEN or self._ending is not None:
            return
        message = TextMessage(data=data) if isinstance(data, str) else BytesMessage(data=data)
        frame = ws.send(message)
        self.bytes_sent += len(frame)
        self._last_activity = anyio.current_time()
        await self.outbox.write(frame)  # blocks at the high-water mark (R-FLOW-12)

    async def close(self, code: int, reason: str) -> None:
        ws = self.ws
        if ws is None or ws.state is not ConnectionState.OPEN:
            return
        self.stream.disconnected(code, reason)
        self._write(CloseConnection(code=code, reason=reason))
        self._close_sent_at = anyio.current_time()
        self._wake_timer()
        await self.outbox.flush()

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
        await self.outbox.flush()
        try:
            await self.conn.stream.send_eof()
        except (NotImplementedError, OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    # --- timers ----------------------------------------------------------------------------
    def _wake_timer(self) -> None:
        if self._timer_wakeup is not None:
            self._timer_wakeup.set()
        elif not self._timers_running and self._io_group is not None:
            self._start_timers()

    def _start_timers(self) -> None:
        assert self._io_group is not None
        self._timers_running = True
        self._io_group.start_soon(self._timers)

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
            elif ws is not None and ws.state is ConnectionState.OPEN:
                if self._ka_interval:
                    if now >= self._next_ping:
                        self._write(Ping(payload=b"pagi"))
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


async def serve_websocket_over_http1(
    conn: H1Connection, stream: HTTPStream, leftover: bytes
) -> None:
    """Run one WebSocket session on an HTTP/1.1 connection whose upgrade head was read."""
    try:
        key = check_handshake(stream.scope)
    except HandshakeError as exc:
        ctx = conn.ctx
        conn.outbox.write_nowait(
            simple_response(exc.status, ctx.date_value(), text=exc.text, headers=exc.headers)
        )
        await conn.outbox.flush()
        if ctx.access_log is not None:
            stream.scope.pop("pagi.connection", None)
            ctx.access_log.log(stream.scope, exc.status, 0, 0.0)
        return
    await WebSocketSession(conn, stream, leftover, key).run()
