"""HTTP/1.x responses: status lines, server-generated responses, response framing.

:class:`H1Response` is the HTTP/1.x ``ResponseWire`` of one response: it
turns the app's ``http.response.*`` events (already validated by the shared
``HTTPStream``) into bytes with the right framing: the head is held until
the first body bytes so a 500 can still replace it (R-HTTP-23); the body is
chunked, length-delimited or, for HTTP/1.0 without a length, delimited by
the close (R-HSRV-2/5); HEAD, 204 and 304 carry no body (R-HSRV-8/9);
trailers force chunked framing (R-HTTP-51); the app's ``transfer-encoding``
is ignored (R-HTTP-21) and ``date``/``server`` are added only when absent.
Status lines, server-generated answers and the response-field rules shared
with HTTP/2 are in ``responses``.
"""

from __future__ import annotations

import logging
from typing import IO, TYPE_CHECKING, Literal

import anyio

from pagi.server.net.stream import TransportStream
from pagi.server.protocols.responses import filter_response_fields, simple_response, status_line
from pagi.server.streams.http import bodiless
from pagi.spec import DisconnectReason

if TYPE_CHECKING:
    from pagi.server.protocols.http1 import H1Connection

__all__ = ["H1Response"]

log = logging.getLogger("pagi.server")

#: How a response body is delimited on the wire (RFC 9112 6).
Framing = Literal["chunked", "length", "close", "none"]


class H1Response:
    """The HTTP/1.x framing of one response (implements ``ResponseWire``)."""

    __slots__ = (
        "_conn",
        "_head",
        "_http10",
        "_is_head",
        "_mode",
        "_trailers",
        "announce_keep_alive",
        "bytes_sent",
        "head_written",
        "keep_alive",
        "status",
    )

    def __init__(self, conn: H1Connection, *, is_head: bool, http10: bool, keep_alive: bool):
        self._conn = conn
        self._is_head = is_head
        self._http10 = http10
        self.keep_alive = keep_alive
        self._head = b""
        self._mode: Framing = "none"
        self._trailers = False
        #: Say ``connection: keep-alive`` on HTTP/1.1 too (SSE streams, R-SSE-22).
        self.announce_keep_alive = False
        self.head_written = False
        self.status = 0
        self.bytes_sent = 0

    def start(self, status: int, headers: list[tuple[bytes, bytes]], trailers: bool) -> None:
        self.status = status
        out = [status_line(status)]
        app = filter_response_fields(headers)
        if app.close:
            self.keep_alive = False
        no_body = bodiless(self._is_head, status)
        length: int | None = None
        if app.content_length is not None:
            length = int(app.content_length)  # validated by the stream (streams/http.py)
            # 204 carries no length; trailers need chunked framing.
            if not (status == 204 or (trailers and not self._http10 and not no_body)):
                out.append(b"content-length: " + app.content_length + b"\r\n")
        out.extend(name + b": " + value + b"\r\n" for name, value in app.fields)
        if no_body:
            self._mode = "none"
        elif trailers and not self._http10:
            self._mode = "chunked"
            self._trailers = True
        elif length is not None:
            self._mode = "length"
        elif self._http10:
            self._mode = "close"  # no chunked for HTTP/1.0: the close ends the body
            self.keep_alive = False
        else:
            self._mode = "chunked"
        conn = self._conn
        if conn.ctx.draining or conn.closing:
            self.keep_alive = False
        if self._mode == "chunked":
            out.append(b"transfer-encoding: chunked\r\n")
        out.extend(
            n + b": " + v + b"\r\n" for n, v in conn.ctx.server_fields(app.has_date, app.has_server)
        )
        if not self.keep_alive:
            out.append(b"connection: close\r\n")
        elif self._http10 or self.announce_keep_alive:
            out.append(b"connection: keep-alive\r\n")
        out.append(b"\r\n")
        self._head = b"".join(out)

    def _frame(self, data: bytes, final: bool) -> bytes:
        mode = self._mode
        if mode == "chunked":
            framed = b"%x\r\n%s\r\n" % (len(data), data) if data else b""
            if final and not self._trailers:
                framed += b"0\r\n\r\n"
            return framed
        if mode == "length":
            return data  # the stream holds the body to the content-length
        if mode == "close":
            return data
        return b""

    async def body(self, data: bytes, final: bool) -> None:
        payload = self._frame(bytes(data), final)
        if not self.head_written:
            payload = self._head + payload
            self.head_written = True
        self.bytes_sent += len(data)
        outbox = self._conn.outbox
        if final:
            outbox.write_nowait(payload, wake=False)
            if outbox.must_flush():
                await outbox.flush()
        elif payload:
            await outbox.write(payload)

    async def sendfile(self, fh: IO[bytes], offset: int, count: int) -> bool:
        """Send ``count`` bytes of a file with zero copy when the framing allows.

        Only plain-TCP asyncio connections qualify (``io.TransportStream``),
        and only bodies framed by content-length (or HTTP/1.0 close): chunked
        framing and TLS need the bytes in user space. False: not done, the
        caller streams the file instead.
        """
        stream = self._conn.stream
        if (
            not isinstance(stream, TransportStream)
            or not stream.can_sendfile
            or self._mode not in ("length", "close")
        ):
            return False
        outbox = self._conn.outbox
        if not self.head_written:
            self.head_written = True
            outbox.write_nowait(self._head, wake=False)
        self.bytes_sent += count
        if count:
            try:
                await stream.sendfile(fh, offset, count)
            except anyio.BrokenResourceError:
                outbox.abort(DisconnectReason.WRITE_ERROR)
        return True

    async def trailers(self, headers: list[tuple[bytes, bytes]]) -> None:
        if self._mode == "chunked":
            fields = b"".join(n.lower() + b": " + v + b"\r\n" for n, v in headers)
            await self._conn.outbox.write(b"0\r\n" + fields + b"\r\n")
        await self._conn.outbox.flush()

    async def flush(self) -> None:
        if not self.head_written:
            self.head_written = True
            await self._conn.outbox.write(self._head)
        await self._conn.outbox.flush()

    async def send_continue(self) -> None:
        self._conn.outbox.write_nowait(b"HTTP/1.1 100 Continue\r\n\r\n")
        await self._conn.outbox.flush()

    def error_response(self, status: int) -> None:
        self.status = status
        self.keep_alive = False
        self.head_written = True
        conn = self._conn
        conn.outbox.write_nowait(simple_response(status, conn.ctx))

    def abort(self) -> None:
        # Closing without the final chunk (or short of content-length) is how
        # HTTP/1.1 tells a client the response is incomplete (R-HERR-6).
        self.keep_alive = False
