"""One HTTP/2 stream, opened by an Extended CONNECT, as a WebSocket carrier (RFC 8441).

Theory of operation
-------------------
With ``SETTINGS_ENABLE_CONNECT_PROTOCOL`` advertised, a client opens a
WebSocket as a stream: ``:method CONNECT``, ``:protocol websocket``, the
path and the ``sec-websocket-*`` fields, no key (RFC 8441 4-5). The HTTP/2
driver dispatches it as a ``websocket`` scope and hands the stream to a
:class:`~pagi.server.protocols.ws_session.WebSocketSession` through
:class:`H2Carrier`; from there on the session is the same one HTTP/1.1
upgrades use: same events, denial responses, permessage-deflate, keepalive,
limits and ``pagi.transport``.

What the carrier maps:

* **Accepting** is ``:status 200`` with the session's fields; a denial is a
  complete response (HEADERS, DATA, END_STREAM).
* **Bytes in** are the stream's DATA. They wait in the carrier until the
  session reads them, and their flow-control credit is returned only then,
  so a session that stops reading (its receive queue is full) stops the
  client through the stream window, as TCP backpressure does on HTTP/1.1.
  END_STREAM is the peer's end of the byte stream; RST_STREAM is a drop
  (the app sees 1006).
* **Bytes out** become DATA frames as the stream and connection windows
  allow; what does not fit waits in the carrier and counts toward
  ``pagi.transport`` and the write watermarks, so a client that stops
  granting window stops the app's ``send`` at the high mark.
* **Ending** our side is END_STREAM after the last byte (the closing
  handshake done), or RST_STREAM CANCEL for an abort. Either way only this
  stream ends: the connection serves its other streams and new ones, and
  DATA arriving for the finished stream is credited and dropped by the
  driver.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import anyio
import h2.errors
import h2.exceptions

from pagi.server.transport import TransportHandle
from pagi.spec import DisconnectReason

if TYPE_CHECKING:
    from pagi.server.protocols.http2 import H2Connection
    from pagi.server.protocols.ws_session import WebSocketSession

__all__ = ["H2Carrier"]

_H2Error = h2.exceptions.ProtocolError
ErrorCodes = h2.errors.ErrorCodes


class H2Carrier:
    """The WebSocket carrier of one Extended CONNECT stream."""

    __slots__ = (
        "_changed",
        "_end_after",
        "_in",
        "_in_end",
        "_out",
        "conn",
        "ended",
        "reset",
        "scope",
        "session",
        "sid",
        "status",
        "unacked",
        "waiting_since",
    )

    #: Shares the driver's per-stream bookkeeping with request streams.
    http = None

    def __init__(self, conn: H2Connection, stream_id: int, scope: dict[str, Any]) -> None:
        self.conn = conn
        self.sid = stream_id
        #: The ``websocket`` scope the stream opened.
        self.scope = scope
        self.session: WebSocketSession | None = None
        self._in: list[bytes] = []
        self._in_end: str | None = None  # why the peer's bytes ended, once they have
        self._out = bytearray()
        self._end_after = False  # END_STREAM once _out has left
        self._changed: anyio.Event | None = None
        #: True once END_STREAM went out (our side is done).
        self.ended = False
        #: True once the stream was reset, by either side.
        self.reset = False
        self.status = 0
        #: DATA bytes received whose credit has not been returned (they wait here).
        self.unacked = 0
        self.waiting_since: float | None = None

    # --- what the driver reports ---------------------------------------------------
    def feed(self, data: bytes) -> None:
        """DATA for this stream (the driver counted it in :attr:`unacked`)."""
        self._in.append(data)
        self._wake()

    def end_input(self, reason: str = DisconnectReason.CLIENT_CLOSED) -> None:
        """The peer ended its side (END_STREAM), reset the stream, or the connection ended."""
        if self._in_end is None:
            self._in_end = reason
        self._wake()

    def window_opened(self) -> None:
        """WINDOW_UPDATE or new SETTINGS: send what waited for room."""
        self._push()

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def _wait(self) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()

    # --- WebSocketCarrier ----------------------------------------------------------
    @property
    def peer(self) -> object:
        return self.conn.peer

    @property
    def buffered(self) -> int:
        """Bytes the session wrote that have not left the process (``pagi.transport``)."""
        return len(self._out) + self.conn.outbox.buffered

    @property
    def high(self) -> int:
        return self.conn.outbox.high

    @property
    def low(self) -> int:
        return self.conn.outbox.low

    def transport(self) -> TransportHandle:
        return TransportHandle(self)

    def attach(self, session: WebSocketSession) -> None:
        self.session = session  # the driver's drain and force close reach it through this

    def detach(self, session: WebSocketSession) -> None:
        self.session = None

    def writer(self) -> Callable[[], Coroutine[Any, Any, None]] | None:
        return None  # the driver's sender moves frames to the socket

    async def receive(self) -> tuple[bytes, str]:
        while not self._in:
            if self._in_end is not None:
                return b"", self._in_end
            await self._wait()
        data = b"".join(self._in) if len(self._in) > 1 else self._in[0]
        self._in.clear()
        if self.unacked:
            # Consumed: the client may send as much again (RFC 9113 6.9).
            self.conn.credit(self.sid, self.unacked)
            self.unacked = 0
        return data, ""

    def write_nowait(self, data: bytes) -> None:
        if self.reset or self.ended or self._end_after or not data:
            return
        self._out += data
        self._push()

    async def write(self, data: bytes) -> None:
        self.write_nowait(data)
        while self.congested() and not (self.reset or self.conn.closed):
            if len(self._out) >= self.high:
                await self.conn.wait_window()  # the peer grants window, or the stream ends
                self._push()
            else:
                await self.conn.make_room()  # the connection's buffer is above its mark

    def congested(self) -> bool:
        return self.buffered >= self.high

    async def flush(self) -> None:
        self._push()
        self.conn.pump()
        await self.conn.outbox.flush()

    def open(self, fields: list[tuple[bytes, bytes]]) -> None:
        self._headers(200, fields, end=False)

    def refuse(self, status: int, fields: list[tuple[bytes, bytes]], body: bytes) -> None:
        fields = [*fields, (b"content-length", b"%d" % len(body))]
        if self._headers(status, fields, end=not body) and body:
            self._out += body
            self._end_after = True
            self._push()

    async def send_eof(self) -> None:
        self._end_after = True
        self._push()
        await self.flush()

    def abort(self, reason: str) -> None:
        self._out.clear()
        self.end_input(reason)
        if not self.reset and not self.ended:
            self.reset = True
            self.conn.reset_id(self.sid, ErrorCodes.CANCEL)
        self.conn.window_changed()  # a writer waiting for window must see the end

    async def finish(self) -> None:
        """The session is over: our END_STREAM after the last byte (the driver frees the stream)."""
        if not self.reset and not self.ended:
            self._end_after = True
            self._push()
            with anyio.move_on_after(self.conn.cfg.write_timeout or None):
                while self._out and not (self.reset or self.conn.closed):
                    await self.conn.wait_window()
                    self._push()
            if self._out and not self.reset:
                self.abort(DisconnectReason.WRITE_TIMEOUT)
        await self.flush()

    def check_write_timeout(self, now: float) -> None:
        return None  # the connection's own ticker call covers its socket

    # --- output ----------------------------------------------------------------------
    def _headers(self, status: int, fields: list[tuple[bytes, bytes]], *, end: bool) -> bool:
        conn = self.conn
        self.status = status
        if conn.closed or self.reset:
            return False
        try:
            conn.h2.send_headers(self.sid, [(b":status", b"%d" % status), *fields], end_stream=end)
        except _H2Error:
            self.reset = True
            return False
        if end:
            self.ended = True
        conn.send_soon()
        return True

    def _push(self) -> None:
        """Send as much of what waits as the windows allow; END_STREAM when asked and done."""
        conn = self.conn
        if conn.closed or self.reset or self.ended:
            return
        h2conn = conn.h2
        out = self._out
        try:
            while out:
                room = min(
                    h2conn.local_flow_control_window(self.sid), h2conn.max_outbound_frame_size
                )
                if room <= 0:
                    break
                chunk = bytes(out[:room])
                del out[:room]
                h2conn.send_data(self.sid, chunk, end_stream=self._end_after and not out)
                if self._end_after and not out:
                    self.ended = True
            if not out and self._end_after and not self.ended:
                h2conn.end_stream(self.sid)
                self.ended = True
        except _H2Error:
            self.reset = True
            out.clear()
        conn.send_soon()
