"""The ``http`` scope: receive queue and send state machine of one request.

Theory of operation
-------------------
An :class:`HTTPStream` sits between a protocol driver and the application.
It never sees a socket. The driver pushes request body bytes in with
:meth:`feed` / :meth:`end_body` and reports trouble with :meth:`disconnect`;
the application pulls ``http.request`` / ``http.disconnect`` from
:meth:`receive` and pushes response events into :meth:`send`.

``send`` first runs the event through ``pagi.spec``'s :class:`SendMachine`,
so a malformed or out-of-order event raises before anything reaches the
wire, with a message naming the field (R-ERR-1..3, R-HTTP-32). Legal events
are turned into calls on the driver's :class:`ResponseWire`, which owns the
framing (chunked, Content-Length, HTTP/2 DATA frames). Because HTTP/1.1 and
HTTP/2 both go through this class, the event rules exist once.

The request body arrives one of two ways. A pull-model driver (HTTP/1.1)
sets :attr:`source`, and ``receive`` asks it for more only when the app
wants it: backpressure without a buffer. A push-model driver (HTTP/2) calls
:meth:`feed` / :meth:`end_body` as DATA frames arrive; there the body is
bounded by ``max_body_size`` and HTTP/2's own flow control.

``receive`` follows R-HTTP-11..15: queued body bytes are delivered as one
event (coalesced), the last with ``more=False``; once the body is exhausted
it waits until the request ends, then returns ``http.disconnect``; after the
response is complete or the client is gone it returns ``http.disconnect`` at
once. The interim ``100 Continue`` is sent the first time the app asks for
body bytes that have not arrived (R-HSRV-7).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import IO, Any, Protocol

import anyio

from pagi.server.connection import RequestConnection
from pagi.server.transport import TransportHandle
from pagi.spec import App, DisconnectReason, Event, EventError, SendMachine

__all__ = ["HTTPStream", "ResponseWire", "bodiless"]

_FILE_CHUNK = 256 * 1024

log = logging.getLogger("pagi.server")

_DISCONNECT: dict[str, Any] = {"type": "http.disconnect"}


class ResponseWire(Protocol):
    """What a protocol driver offers a stream for writing one response."""

    def start(self, status: int, headers: list[tuple[bytes, bytes]], trailers: bool) -> None:
        """Record the response head; the driver may defer writing it (R-HTTP-23)."""

    async def body(self, data: bytes, final: bool) -> None:
        """Write body bytes; ``final`` ends the body (and the response unless trailers)."""

    async def trailers(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Write the trailer fields and end the response."""

    async def flush(self) -> None:
        """Push buffered bytes out now (``http.fullflush``)."""

    async def send_continue(self) -> None:
        """Send ``100 Continue`` (HTTP/1.1 only; other drivers do nothing)."""

    @property
    def head_written(self) -> bool:
        """True once any byte of the response head has been handed to the transport."""

    def error_response(self, status: int) -> None:
        """Send a complete server-generated response instead of the app's (the backstop)."""

    def abort(self) -> None:
        """End a response that cannot be completed (HTTP/1.1: close; HTTP/2: reset)."""


def bodiless(is_head: bool, status: int) -> bool:
    """True when a response carries no body: a HEAD answer, 204 or 304 (RFC 9110).

    Its headers (content-length included) still go out; body bytes the app
    sends are dropped. Every driver and the content-length check use this one rule.
    """
    return is_head or status == 204 or status == 304


class BodySource(Protocol):
    """A driver that reads the request body only when the app asks (HTTP/1.1)."""

    async def pull(self, stream: HTTPStream) -> None:
        """Read more of the request; feed, end or disconnect ``stream``."""

    def wake(self) -> None:
        """The request ended: abandon a pull that only waits for the client."""


class HTTPStream:
    """One HTTP request/response exchange, as the application sees it."""

    __slots__ = (
        "_body_complete",
        "_body_size",
        "_changed",
        "_chunks",
        "_continue_pending",
        "_final_delivered",
        "_length_left",
        "_queued",
        "connection",
        "declared_length",
        "discarded",
        "discarding",
        "error_status",
        "machine",
        "scope",
        "source",
        "wire",
    )

    def __init__(
        self,
        scope: dict[str, Any],
        wire: ResponseWire,
        *,
        transport: TransportHandle | None,
        expect_continue: bool = False,
        has_body: bool = True,
    ) -> None:
        self.scope = scope
        self.wire = wire
        self.connection = RequestConnection()
        self.connection.on_disconnected = self._on_disconnected
        scope["pagi.connection"] = self.connection
        if transport is not None:
            scope["pagi.transport"] = transport
        self.machine = SendMachine("http", scope["extensions"])
        self._chunks: list[bytes] = []  # a list: an empty deque holds ~600 bytes
        self._queued = 0
        self._body_size = 0
        self._body_complete = not has_body
        self._final_delivered = False
        self._length_left: int | None = None  # declared response bytes not yet sent
        self._continue_pending = expect_continue and has_body
        self._changed: anyio.Event | None = None
        #: Status the server sends if the app never responds (413 after an oversized body).
        self.error_status = 500
        #: True once the app is done and leftover body bytes are being thrown away.
        self.discarding = False
        self.discarded = 0
        #: The request's Content-Length, when it had one.
        self.declared_length: int | None = None
        #: Set by pull-model drivers; ``None`` when the driver pushes the body in.
        self.source: BodySource | None = None

    # --- the driver's side ---------------------------------------------------------
    @property
    def body_complete(self) -> bool:
        return self._body_complete

    @property
    def body_size(self) -> int:
        return self._body_size

    @property
    def continue_pending(self) -> bool:
        """True while ``100 Continue`` is owed but was never asked for."""
        return self._continue_pending

    def feed(self, data: bytes) -> None:
        """Queue request body bytes (already de-chunked)."""
        self._body_size += len(data)
        if self.discarding:
            self.discarded += len(data)
            return
        if not data:
            return
        self._chunks.append(bytes(data))
        self._queued += len(data)
        self._notify()

    def end_body(self) -> None:
        """The request body is complete."""
        self._body_complete = True
        self._notify()

    def body_timed_out(self) -> None:
        """The client stopped sending its body: 408 if the app has not answered."""
        self.error_status = 408
        self.disconnect(DisconnectReason.CLIENT_TIMEOUT)

    def disconnect(self, reason: str) -> None:
        """End the request abnormally (client gone, timeout, limit, shutdown)."""
        self.connection.mark_disconnected(reason)

    def discard_body(self) -> None:
        """The app is finished: drop queued and future body bytes."""
        self.discarding = True
        self._chunks.clear()
        self._queued = 0

    def _on_disconnected(self, reason: str) -> None:
        # Step 5 of R-CONN-40: the disconnect becomes visible to receive().
        self._notify()
        if self.source is not None:
            self.source.wake()

    def notify(self) -> None:
        """Wake anyone waiting in :meth:`receive` (a driver's pull finished)."""
        self._notify()

    async def wait_changed(self) -> None:
        """Wait until body bytes, the body's end, or the request's end arrive."""
        changed = self._changed
        if changed is None:
            changed = self._changed = anyio.Event()
        await changed.wait()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def run(self, app: App) -> BaseException | None:
        """Call the app for this request, then apply the backstop; return its exception.

        R-HERR-10/11: if the response never started, or started but nothing
        reached the client yet, and the client is still there, the server
        sends ``error_status`` (500, or 413/408/400 after the server itself
        ended the request) and the request ends with reason
        ``server_error``. R-HERR-6: if bytes were already written, the only
        honest signal left is truncation. R-HERR-12: nothing is sent and
        nothing is logged when the client had already gone.
        """
        failure: BaseException | None = None
        try:
            await app(self.scope, self.receive, self.send)
        except Exception as exc:
            failure = exc
        connection = self.connection
        if connection.response_complete():
            if failure is not None:
                log.error("exception in application after its response", exc_info=failure)
            return failure
        reason = connection.disconnect_reason()
        wire = self.wire
        if not wire.head_written and (reason is None or self.error_status != 500):
            if failure is not None:
                log.error("exception in application", exc_info=failure)
            elif self.error_status == 500:
                log.error("application returned without completing a response")
            wire.error_response(self.error_status)
            connection.mark_started()
            self.disconnect(DisconnectReason.SERVER_ERROR)
        elif reason is None:
            if failure is not None:
                log.error("exception in application after the response started", exc_info=failure)
            else:
                log.error("application returned before finishing its response")
            wire.abort()
            self.disconnect(DisconnectReason.SERVER_ERROR)
        return failure

    # --- the application's side ----------------------------------------------------
    async def receive(self) -> dict[str, Any]:
        """The next ``http.request`` or ``http.disconnect`` event."""
        while True:
            if self.connection._ended:
                return dict(_DISCONNECT)
            if self._chunks or (self._body_complete and not self._final_delivered):
                chunks = self._chunks
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self._queued = 0
                more = not self._body_complete
                if not more:
                    self._final_delivered = True
                return {"type": "http.request", "body": data, "more": more}
            waiting_for_body = not self._body_complete
            if waiting_for_body and self._continue_pending:
                self._continue_pending = False
                await self.wire.send_continue()
            source = self.source
            if source is not None:
                await source.pull(self)
                continue
            # A client that stalls mid-body is timed out by the driver
            # (body_timeout), which ends the request and wakes this wait.
            await self.wait_changed()

    async def send(self, event: Event) -> None:
        """Validate and carry out one response event."""
        opened: IO[bytes] | None = None
        # ``type(...) is dict`` first: the ABC checks below cost more than the rest of a send.
        path = event.get("file") if type(event) is dict or isinstance(event, Mapping) else None
        if (
            path is not None
            and isinstance(path, (str, os.PathLike))
            and event.get("type") == "http.response.body"
        ):
            # Open first: a missing or unreadable file makes this send fail and
            # leaves the response where it was, so the app can still answer
            # (R-HFILE-6).
            opened = await anyio.to_thread.run_sync(open, os.fspath(path), "rb")
        before = self.machine.state
        try:
            self.machine.send(event)
        except BaseException:
            if opened is not None:
                opened.close()
            raise
        if self.connection._reason is not None:
            if opened is not None:
                opened.close()
            return  # the client is gone: sends are no-ops (R-HTTP-61)
        try:
            if opened is None and event["type"] == "http.response.body" and "fh" not in event:
                # The most common send, inline: two coroutine layers fewer per chunk.
                data = event.get("body") or b""
                final = not event.get("more")
                self._count(len(data), final)
                await self.wire.body(data, final)
                if final and self.machine.state == "done":
                    self._completed()
            else:
                await self._carry_out(event, opened)
        except EventError:
            # The wire refused the event (say, more bytes than content-length)
            # before writing anything: as far as the app is concerned it was
            # never sent, so it may correct itself.
            self.machine.state = before
            raise

    async def _carry_out(self, event: Event, opened: IO[bytes] | None) -> None:
        event_type = event["type"]
        if event_type == "http.response.body":
            if opened is not None:
                try:
                    await self._send_file(opened, event.get("offset"), event.get("length"))
                finally:
                    opened.close()
            elif event.get("fh") is not None:
                await self._send_fh(event)
            else:
                await self._body(event.get("body") or b"", not event.get("more"))
            if self.machine.state == "done":
                self._completed()
        elif event_type == "http.response.start":
            headers = list(event.get("headers") or ())
            declared = _declared_length(headers)
            # HEAD, 204 and 304 announce a length without sending the body.
            no_body = bodiless(self.scope.get("method") == "HEAD", event["status"])
            self._length_left = None if no_body else declared
            self.wire.start(event["status"], headers, bool(event.get("trailers")))
            self.connection.mark_started()
        elif event_type == "http.response.trailers":
            await self.wire.trailers(list(event.get("headers") or ()))
            self._completed()
        else:  # http.fullflush
            await self.wire.flush()

    def _count(self, size: int, final: bool) -> None:
        """Hold the body to the declared content-length, for every driver.

        More bytes than declared is the app's error and raises before anything
        is written; fewer, at the end, cannot be framed correctly, so the
        response is aborted (HTTP/1.1 closes, HTTP/2 resets) after the bytes.
        """
        left = self._length_left
        if left is None:
            return
        if size > left:
            raise EventError(
                "http.response.body",
                "body",
                f"is {size - left} bytes longer than the content-length",
            )
        left -= size
        self._length_left = left
        if final and left:
            log.error("response body ended %d bytes short of its content-length", left)
            self.wire.abort()

    async def _body(self, data: bytes, final: bool) -> None:
        self._count(len(data), final)
        await self.wire.body(data, final)

    def _completed(self) -> None:
        if self.connection._reason is None:
            self.connection.mark_complete()
            self._notify()
            if self.source is not None:
                self.source.wake()

    async def _send_fh(self, event: Event) -> None:
        fh = event["fh"]
        if getattr(fh, "closed", False):
            raise ValueError("http.response.body: 'fh' is closed (R-HFILE-7)")
        # The handle stays the app's: the server reads it but never closes it (R-HFILE-5).
        await self._send_file(fh, event.get("offset"), event.get("length"))

    async def _send_file(self, fh: IO[bytes], offset: int | None, length: int | None) -> None:
        """Stream a file body through the wire in chunks read off the event loop's thread.

        ``offset`` is absolute: when given (even 0) the handle is moved there
        first; when absent an ``fh`` is read from where it stands (decision on
        A-45). ``length`` ``None`` means to the end of the file; past the end,
        whatever exists is sent (R-HFILE-10/11). The body is final either way
        (R-HFILE-12). Reading stops early if the client goes away.
        """
        sendfile = getattr(self.wire, "sendfile", None)
        if sendfile is not None and (offset is not None or _seekable(fh)):
            start = offset if offset is not None else fh.tell()
            size = os.fstat(fh.fileno()).st_size if _has_fileno(fh) else None
            if size is not None:
                count = max(0, size - start)
                if length is not None:
                    count = min(count, length)
                self._count(count, False)
                if await sendfile(fh, start, count):
                    if self.connection._reason is None:
                        await self._body(b"", True)
                    return
                self._length_left = (
                    None if self._length_left is None else (self._length_left + count)
                )
        if offset is not None:
            await anyio.to_thread.run_sync(fh.seek, offset)
        remaining = length
        while remaining is None or remaining > 0:
            want = _FILE_CHUNK if remaining is None else min(_FILE_CHUNK, remaining)
            chunk = await anyio.to_thread.run_sync(fh.read, want)
            if not chunk:
                break
            if remaining is not None:
                remaining -= len(chunk)
            await self._body(chunk, False)
            if self.connection._reason is not None:
                return
        await self._body(b"", True)


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The response's content-length, validated; ``None`` when it has none."""
    length: int | None = None
    for name, value in headers:
        if name.lower() != b"content-length":
            continue
        if not value.isdigit() or len(value) > 18:
            raise EventError(
                "http.response.start", "headers", f"content-length {value!r} is not a valid length"
            )
        if length is not None and int(value) != length:
            raise EventError("http.response.start", "headers", "content-length is given twice")
        length = int(value)
    return length


def _has_fileno(fh: IO[bytes]) -> bool:
    try:
        fh.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def _seekable(fh: IO[bytes]) -> bool:
    try:
        return bool(fh.seekable())
    except (AttributeError, OSError, ValueError):
        return False
