"""HTTP/1.0 and HTTP/1.1 connection driver.

Theory of operation
-------------------
A connection runs three tasks that share nothing but a few fields:

* the **reader** owns the socket's receive side and one buffer. It turns
  bytes into request heads and body chunks with the strict parser in
  ``http1_parser`` (which enforces every inbound limit while bytes arrive:
  414 for a request line, 431 for a head, 413 for a body, 400 for anything
  malformed or ambiguous) and notices a client that goes away while the
  application is busy (R-HTTP-63). It hands work to the main task as queued
  *items*, in order.
* the **main task** takes items one at a time, so pipelined responses leave
  in request order. For a request it builds the stream, calls the app, then
  applies the backstop (R-HERR-10..15) and decides whether the connection
  can carry another request: only if the response was framed, nobody asked
  for ``close``, and any unread request body could be discarded within
  ``max_drain_size`` (an unread body is never parsed as a request, the
  desync the Perl server had).
* the outbox **writer** (``transport.Outbox``) pushes bytes the app wrote
  while nobody was flushing.

Responses are serialised here rather than by a general-purpose library,
because the framing rules of PAGI (deferred head, trailers, HEAD, HTTP/1.0
close-delimited bodies, server-added headers) are simpler to state directly.

Timeouts (all from ``ServerConfig``) are checked by the server's ticker
against timestamps kept here: the first byte of a request
(``keepalive_timeout``; on a new connection the whole first head must arrive
within ``header_timeout``), the rest of a head (``header_timeout`` from its
first byte, so a slowloris client cannot reset it by trickling), and body
bytes while a body is being read (``body_timeout``).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from http import HTTPStatus
from typing import IO, Any

import anyio
import anyio.abc

from pagi.server.context import ServerContext
from pagi.server.protocols.http1_parser import (
    H2_PREFACE,
    ChunkedReader,
    LengthReader,
    ParseError,
    RequestHead,
    parse_head,
)
from pagi.server.scope import ConnectionInfo, build_scope, wants_event_stream
from pagi.server.streams.http import HTTPStream
from pagi.server.transport import Outbox
from pagi.spec import DisconnectReason, EventError

__all__ = ["H1Connection", "simple_response"]

log = logging.getLogger("pagi.server")

_FILE_CHUNK = 256 * 1024
_STATUS_LINES: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        line = f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")
        _STATUS_LINES[status] = line
    return line


def simple_response(
    status: int,
    date: bytes,
    *,
    text: str | None = None,
    headers: tuple[tuple[bytes, bytes], ...] = (),
    close: bool = True,
) -> bytes:
    """A complete ``text/plain`` response the server sends on its own (R-HERR-1)."""
    body = ((text if text is not None else HTTPStatus(status).phrase) + "\n").encode("utf-8")
    lines = [
        status_line(status),
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\n" % len(body),
        b"date: " + date + b"\r\n",
        b"server: pagi\r\n",
    ]
    lines.extend(name + b": " + value + b"\r\n" for name, value in headers)
    if close:
        lines.append(b"connection: close\r\n")
    lines.append(b"\r\n")
    lines.append(body)
    return b"".join(lines)


def _tokens(value: bytes) -> set[bytes]:
    return {t.strip().lower() for t in value.split(b",")}


_NO_BODY = frozenset({204, 304})


class _Item:
    """Work for the main task: a request, an error to send, or a protocol switch."""

    __slots__ = ("kind", "payload", "stream")

    def __init__(self, kind: str, stream: HTTPStream | None = None, payload: Any = None) -> None:
        self.kind = kind  # "request" | "error" | "upgrade" | "h2" | "end"
        self.stream = stream
        self.payload = payload


class _H1Response:
    """The HTTP/1.x framing of one response (implements ``ResponseWire``)."""

    __slots__ = (
        "_conn",
        "_head",
        "_http10",
        "_is_head",
        "_mode",
        "_remaining",
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
        self._mode = "none"  # "chunked" | "length" | "close" | "none"
        self._remaining = 0
        self._trailers = False
        #: Say ``connection: keep-alive`` on HTTP/1.1 too (SSE streams, R-SSE-22).
        self.announce_keep_alive = False
        self.head_written = False
        self.status = 0
        self.bytes_sent = 0

    def start(self, status: int, headers: list[tuple[bytes, bytes]], trailers: bool) -> None:
        self.status = status
        out = [status_line(status)]
        length: int | None = None
        has_date = has_server = False
        no_body = self._is_head or status in _NO_BODY
        for name, value in headers:
            name = name.lower()
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    raise EventError(
                        "http.response.start",
                        "headers",
                        f"content-length {value!r} is not a number",
                    ) from None
                if length < 0 or not value.strip().isdigit():
                    raise EventError(
                        "http.response.start", "headers", f"content-length {value!r} is invalid"
                    )
                if status == 204 or (trailers and not self._http10 and not no_body):
                    continue  # 204 carries no length; trailers need chunked framing
            elif name == b"transfer-encoding":
                continue  # the server owns framing (R-HTTP-21)
            elif name == b"connection":
                if b"close" in _tokens(value):
                    self.keep_alive = False
                continue
            elif name == b"date":
                has_date = True
            elif name == b"server":
                has_server = True
            out.append(name + b": " + value + b"\r\n")
        if no_body:
            self._mode = "none"
        elif trailers and not self._http10:
            self._mode = "chunked"
            self._trailers = True
        elif length is not None:
            self._mode = "length"
            self._remaining = length
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
        if not has_date:
            out.append(b"date: " + conn.ctx.date_value() + b"\r\n")
        if not has_server and conn.ctx.config.server_header:
            out.append(b"server: pagi\r\n")
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
            if len(data) > self._remaining:
                raise EventError(
                    "http.response.body",
                    "body",
                    f"is {len(data) - self._remaining} bytes longer than the content-length",
                )
            self._remaining -= len(data)
            if final and self._remaining:
                log.error(
                    "response body ended %d bytes short of its content-length; closing",
                    self._remaining,
                )
                self.keep_alive = False
            return data
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
            await outbox.flush()
        elif payload:
            await outbox.write(payload)

    async def file(self, fh: IO[bytes], offset: int, length: int | None) -> None:
        if offset:
            await anyio.to_thread.run_sync(fh.seek, offset)
        remaining = length
        while remaining is None or remaining > 0:
            want = _FILE_CHUNK if remaining is None else min(_FILE_CHUNK, remaining)
            chunk = await anyio.to_thread.run_sync(fh.read, want)
            if not chunk:
                break
            if remaining is not None:
                remaining -= len(chunk)
            await self.body(chunk, False)
            if self._conn.outbox.broken is not None:
                return
        await self.body(b"", True)

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
        conn.outbox.write_nowait(simple_response(status, conn.ctx.date_value()))

    def abort(self) -> None:
        # Closing without the final chunk (or short of content-length) is how
        # HTTP/1.1 tells a client the response is incomplete (R-HERR-6).
        self.keep_alive = False


class H1Connection:
    """One HTTP/1.x connection, from accept to close."""

    def __init__(
        self,
        ctx: ServerContext,
        stream: anyio.abc.ByteStream,
        info: ConnectionInfo,
        *,
        initial: bytes = b"",
    ) -> None:
        self.ctx = ctx
        self.cfg = ctx.config
        self.stream = stream
        self.info = info
        self.outbox = Outbox(
            stream,
            high=self.cfg.write_high_watermark,
            low=self.cfg.write_low_watermark,
            write_timeout=self.cfg.write_timeout,
        )
        self.outbox.on_broken = self._on_write_failed
        self.closing = False
        self._initial = initial
        self._items: deque[_Item] = deque()
        self._item_ready: anyio.Event | None = None
        self._item_space: anyio.Event | None = None
        self._unfinished: list[HTTPStream] = []
        self._busy = False
        self._read_scope: anyio.CancelScope | None = None
        self._reading: HTTPStream | None = None  # the request whose body is being read
        self._body_read_at = 0.0  # when body bytes last arrived (body_timeout)
        self._room_wait = False  # the reader waits for the app, not for the client
        self._task_scope: anyio.CancelScope | None = None
        self._requests = 0
        self._idle_since = 0.0
        self._head_started: float | None = None
        self._linger_on_close = False

    # --- lifecycle -------------------------------------------------------------------
    async def run(self) -> None:
        """Serve requests until the connection closes; never raises."""
        self.ctx.connections.add(self)
        self._idle_since = time.monotonic()
        upgrade: _Item | None = None
        try:
            async with anyio.create_task_group() as tg:
                self._task_scope = tg.cancel_scope
                self.outbox.spawn = tg.start_soon
                tg.start_soon(self._reader)
                upgrade = await self._main()
                await self.outbox.flush()  # before the writer task is cancelled
                self.outbox.spawn = None
                tg.cancel_scope.cancel()
            if upgrade is not None:
                await self._switch_protocol(upgrade)
        except Exception:
            log.exception("connection handler failed")
        finally:
            self.ctx.connections.discard(self)
            for stream in self._unfinished:
                stream.disconnect(DisconnectReason.SERVER_SHUTDOWN)
            with anyio.CancelScope(shield=True):
                await self._close()

    async def _close(self) -> None:
        try:
            with anyio.move_on_after(1):
                await self.outbox.flush()
            await self.stream.aclose()
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    def begin_drain(self) -> None:
        self.closing = True
        if not self._busy and self._item_ready is not None:
            self._item_ready.set()  # an idle connection closes now

    def force_close(self) -> None:
        for stream in self._unfinished:
            stream.disconnect(DisconnectReason.SERVER_SHUTDOWN)
        self.outbox.abort(DisconnectReason.SERVER_SHUTDOWN)
        if self._task_scope is not None:
            self._task_scope.cancel()

    def _on_write_failed(self, reason: str) -> None:
        self.closing = True
        for stream in self._unfinished:
            stream.disconnect(reason)
        if self._task_scope is not None and not self._busy:
            self._task_scope.cancel()

    # --- the reader ------------------------------------------------------------------
    def _push(self, item: _Item) -> None:
        self._items.append(item)
        if self._item_ready is not None:
            self._item_ready.set()
            self._item_ready = None

    def check_timeouts(self, now: float) -> None:
        """Called by the server's ticker: end a wait that has run past its deadline.

        Deadlines are derived from timestamps the reader and main task keep
        (plain float assignments), so the hot path never arms a timer.
        """
        cfg = self.cfg
        if self._head_started is not None:
            timeout, since = cfg.header_timeout, self._head_started
        elif self._reading is not None and not self._room_wait:
            timeout, since = cfg.body_timeout, self._body_read_at
        elif not self._busy and not self._items:
            timeout = cfg.header_timeout if self._requests == 0 else cfg.keepalive_timeout
            since = self._idle_since
        else:
            timeout = 0.0
            since = now
        if timeout and now - since >= timeout and self._read_scope is not None:
            self._read_scope.cancel()
        self.outbox.check_write_timeout(now)

    async def _recv(self) -> bytes:
        """Bytes from the socket; ``b""`` at EOF or on an error."""
        if self._initial:
            data, self._initial = self._initial, b""
            return data
        try:
            return await self.stream.receive(65536)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return b""
        except OSError:
            return b""

    async def _reader(self) -> None:
        # One cancel scope for the reader's whole life; the server's ticker
        # cancels it when the current phase's deadline passes (check_timeouts).
        with anyio.CancelScope() as scope:
            self._read_scope = scope
            await self._read_loop()
            self._read_scope = None
            return
        self._read_scope = None
        self._on_read_timeout(self._reading, self._head_started is not None)

    async def _read_loop(self) -> None:
        cfg = self.cfg
        buf = bytearray(self._initial)
        self._initial = b""
        stream: HTTPStream | None = None
        body: LengthReader | ChunkedReader | None = None
        need_data = not buf
        while True:
            if need_data:
                data = await self._recv()
                if not data:
                    self._on_eof(stream if body is not None else None)
                    return
                buf += data
            need_data = True
            if body is None:
                # Between requests: parse the next head.
                if self._head_started is None and buf:
                    self._head_started = time.monotonic()
                if self._requests == 0 and stream is None and buf[:1] == b"P" and cfg.http2:
                    preface = H2_PREFACE[: len(buf)]
                    if buf[: len(preface)] == preface:
                        if len(buf) < len(H2_PREFACE):
                            continue  # could still be HTTP/2 with prior knowledge
                        self._push(_Item("h2", payload=bytes(buf)))
                        return
                try:
                    head = parse_head(
                        buf,
                        max_line=cfg.max_request_line_size,
                        max_head=cfg.max_header_size,
                        max_fields=cfg.max_header_count,
                        max_body=cfg.max_body_size,
                    )
                except ParseError as exc:
                    self._push_error(exc.status, exc.reason)
                    return
                if head is None:
                    continue
                self._head_started = None
                stream = self._on_request(head)
                if head.chunked:
                    body = ChunkedReader(max_trailers=cfg.max_header_size)
                elif head.content_length:
                    body = LengthReader(head.content_length)
                if body is None:
                    if stream.scope["type"] == "websocket":
                        self._push(_Item("upgrade", stream, bytes(buf)))
                        return
                    stream = None  # keep no finished request alive while idle
                    need_data = not buf
                    continue
                self._reading = stream
                self._body_read_at = time.monotonic()
            assert stream is not None
            try:
                chunk, finished = body.read(buf)
            except ParseError as exc:
                self._protocol_error(stream, exc.status, exc.reason)
                return
            if chunk:
                stream.feed(chunk)
                self._body_read_at = time.monotonic()
                if cfg.max_body_size and stream.body_size > cfg.max_body_size:
                    self._body_too_large(stream)
                    return
                if stream.discarding and stream.discarded > cfg.max_drain_size:
                    stream.reader_gone()  # too much to throw away: close instead
                    return
                if not stream.has_room():
                    # A slow app is not a slow client: no read deadline meanwhile.
                    self._room_wait = True
                    await stream.wait_room()
                    self._room_wait = False
                    self._body_read_at = time.monotonic()
            if finished:
                stream.end_body()
                self._reading = None
                body = None
                if stream.scope["type"] == "websocket":
                    self._push(_Item("upgrade", stream, bytes(buf)))
                    return
                stream = None
                need_data = not buf

    def _on_request(self, head: RequestHead) -> HTTPStream:
        if head.upgrade and head.method == "GET" and b"websocket" in head.upgrade.lower():
            scope_type = "websocket"
        elif head.accept and wants_event_stream(head.accept):
            scope_type = "sse"
        else:
            scope_type = "http"
        scope = build_scope(
            scope_type,
            self.info,
            method=head.method,
            http_version=head.http_version,
            target=head.target,
            headers=head.headers,
        )
        if scope_type == "http":
            scope["extensions"]["fullflush"] = {}
        wire = _H1Response(
            self,
            is_head=head.method == "HEAD",
            http10=head.http_version == "1.0",
            keep_alive=head.keep_alive,
        )
        stream = HTTPStream(
            scope,
            wire,
            transport=None,
            expect_continue=head.expect_continue,
            has_body=head.chunked or bool(head.content_length),
        )
        stream.declared_length = head.content_length
        if scope_type != "websocket":  # a WebSocket is queued once its head is complete
            self._unfinished.append(stream)
            self._push(_Item("request", stream))
        return stream

    def _push_error(self, status: int, text: str | None = None) -> None:
        self._push(_Item("error", payload=(status, text)))

    def _protocol_error(self, stream: HTTPStream | None, status: int, detail: str) -> None:
        log.debug("bad request from %s: %s", self.info.client, detail)
        if stream is not None and not stream.body_complete:
            # Broken body framing mid-request: the app learns it from the connection.
            stream.error_status = 400
            stream.disconnect(DisconnectReason.PROTOCOL_ERROR)
            self._push(_Item("end"))
        else:
            self._push_error(status if status in (400, 413, 414, 431, 501) else 400)

    def _body_too_large(self, stream: HTTPStream) -> None:
        stream.error_status = 413
        stream.disconnect(DisconnectReason.BODY_TOO_LARGE)
        self._push(_Item("end"))

    def _on_read_timeout(self, stream: HTTPStream | None, partial_head: bool) -> None:
        if partial_head:
            self._push_error(408)
            return
        if stream is not None and not stream.body_complete:
            stream.body_timed_out()
        self._push(_Item("end"))

    def _on_eof(self, stream: HTTPStream | None) -> None:
        for pending in self._unfinished:
            pending.disconnect(DisconnectReason.CLIENT_CLOSED)
            pending.reader_gone()
        self.closing = True
        self._push(_Item("end"))

    # --- the main task ---------------------------------------------------------------
    async def _next_item(self) -> _Item | None:
        while not self._items:
            if self.closing:
                return None
            self._item_ready = anyio.Event()
            self._idle_since = time.monotonic()
            await self._item_ready.wait()
        return self._items.popleft()

    async def _main(self) -> _Item | None:
        while True:
            item = await self._next_item()
            if item is None or item.kind == "end":
                return None
            if item.kind == "error":
                status, text = item.payload
                self.outbox.write_nowait(simple_response(status, self.ctx.date_value(), text=text))
                await self.outbox.flush()
                await self._linger()
                return None
            if item.kind in ("upgrade", "h2"):
                return item
            assert item.stream is not None
            self._busy = True
            try:
                keep_alive = await self._serve(item.stream)
            finally:
                self._busy = False
                item = None  # type: ignore[assignment]  # drop the request while idle
            if not keep_alive or self.ctx.draining:
                if self._linger_on_close:
                    await self.outbox.flush()
                    await self._linger()
                return None

    async def _serve(self, stream: HTTPStream) -> bool:
        """Run the app for one request; return whether the connection may continue."""
        scope = stream.scope
        wire = stream.wire
        assert isinstance(wire, _H1Response)
        scope["pagi.transport"] = self.outbox.handle()
        self._requests += 1
        started = time.perf_counter()
        if scope["type"] == "sse":
            from pagi.server.streams.sse import serve_sse_over_http

            await serve_sse_over_http(self, stream)
            self._finish(stream, started)
            return False
        await stream.run(self.ctx.app)
        self._finish(stream, started)
        if not stream.connection.response_complete():
            self._linger_on_close = not stream.body_complete
            return False
        if not wire.keep_alive or self.closing:
            return False
        if not stream.body_complete:
            if stream.continue_pending:
                return False  # the client waits for 100 Continue: do not wait for the body
            declared = stream.declared_length
            if declared is not None and declared - stream.body_size > self.cfg.max_drain_size:
                return False
            stream.discard_body()
            with anyio.move_on_after(self.cfg.body_timeout or 30):
                await stream.wait_body_complete()
            if not stream.body_complete:
                return False
        return True

    def _finish(self, stream: HTTPStream, started: float) -> None:
        if stream in self._unfinished:
            self._unfinished.remove(stream)
        access_log = self.ctx.access_log
        if access_log is not None:
            wire = stream.wire
            assert isinstance(wire, _H1Response)
            access_log.log(
                stream.scope, wire.status, wire.bytes_sent, time.perf_counter() - started
            )

    async def _linger(self) -> None:
        """Half-close, then read briefly so the client sees our error before a reset."""
        try:
            await self.stream.send_eof()
            with anyio.move_on_after(1.0):
                total = 0
                while total < 1024 * 1024:
                    total += len(await self.stream.receive(65536))
        except Exception:
            pass

    async def _switch_protocol(self, item: _Item) -> None:
        self._unfinished.clear()
        if item.kind == "h2":
            from pagi.server.protocols.http2 import H2Connection

            self.ctx.connections.discard(self)
            await H2Connection(self.ctx, self.stream, self.info, initial=item.payload).run()
            return
        from pagi.server.protocols.websocket import serve_websocket_over_http1

        assert item.stream is not None
        async with anyio.create_task_group() as tg:
            self._task_scope = tg.cancel_scope
            self.outbox.spawn = tg.start_soon  # the writer may start again as needed
            await serve_websocket_over_http1(self, item.stream, item.payload)
            await self.outbox.flush()
            self.outbox.spawn = None
            tg.cancel_scope.cancel()
