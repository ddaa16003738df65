"""The ``sse`` scope: ``sse.*`` events to ``text/event-stream`` bytes.

Theory of operation
-------------------
An SSE stream is an HTTP request whose response is an endless body, so
:class:`SSEStream` is built on the request's
:class:`~pagi.server.streams.http.HTTPStream`: the request body, the
disconnect bookkeeping and the driver's
:class:`~pagi.server.streams.http.ResponseWire` (chunked framing on
HTTP/1.1, DATA frames on HTTP/2) are reused; what this module adds is the
event language. It never sees a socket.

* ``receive`` turns ``http.request`` into ``sse.request`` (R-SSE-10) and
  the end of the exchange into ``sse.disconnect`` with the reason the
  driver or the server recorded: ``client_closed``, ``write_error``,
  ``write_timeout``, ``server_shutdown``, ``idle_timeout`` (R-SSE-11). It
  never hangs once the stream is over: after ``sse.close`` it returns
  ``sse.disconnect`` with the close's ``reason`` (or ``x-closed-by-app``),
  after a decline with ``x-declined`` (decisions on A-35); nothing is
  queued for the app in those two cases (R-SSE-57, R-SSE-62).
* ``send`` checks every event with ``pagi.spec``'s :class:`SendMachine`
  first, which enforces first-send-wins, the post-close rule and field
  validation (R-SSE-20, R-SSE-31/32/35, R-SSE-52/53/63). A legal event sent
  after the client left is a no-op (R-SSE-12).
* ``sse.start`` adds ``content-type: text/event-stream``, ``cache-control:
  no-cache`` (and, through the HTTP/1.1 driver, ``connection: keep-alive``
  and chunked framing) and writes the head at once so the client's
  ``EventSource`` opens (R-SSE-21/22).
* ``sse.send`` splits ``data`` on CRLF, CR and LF into one ``data:`` line
  each (A-32: the three line ends of the SSE standard); ``sse.comment`` and
  keepalive comments get ``:`` before every line, so a newline in a comment
  cannot start an event (R-SSE-40/41, A-33/34).
* A timer task sends keepalive comments (last setting wins, 0 stops,
  skipped while bytes are still queued) and applies ``sse_idle_timeout``
  (counted from the app's last ``sse.send``/``sse.comment``).
* The server can end a stream itself (graceful drain, idle timeout): the
  app sees ``sse.disconnect``, its later sends are no-ops, and the chunked
  terminator is written.
* Backstop when the app returns: a started stream is ended normally, a
  half-sent decline is sent with what was buffered, and a stream that never
  started gets ``500`` (``503`` during shutdown) if nothing was written.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import anyio

from pagi.server.streams.http import HTTPStream
from pagi.spec import App, DisconnectReason, Event, EventError, SendMachine

if TYPE_CHECKING:
    from pagi.server.context import LiveConnection, ServerContext

__all__ = ["SSEStream", "format_comment", "format_event", "serve_sse"]

log = logging.getLogger("pagi.server")

_LINE_END = re.compile(r"\r\n|\r|\n")
#: Reasons under which the server ended the stream itself and the socket is still usable.
_SERVER_ENDED = frozenset({DisconnectReason.SERVER_SHUTDOWN, DisconnectReason.IDLE_TIMEOUT})
_END_FLUSH_LIMIT = 5.0  # seconds the end of a stream may take to flush
CLOSED_BY_APP = "x-closed-by-app"
DECLINED = "x-declined"


def format_event(
    data: str, event: str | None = None, id: str | None = None, retry: int | None = None
) -> bytes:
    """One ``text/event-stream`` dispatch (R-SSE-30..34)."""
    parts = []
    if event is not None:
        parts.append(f"event: {event}\n")
    if id is not None:
        parts.append(f"id: {id}\n")
    if retry is not None:
        parts.append(f"retry: {retry}\n")
    parts.extend(f"data: {line}\n" for line in _LINE_END.split(data))
    parts.append("\n")
    return "".join(parts).encode("utf-8")


def format_comment(comment: str) -> bytes:
    """A comment block: every line starts with ``:`` (R-SSE-40/41)."""
    lines = (line if line.startswith(":") else ":" + line for line in _LINE_END.split(comment))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


class SSEStream:
    """One SSE exchange, as the application sees it."""

    __slots__ = (
        "_decline",
        "_keepalive",
        "_keepalive_comment",
        "_last_keepalive",
        "_last_send",
        "_terminated",
        "_wakeup",
        "idle_timeout",
        "machine",
        "request",
        "scope",
        "started",
    )

    def __init__(self, request: HTTPStream, *, idle_timeout: float = 0.0) -> None:
        scope = request.scope
        scope.pop("pagi.connection", None)  # http scopes only (R-CONN-17)
        scope["extensions"].pop("fullflush", None)  # an sse scope carries sse.* only (R-SSE-65)
        self.scope = scope
        self.request = request
        self.machine = SendMachine("sse", scope["extensions"])
        self.idle_timeout = idle_timeout
        self.started = False
        self._terminated = False  # the end of the response is on the wire
        self._decline: tuple[int, list[tuple[bytes, bytes]], list[bytes]] | None = None
        self._keepalive = 0.0
        self._keepalive_comment = b":\n\n"
        self._last_keepalive = 0.0
        self._last_send = 0.0
        self._wakeup: anyio.Event | None = None

    @property
    def end_reason(self) -> str | None:
        """Why the stream ended (client gone, server, app), or ``None`` while it runs."""
        return self.request.connection.disconnect_reason()

    # --- the application's side ----------------------------------------------------
    async def receive(self) -> dict[str, Any]:
        """The next ``sse.request`` or ``sse.disconnect`` event."""
        event = await self.request.receive()
        if event["type"] == "http.request":
            return {"type": "sse.request", "body": event["body"], "more": event["more"]}
        reason = self.end_reason or DisconnectReason.CLIENT_CLOSED
        return {"type": "sse.disconnect", "reason": reason}

    async def send(self, event: Event) -> None:
        """Validate and carry out one event."""
        if not self.machine.send(event):
            return  # a repeated sse.close (R-SSE-53)
        if self.end_reason is not None:
            return  # the stream is over: a no-op (R-SSE-12)
        event_type = event["type"]
        wire = self.request.wire
        try:
            if event_type == "sse.send":
                payload = format_event(
                    event["data"], event.get("event"), event.get("id"), event.get("retry")
                )
            elif event_type in ("sse.comment", "sse.keepalive"):
                payload = format_comment(event.get("comment") or "")
            else:
                payload = b""
        except UnicodeEncodeError:
            raise EventError(event_type, "data", "cannot be encoded as UTF-8") from None
        if event_type in ("sse.send", "sse.comment"):
            if self.idle_timeout:  # the clock is read only when something uses it
                self._last_send = anyio.current_time()
            await wire.body(payload, False)  # blocks at the high-water mark (R-FLOW-12)
        elif event_type == "sse.start":
            self._start(event)
            await wire.flush()
        elif event_type == "sse.keepalive":
            self._keepalive = float(event["interval"])
            self._keepalive_comment = payload
            self._last_keepalive = anyio.current_time()
            self._wake()
        elif event_type == "sse.close":
            reason = event.get("reason") or CLOSED_BY_APP  # server-side only (R-SSE-54)
            await self._terminate()
            self.request.disconnect(reason)
        elif event_type == "sse.http.response.start":
            self._decline = (event["status"], list(event.get("headers") or ()), [])
        else:  # sse.http.response.body
            assert self._decline is not None
            self._decline[2].append(bytes(event.get("body") or b""))
            if not event.get("more"):
                await self._send_decline()

    def _start(self, event: Event) -> None:
        headers = [
            (bytes(n).lower(), bytes(v))
            for n, v in (event.get("headers") or ())
            if bytes(n).lower() not in (b"content-length", b"transfer-encoding")
        ]
        names = {n for n, _ in headers}
        if b"content-type" not in names:
            headers.append((b"content-type", b"text/event-stream"))
        if b"cache-control" not in names:
            headers.append((b"cache-control", b"no-cache"))
        self.request.wire.start(event.get("status", 200), headers, False)
        self.started = True
        now = anyio.current_time()
        self._last_send = self._last_keepalive = now
        self._wake()

    async def _send_decline(self) -> None:
        assert self._decline is not None
        status, headers, parts = self._decline
        self._decline = None
        body = b"".join(parts)
        fields = [
            (bytes(n).lower(), bytes(v))
            for n, v in headers
            if bytes(n).lower() not in (b"content-length", b"transfer-encoding", b"connection")
        ]
        fields.append((b"content-length", b"%d" % len(body)))
        fields.append((b"connection", b"close"))  # R-SSE-62: then close
        wire = self.request.wire
        wire.start(status, fields, False)
        self._terminated = True
        await wire.body(body, True)
        self.request.disconnect(DECLINED)

    async def _terminate(self) -> None:
        if self.started and not self._terminated:
            self._terminated = True
            # Shielded: the timer task writing it may be cancelled when the app
            # returns, and a cancelled flush would lose the terminator.
            with anyio.CancelScope(shield=True), anyio.move_on_after(_END_FLUSH_LIMIT):
                await self.request.wire.body(b"", True)  # chunked terminator / END_STREAM

    # --- the server's side -----------------------------------------------------------
    def end(self, reason: str) -> None:
        """The server ends the stream (drain, idle): the app sees ``sse.disconnect``."""
        if self.end_reason is None:
            self.request.disconnect(reason)
            self._wake()  # the timer task writes the terminator

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    async def timers(self) -> None:
        """Keepalive comments, the idle deadline and the terminator after :meth:`end`."""
        while True:
            reason = self.end_reason
            if reason is not None:
                if reason in _SERVER_ENDED:
                    await self._terminate()
                return
            now = anyio.current_time()
            deadline = float("inf")
            if self.started:
                if self._keepalive:
                    due = self._last_keepalive + self._keepalive
                    if now >= due:
                        self._last_keepalive = now
                        transport = self.scope.get("pagi.transport")
                        if transport is None or not transport.buffered_amount():
                            await self.request.wire.body(self._keepalive_comment, False)
                        continue
                    deadline = due
                if self.idle_timeout:
                    due = self._last_send + self.idle_timeout
                    if now >= due:
                        self.end(DisconnectReason.IDLE_TIMEOUT)
                        continue
                    deadline = min(deadline, due)
            wakeup = self._wakeup = anyio.Event()
            with anyio.move_on_after(deadline - now if deadline != float("inf") else None):
                await wakeup.wait()
            self._wakeup = None

    async def run(self, app: App) -> None:
        """Call the app with the timers running, then apply the backstop."""
        failure: BaseException | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.timers)
            try:
                await app(self.scope, self.receive, self.send)
            except Exception as exc:
                failure = exc
            tg.cancel_scope.cancel()
        if failure is not None:
            log.error("exception in SSE application", exc_info=failure)
        reason = self.end_reason
        if reason is not None and reason not in _SERVER_ENDED:
            return  # the client is gone, or the app closed or declined
        if self._decline is not None:
            await self._send_decline()  # more=1 was never followed up
        elif self.started:
            await self._terminate()  # R-SSE-50: returning ends the stream
        elif not self.request.wire.head_written:
            if failure is None and reason is None:
                log.error("SSE application returned without sse.start or a decline")
            self.request.wire.error_response(503 if reason is not None else 500)
        if self.end_reason is None:
            self.request.disconnect(CLOSED_BY_APP)


class _StreamInRegistry:
    """Stands in the server's connection registry for a running SSE stream.

    A graceful drain then reaches the stream (``server_shutdown``), while
    deadlines and forced closes still go to the connection carrying it.
    """

    __slots__ = ("conn", "sse")

    def __init__(self, sse: SSEStream, conn: LiveConnection | None) -> None:
        self.sse = sse
        self.conn = conn

    def begin_drain(self) -> None:
        self.sse.end(DisconnectReason.SERVER_SHUTDOWN)

    def force_close(self) -> None:
        self.sse.end(DisconnectReason.SERVER_SHUTDOWN)
        if self.conn is not None:
            self.conn.force_close()

    def check_timeouts(self, now: float) -> None:
        if self.conn is not None:
            self.conn.check_timeouts(now)


async def serve_sse(
    ctx: ServerContext, request: HTTPStream, *, conn: LiveConnection | None = None
) -> None:
    """Run the app for one SSE request (any driver).

    ``conn`` is the connection that carries only this stream (HTTP/1.x): the
    stream stands in for it in the registry while it runs, so the socket
    counts once toward ``max_connections``.
    """
    sse = SSEStream(request, idle_timeout=ctx.config.sse_idle_timeout)
    entry = _StreamInRegistry(sse, conn)
    if conn is not None:
        ctx.connections.discard(conn)  # one entry per socket, for max_connections
    ctx.connections.add(entry)
    if ctx.draining:
        entry.begin_drain()
    try:
        with ctx.track_session("sse"):
            await sse.run(ctx.app)
    finally:
        ctx.connections.discard(entry)
        if conn is not None:
            ctx.connections.add(conn)
