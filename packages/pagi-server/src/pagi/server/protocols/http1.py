"""HTTP/1.0 and HTTP/1.1 connection driver.

Theory of operation
-------------------
A connection is served by one task, in a loop: read a request head, run the
application for it, make sure the request body is finished, repeat. There is
no reader task and no hand-off queue: pipelined requests simply wait in the
read buffer, so responses leave in request order by construction, and an idle
keep-alive connection costs one suspended task.

* Heads are parsed by the strict parser in ``http1_parser``, which enforces
  the inbound limits while bytes arrive (414, 431, 413, 400, 501, 505).
* The request body is *pulled*: the stream's ``receive`` asks this driver
  for more (:meth:`H1Connection.pull`) only when the application wants it,
  which is natural backpressure; ``100 Continue`` goes out on the first such
  request (R-HSRV-7).
* After the application returns, an unread body is discarded up to
  ``max_drain_size`` or the connection is closed, so body bytes are never
  parsed as a request (the desync the Perl server had).
* The backstop (500 / truncation, R-HERR-10..15) lives in the shared
  ``HTTPStream.run``; this module serialises responses itself (deferred
  head, chunked or length framing, HEAD, 204/304, HTTP/1.0 close-delimited
  bodies, trailers, server-added ``date``/``server``).

Deadlines and disconnects are the server ticker's job (:meth:`check_timeouts`):
the task only records which phase it is in and since when. When a deadline
passes, the ticker shuts down the socket's read side, which wakes the
blocked read on either backend with an EOF while leaving the write side open
for a 408. While the application works without reading, the ticker peeks at
the socket for the client's FIN or reset, so ``pagi.connection`` learns of a
vanished client within one tick (R-HTTP-63).

Phases and their clocks: ``idle`` (waiting for a request: ``header_timeout``
on a new connection, then ``keepalive_timeout``), ``head`` (a head has
started: ``header_timeout`` from its first byte, so trickling bytes does not
extend it), ``body`` (waiting for body bytes: ``body_timeout``), ``busy``
(the application runs; no read deadline) and ``wait`` (the application waits
in ``receive`` after the body for the request to end).
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Literal

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from pagi.server.context import ServerContext
from pagi.server.net.outbox import Outbox
from pagi.server.protocols.http1_parser import (
    H2_PREFACE,
    ChunkedReader,
    HeadParser,
    LengthReader,
    ParseError,
    RequestHead,
)
from pagi.server.protocols.http1_response import H1Response
from pagi.server.protocols.responses import simple_response
from pagi.server.scope import ConnectionInfo, build_scope
from pagi.server.streams.dispatch import choose_scope_type
from pagi.server.streams.http import HTTPStream
from pagi.spec import DisconnectReason

__all__ = ["H1Connection"]

log = logging.getLogger("pagi.server")

#: Where a connection is in its life; each waiting phase has its own clock
#: (see the module docstring).
Phase = Literal["idle", "head", "body", "busy", "wait", "upgraded", "closing"]


class _Switch:
    """The connection changes protocol: a WebSocket upgrade or HTTP/2 prior knowledge."""

    __slots__ = ("kind", "leftover", "stream")

    def __init__(
        self, kind: Literal["websocket", "h2"], leftover: bytes, stream: HTTPStream | None = None
    ) -> None:
        self.kind = kind
        self.leftover = leftover
        self.stream = stream


class H1Connection:
    """One HTTP/1.x connection, from accept to close, in a single task."""

    __slots__ = (
        "_body",
        "_buf",
        "_current",
        "_linger_on_close",
        "_parser",
        "_phase",
        "_pulling",
        "_raw",
        "_requests",
        "_since",
        "_task_scope",
        "_timed_out",
        "_wait_scope",
        "cfg",
        "closing",
        "ctx",
        "info",
        "outbox",
        "stream",
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
        self.cfg = ctx.config
        self.stream = stream
        self.info = info
        self.outbox = Outbox.open(
            stream,
            high=self.cfg.write_high_watermark,
            low=self.cfg.write_low_watermark,
            write_timeout=self.cfg.write_timeout,
        )
        self.outbox.on_broken = self._on_write_failed
        self.closing = False
        self._raw: socket.socket | None = stream.extra(SocketAttribute.raw_socket, None)
        self._buf = bytearray(initial)
        self._parser = HeadParser(
            max_line=self.cfg.max_request_line_size,
            max_head=self.cfg.max_header_size,
            max_fields=self.cfg.max_header_count,
            max_body=self.cfg.max_body_size,
        )
        self._current: HTTPStream | None = None
        self._body: LengthReader | ChunkedReader | None = None
        self._phase: Phase = "idle"
        self._since = 0.0  # when the current phase's clock started
        self._timed_out: Phase | Literal["drain"] | None = None  # whose deadline passed
        self._pulling = False
        self._wait_scope: anyio.CancelScope | None = None
        self._task_scope: anyio.CancelScope | None = None
        self._requests = 0
        self._linger_on_close = False

    # --- lifecycle -------------------------------------------------------------------
    async def run(self) -> bytes | None:
        """Serve requests until the connection closes; never raises.

        Returns the bytes read so far, without closing anything, when the
        connection opened with the HTTP/2 preface: it is handed back to
        ``select`` to continue as HTTP/2.
        """
        self.ctx.connections.add(self)
        self._since = time.monotonic()
        switch: _Switch | None = None
        try:
            if self.outbox.direct:
                # Writes go straight to the transport: no writer task can be
                # needed, so a cancel scope does instead of a task group.
                with anyio.CancelScope() as scope:
                    self._task_scope = scope
                    switch = await self._serve_requests()
            else:
                async with anyio.create_task_group() as tg:
                    self._task_scope = tg.cancel_scope
                    self.outbox.spawn = tg.start_soon
                    switch = await self._serve_requests()
                    await self.outbox.flush()  # before the writer task is cancelled
                    self.outbox.spawn = None
                    tg.cancel_scope.cancel()
            if switch is not None and switch.kind == "h2":
                return switch.leftover  # the finally block leaves the stream open
            if switch is not None:
                await self._serve_websocket(switch)
        except Exception:
            log.exception("connection handler failed")
        finally:
            if switch is None or switch.kind != "h2":
                if self._current is not None:
                    self._current.disconnect(DisconnectReason.SERVER_SHUTDOWN)
                with anyio.CancelScope(shield=True):
                    await self._close()
            self.ctx.connections.discard(self)
        return None

    async def _close(self) -> None:
        """Close once the last byte has left, or reset at ``write_timeout``.

        Until then the connection stays registered: it counts toward
        ``max_connections`` and the ticker enforces the write timeout.
        """
        self._enter("closing")
        await self.outbox.close()

    def begin_drain(self) -> None:
        """Finish the request in flight, then close; an idle connection closes now."""
        self.closing = True
        if self._phase == "head" or (self._phase == "idle" and self._requests):
            # A connection accepted but not yet read from keeps its first request
            # (answered with connection: close): its client has sent it or is about
            # to, and closing would lose it (workers replaced under load).
            self._interrupt_read("drain")

    def force_close(self) -> None:
        current = self._current
        if current is not None and not current.connection.response_started():
            # Still waiting for its response at the shutdown timeout: a 503, not an
            # empty reply; the connection then closes once those bytes are out.
            current.connection.mark_started()
            current.disconnect(DisconnectReason.SERVER_SHUTDOWN)
            self.outbox.write_nowait(
                simple_response(503, self.ctx, text="The server is shutting down"), wake=False
            )  # not handed to a writer task about to be cancelled: _close() sends it
            if self._task_scope is not None:
                self._task_scope.cancel()
            return
        if current is not None:
            current.disconnect(DisconnectReason.SERVER_SHUTDOWN)
        self.outbox.abort(DisconnectReason.SERVER_SHUTDOWN)
        if self._task_scope is not None:
            self._task_scope.cancel()

    def _on_write_failed(self, reason: str) -> None:
        self.closing = True
        if self._current is not None:
            self._current.disconnect(reason)

    def _interrupt_read(self, why: Phase | Literal["drain"]) -> None:
        """Wake a blocked read: shutting down the read side makes it return EOF.

        This works the same on asyncio, uvloop and trio, and leaves the write
        side open so a 408 can still be sent.
        """
        self._timed_out = why
        fd = self._raw.fileno() if self._raw is not None else -1
        if fd >= 0:
            # uvloop's transport socket refuses shutdown() (TypeError); a temporary
            # socket object on the same descriptor (detached again) works on any loop.
            sock = socket.socket(fileno=fd)
            try:
                sock.shutdown(socket.SHUT_RD)
                return
            except OSError:
                pass
            finally:
                sock.detach()
        if self._task_scope is not None:
            self._task_scope.cancel()

    def check_timeouts(self, now: float) -> None:
        """Called by the server's ticker: enforce deadlines and notice vanished clients.

        The hot path only records a phase and a timestamp; no timer is armed
        per read or write.
        """
        cfg = self.cfg
        phase = self._phase
        if phase == "idle":
            timeout = cfg.header_timeout if self._requests == 0 else cfg.keepalive_timeout
        elif phase == "head":
            timeout = cfg.header_timeout
        elif phase == "body":
            timeout = cfg.body_timeout
        else:
            timeout = 0.0
            if phase == "busy" and not self._pulling and self._current is not None:
                self._probe_client()
        if timeout and now - self._since >= timeout and self._timed_out is None:
            self._interrupt_read(phase)
        self.outbox.check_write_timeout(now)

    def _probe_client(self) -> None:
        """While the app works without reading, peek for the client's FIN or reset (R-HTTP-63)."""
        raw = self._raw
        if raw is None:
            return
        fd = raw.fileno()
        if fd < 0:
            # Closed under us: asyncio closes the socket once the connection is
            # lost (a reset), while the app may still be busy.
            data = b""
        else:
            # asyncio hands out a wrapper without recv(); a temporary socket object
            # on the same descriptor (detached again, never closed) can peek.
            probe = socket.socket(fileno=fd)
            try:
                data = probe.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            finally:
                probe.detach()
        if not data and self._current is not None:
            self.closing = True
            self._current.disconnect(DisconnectReason.CLIENT_CLOSED)

    async def _recv(self) -> bytes:
        """Bytes from the socket; ``b""`` at EOF, on an error or when interrupted."""
        try:
            return await self.stream.receive(65536)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return b""
        except OSError:
            return b""

    def _enter(self, phase: Phase) -> None:
        self._phase = phase
        self._since = time.monotonic()

    # --- requests, one after another ---------------------------------------------------
    async def _serve_requests(self) -> _Switch | None:
        while True:
            # A connection accepted just before a drain still gets its first
            # request answered (with connection: close): its client has sent it
            # or is about to, and dropping it would fail the request (workers
            # replaced under load). Later requests are not read once draining.
            if self._requests and (self.closing or self.ctx.draining):
                return None
            head = await self._read_head()
            if head is None or isinstance(head, _Switch):
                return head
            stream = self._on_request(head)
            del head
            if stream.scope["type"] == "websocket":
                if not stream.body_complete:
                    return None  # a WebSocket handshake carries no body
                return _Switch("websocket", bytes(self._buf), stream)
            keep_alive = await self._serve(stream)
            # Nothing of a finished request may stay referenced while idle.
            del stream
            self._current = None
            if not keep_alive:
                if self._linger_on_close:
                    await self.outbox.flush()
                    await self._linger()
                return None
            # No further request is read (or parsed) while the answers so far
            # sit above the high mark: a client that pipelines and never reads
            # gets no more than the outbound buffer holds.
            outbox = self.outbox
            if outbox.buffered >= outbox.high:
                await outbox.flush()
        return None

    async def _read_head(self) -> RequestHead | _Switch | None:
        """The next request head, or ``None`` once the connection should close."""
        cfg = self.cfg
        buf = self._buf
        self._enter("idle")
        while True:
            if buf:
                if self._phase == "idle":
                    self._enter("head")
                if (
                    self._requests == 0
                    and buf[:1] == b"P"
                    and cfg.http2
                    and buf[: len(H2_PREFACE)] == H2_PREFACE[: len(buf)]
                ):
                    if len(buf) >= len(H2_PREFACE):
                        self._phase = "upgraded"
                        return _Switch("h2", bytes(buf))
                else:
                    try:
                        head = self._parser.parse(buf)
                    except ParseError as exc:
                        await self._send_error(exc.status, exc.reason)
                        return None
                    if head is not None:
                        return head
            # _recv() inline: this is where an idle keep-alive connection waits, and
            # one coroutine fewer on its stack is ~250 bytes per idle connection.
            try:
                data = await self.stream.receive(65536)
            except (
                anyio.EndOfStream,
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
                OSError,
            ):
                data = b""
            if not data:
                if self._timed_out == "head":
                    await self._send_error(408, None)  # a head that never finished
                return None  # quiet close: EOF, idle timeout or drain
            buf += data

    async def _send_error(self, status: int, text: str | None) -> None:
        self.outbox.write_nowait(simple_response(status, self.ctx, text=text))
        await self.outbox.flush()
        await self._linger()

    def _on_request(self, head: RequestHead) -> HTTPStream:
        scope_type = choose_scope_type(head.method, upgrade=head.upgrade, accept=head.accept)
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
        wire = H1Response(
            self,
            is_head=head.method == "HEAD",
            http10=head.http_version == "1.0",
            keep_alive=head.keep_alive,
        )
        has_body = head.chunked or bool(head.content_length)
        stream = HTTPStream(
            scope,
            wire,
            transport=None,
            expect_continue=head.expect_continue,
            has_body=has_body,
        )
        stream.declared_length = head.content_length
        if head.chunked:
            self._body = ChunkedReader(max_trailers=self.cfg.max_header_size)
        elif head.content_length:
            self._body = LengthReader(head.content_length)
        else:
            self._body = None
        stream.source = self
        self._current = stream
        self._enter("busy")
        if has_body and self._buf:
            self._take_body(stream)  # body bytes that came with the head
        return stream

    # --- the request body, pulled as the app asks for it ------------------------------
    def _take_body(self, stream: HTTPStream) -> None:
        """Move body bytes from the buffer into the stream; enforce the body limits."""
        body = self._body
        if body is None:
            return
        try:
            chunk, finished = body.read(self._buf)
        except ParseError as exc:
            stream.error_status = exc.status
            stream.disconnect(DisconnectReason.PROTOCOL_ERROR)
            self.closing = True
            self._body = None
            return
        if chunk:
            stream.feed(chunk)
            max_body = self.cfg.max_body_size
            if max_body and stream.body_size > max_body:
                stream.error_status = 413
                stream.disconnect(DisconnectReason.BODY_TOO_LARGE)
                self.closing = True
                self._body = None
                return
        if finished:
            self._body = None
            stream.end_body()

    async def pull(self, stream: HTTPStream) -> None:
        """Read more of the request for ``stream`` (called from its ``receive``).

        While the body is incomplete this reads body bytes (``body_timeout``
        applies). Once it is complete, it waits for the client to go away,
        so a ``receive`` after the body returns ``http.disconnect`` when the
        client leaves or the response completes (R-HTTP-13/14).
        """
        if self._pulling:
            await stream.wait_changed()  # another task of the app is already reading
            return
        self._pulling = True
        try:
            if self._body is not None:
                self._enter("body")
                data = await self._recv()
                if not data:
                    self._request_read_failed(stream)
                    return
                self._buf += data
                self._take_body(stream)
                return
            # The body is done: watch for the end of the connection.
            if len(self._buf) > self.cfg.max_header_size:
                await stream.wait_changed()  # enough pipelined bytes held; just wait
                return
            self._phase = "wait"
            with anyio.CancelScope() as scope:
                self._wait_scope = scope
                data = await self._recv()
                if not data:
                    self.closing = True
                    stream.disconnect(DisconnectReason.CLIENT_CLOSED)
                else:
                    self._buf += data  # a pipelined request: kept for later
            self._wait_scope = None
        finally:
            self._pulling = False
            if self._phase in ("body", "wait"):
                self._enter("busy")
            stream.notify()

    def wake(self) -> None:
        """The request ended: stop a ``receive`` that is waiting for the client."""
        if self._wait_scope is not None:
            self._wait_scope.cancel()

    def _request_read_failed(self, stream: HTTPStream) -> None:
        self.closing = True
        if self._timed_out == "body":
            stream.body_timed_out()
        else:
            stream.disconnect(DisconnectReason.CLIENT_CLOSED)

    async def _drain_body(self, stream: HTTPStream) -> bool:
        """Throw away what is left of a body the app did not read; False to close instead."""
        limit = self.cfg.max_drain_size
        stream.discard_body()
        declared = stream.declared_length
        if declared is not None and declared - stream.body_size > limit:
            return False
        while self._body is not None:
            if stream.discarded > limit or self.closing:
                return False
            self._enter("body")
            data = await self._recv()
            if not data:
                return False
            self._buf += data
            self._take_body(stream)
        return stream.body_complete and not self.closing

    # --- one request -----------------------------------------------------------------
    async def _serve(self, stream: HTTPStream) -> bool:
        """Run the app for one request; return whether the connection may continue."""
        scope = stream.scope
        wire = stream.wire
        assert isinstance(wire, H1Response)
        scope["pagi.transport"] = self.outbox.handle()
        self._requests += 1
        started = time.perf_counter()
        if scope["type"] == "sse":
            from pagi.server.streams.sse import serve_sse

            wire.announce_keep_alive = True  # R-SSE-22
            await serve_sse(self.ctx, stream, conn=self)
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
            return await self._drain_body(stream)
        return True

    def _finish(self, stream: HTTPStream, started: float) -> None:
        access_log = self.ctx.access_log
        if access_log is not None:
            wire = stream.wire
            assert isinstance(wire, H1Response)
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

    async def _serve_websocket(self, switch: _Switch) -> None:
        self._phase = "upgraded"
        self._current = None
        from pagi.server.protocols.http1_websocket import serve_websocket_over_http1

        assert switch.stream is not None
        if self.outbox.direct:
            with anyio.CancelScope() as scope:
                self._task_scope = scope
                await serve_websocket_over_http1(self, switch.stream, switch.leftover)
            return
        async with anyio.create_task_group() as tg:
            self._task_scope = tg.cancel_scope
            self.outbox.spawn = tg.start_soon  # the writer may start again as needed
            await serve_websocket_over_http1(self, switch.stream, switch.leftover)
            await self.outbox.flush()
            self.outbox.spawn = None
            tg.cancel_scope.cancel()
