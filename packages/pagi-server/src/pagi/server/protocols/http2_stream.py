"""One HTTP/2 request stream as the shared ``HTTPStream`` sees it: wire and body source.

:class:`H2Stream` is the HTTP/2 ``ResponseWire`` and ``BodySource`` of one
request (R-H2-1): the response head is held until the first body bytes so a
500 can still replace it (R-HTTP-23); the app's fields go through the same
response-field rules as HTTP/1.1 (``responses.filter_response_fields``: the
hop-by-hop fields HTTP/2 forbids are dropped, R-HSRV-4) with values trimmed
as RFC 9113 8.2.1 requires; DATA is sent no larger than the stream's window
and the frame size allow, waiting for WINDOW_UPDATE when the window is
empty and yielding to the connection's other streams as it goes; request
body credit is returned as the app pulls (see the driver's docstring).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import h2.errors
import h2.exceptions

from pagi.server.protocols.responses import filter_response_fields, simple_response
from pagi.server.streams.http import HTTPStream, bodiless

if TYPE_CHECKING:
    from pagi.server.protocols.http2 import H2Connection

__all__ = ["H2Stream"]

ErrorCodes = h2.errors.ErrorCodes
_H2Error = h2.exceptions.ProtocolError
_BLANK = (b" ", b"\t")


class H2Stream:
    """One request stream: its response wire (``ResponseWire``) and body source (``BodySource``)."""

    __slots__ = (
        "_headers",
        "_is_head",
        "_no_body",
        "_trailers",
        "bytes_sent",
        "conn",
        "ended",
        "head_written",
        "http",
        "reset",
        "sid",
        "status",
        "unacked",
        "waiting_since",
    )

    def __init__(self, conn: H2Connection, stream_id: int, *, is_head: bool) -> None:
        self.conn = conn
        self.sid = stream_id
        self.http: HTTPStream | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._is_head = is_head
        self._no_body = is_head
        self._trailers = False
        self.head_written = False
        #: True once END_STREAM (or trailers) went out for the response.
        self.ended = False
        #: True once the stream was reset, by either side.
        self.reset = False
        self.status = 0
        self.bytes_sent = 0
        #: Body bytes received whose flow-control credit has not been returned yet.
        self.unacked = 0
        #: ``time.monotonic()`` since when the app has waited in ``receive`` for body bytes.
        self.waiting_since: float | None = None

    # --- BodySource: the app asks for more of the request ----------------------------
    async def pull(self, stream: HTTPStream) -> None:
        conn = self.conn
        if self.unacked:
            # Everything queued has been handed to the app: its credit goes back now.
            conn.credit(self.sid, self.unacked)
            self.unacked = 0
        if stream.body_complete:
            await stream.wait_changed()  # until the response completes or the client goes
            return
        self.waiting_since = time.monotonic()
        conn.waiting[self.sid] = self
        try:
            await stream.wait_changed()
        finally:
            self.waiting_since = None
            conn.waiting.pop(self.sid, None)

    def wake(self) -> None:
        return None  # a pull only waits on the stream's own change event

    # --- ResponseWire ------------------------------------------------------------------
    def start(self, status: int, headers: list[tuple[bytes, bytes]], trailers: bool) -> None:
        self.status = status
        app = filter_response_fields(headers)  # hop-by-hop fields are illegal here (R-HSRV-4)
        out = [(b":status", b"%d" % status)]
        if app.content_length is not None:
            out.append((b"content-length", app.content_length))
        for name, value in app.fields:
            if value[:1] in _BLANK or value[-1:] in _BLANK:
                value = value.strip(b" \t")  # RFC 9113 8.2.1
            out.append((name, value))
        out.extend(self.conn.ctx.server_fields(app.has_date, app.has_server))
        self._headers = out
        self._trailers = trailers
        self._no_body = bodiless(self._is_head, status)

    def _send_head(self, end_stream: bool) -> bool:
        conn = self.conn
        self.head_written = True
        if conn.closed or self.reset:
            return False
        try:
            conn.h2.send_headers(self.sid, self._headers, end_stream=end_stream)
        except _H2Error:
            self.reset = True
            return False
        if end_stream:
            self.ended = True
        conn.send_soon()
        return True

    async def body(self, data: bytes, final: bool) -> None:
        conn = self.conn
        end = final and not self._trailers
        if self._no_body:
            data = b""
        if not self.head_written:
            if not self._send_head(end_stream=end and not data) or (end and not data):
                return
        self.bytes_sent += len(data)
        h2conn = conn.h2
        sid = self.sid
        rest = memoryview(data) if len(data) > h2conn.max_outbound_frame_size else data
        while True:
            if conn.closed or self.reset:
                return
            try:
                window = min(h2conn.local_flow_control_window(sid), h2conn.max_outbound_frame_size)
            except _H2Error:
                self.reset = True
                return
            if rest and window <= 0:
                conn.pump()  # what is queued must leave before the client can grant more
                await conn.wait_window()
                continue
            chunk, rest = rest[:window], rest[window:]
            last = end and not rest
            if chunk or last:
                try:
                    h2conn.send_data(sid, chunk, end_stream=last)
                except _H2Error:
                    self.reset = True
                    return
            if last:
                self.ended = True
            if conn.queued(len(chunk)):
                await conn.make_room()
            if not rest:
                return

    async def trailers(self, headers: list[tuple[bytes, bytes]]) -> None:
        fields = [(n, v.strip(b" \t")) for n, v in filter_response_fields(headers).fields]
        conn = self.conn
        if not self.head_written and not self._send_head(end_stream=False):
            return
        if conn.closed or self.reset:
            return
        try:
            conn.h2.send_headers(self.sid, fields, end_stream=True)
        except _H2Error:
            self.reset = True
            return
        self.ended = True
        conn.send_soon()

    async def flush(self) -> None:
        if not self.head_written:
            self._send_head(end_stream=False)
        self.conn.pump()
        await self.conn.outbox.flush()

    async def send_continue(self) -> None:
        return None  # HTTP/2 has no interim 100 for PAGI apps to trigger (R-HSRV-7)

    def error_response(self, status: int) -> None:
        self.status = status
        conn = self.conn
        self.head_written = True
        if conn.closed or self.reset:
            return
        body = simple_response(status, conn.ctx).partition(b"\r\n\r\n")[2]
        try:
            fits = conn.h2.local_flow_control_window(self.sid) >= len(body)
            headers = [
                (b":status", b"%d" % status),
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"date", conn.ctx.date_value()),
            ]
            if fits:
                headers.append((b"content-length", b"%d" % len(body)))
            conn.h2.send_headers(self.sid, headers)
            if fits:
                conn.h2.send_data(self.sid, body, end_stream=True)
            else:
                conn.h2.end_stream(self.sid)
        except _H2Error:
            self.reset = True
            return
        self.ended = True
        conn.send_soon()

    def abort(self) -> None:
        self.conn.reset_stream(self, ErrorCodes.INTERNAL_ERROR)
