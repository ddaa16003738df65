"""The ``websocket`` scope: receive queue and send state machine of one session.

Theory of operation
-------------------
A :class:`WebSocketStream` sits between a protocol driver and the
application, exactly as :class:`~pagi.server.streams.http.HTTPStream` does
for a request. It never sees a socket or a frame. The driver reports what
the peer did (:meth:`feed_message`, :meth:`disconnected`); the application
pulls ``websocket.connect`` / ``websocket.receive`` / ``websocket.disconnect``
from :meth:`receive` and pushes its events into :meth:`send`. Whatever must
reach the wire goes through the driver's :class:`WebSocketWire`: the
HTTP/1.1 driver answers ``accept`` with ``101`` and RFC 6455 frames; an
HTTP/2 driver (RFC 8441) would answer with ``200`` on a stream. The event
rules therefore exist once.

``send`` runs every event through ``pagi.spec``'s :class:`SendMachine`
first, so a malformed or out-of-order event raises, naming the field, before
anything is written (R-WS-14, R-WS-20). The machine also knows which events
the specification says to drop silently (R-WSDENY-6, R-WS-17).

Receiving follows the spec's order: the first ``receive`` returns
``websocket.connect`` (R-WS-10); then whole messages in arrival order;
finally one ``websocket.disconnect`` whose ``code``/``reason`` the driver
chose according to R-WS-30..34, returned again on every later call so an
application parked on ``receive`` never hangs.

Messages the application has not collected wait in a queue with two bounds:

* **Bytes, by backpressure.** The queue counts the payload of every message
  as it is held in memory, after decompression (:func:`payload_size`). Once
  it reaches ``max_queue_bytes`` :attr:`backlogged` turns true and the
  driver stops reading the socket, so the client's writes stall in TCP
  instead of the server's memory growing; :meth:`wait_room` returns when
  the application has taken the queue down to half the bound (or the
  session has ended, so the driver can read the peer's Close). The driver
  checks :attr:`backlogged` after each message it queues, so the queue never
  holds more than the bound plus one message (``max_ws_message_size``).
  The byte bound never closes the connection.
* **Messages, by closing.** At most ``max_queue`` entries: the driver learns
  from :meth:`feed_message` returning ``False`` that one more would not fit
  and closes with 1008 ``queue_overflow`` (R-WSP-4) instead of buffering
  without bound. This is the hard limit, for floods of small messages.

Decisions where the specification is silent (docs/spec, "Decisions"):

* A subprotocol in ``websocket.accept`` that the client did not offer makes
  ``send`` raise (A-28): RFC 6455 requires the client to fail such a
  handshake, so the mistake is better caught in the app.
* After a server-side close (app ``websocket.close``, shutdown, a protocol
  violation) the disconnect is reported at once with the code the server
  sent (A-29); the closing handshake finishes in the background.
* After a denial or a 403 no disconnect is queued (R-WSDENY-4), but a
  ``receive`` that comes anyway returns ``websocket.disconnect`` with code
  1000 rather than hanging.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Protocol

from pagi.server.transport import TransportHandle
from pagi.server.waits import Wakeup
from pagi.spec import EXT_WEBSOCKET_HTTP_RESPONSE, App, Event, EventError, SendMachine

__all__ = ["WebSocketStream", "WebSocketWire", "parse_subprotocols", "payload_size"]

log = logging.getLogger("pagi.server")

_FORBIDDEN_BODY = b"Forbidden\n"
_TEXT_PLAIN = (b"content-type", b"text/plain; charset=utf-8")
_EMPTY_STR_SIZE = sys.getsizeof("")
_TAKEN: tuple[dict[str, Any], int] = ({}, 0)  # a queue slot whose message was delivered


def payload_size(data: str | bytes) -> int:
    """Bytes a queued message's payload holds in memory, for the queue's byte bound.

    A binary message counts its length. A text message counts the storage of
    its ``str``: one byte per character when it is ASCII (its UTF-8 length),
    otherwise 1, 2 or 4 bytes per character, whichever the widest character
    needs (plus a few bytes of header), since that is what memory holds.
    """
    if isinstance(data, str):
        return max(len(data), sys.getsizeof(data) - _EMPTY_STR_SIZE)
    return len(data)


class WebSocketWire(Protocol):
    """What a protocol driver offers a WebSocket stream."""

    async def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        """Complete the opening handshake (101 on HTTP/1.1, 200 on HTTP/2)."""

    async def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """Answer the handshake with a plain HTTP response instead, then close."""

    async def send_message(self, data: str | bytes) -> None:
        """Send one whole text or binary message."""

    async def close(self, code: int, reason: str) -> None:
        """Start the closing handshake with ``code`` and ``reason``."""

    def keepalive(self, interval: float, timeout: float | None) -> None:
        """Ping every ``interval`` seconds (0 stops); abort if no pong in ``timeout``."""

    def end_after_return(self, failed: bool) -> None:
        """The app returned while the session was open: start the server's close."""


def parse_subprotocols(headers: list[tuple[bytes, bytes]]) -> list[str]:
    """``Sec-WebSocket-Protocol`` values split on commas and trimmed (R-WS-2).

    Several header lines are read in order, as if joined by commas (A-27).
    """
    offered: list[str] = []
    for name, value in headers:
        if name == b"sec-websocket-protocol":
            for item in value.decode("latin-1").split(","):
                item = item.strip()
                if item:
                    offered.append(item)
    return offered


class WebSocketStream:
    """One WebSocket session, as the application sees it."""

    __slots__ = (
        "_changed",
        "_connect_delivered",
        "_denial",
        "_disconnect",
        "_head",
        "_max_queue",
        "_max_queue_bytes",
        "_messages",
        "_queued_bytes",
        "_responded",
        "_resume_at",
        "_room",
        "machine",
        "scope",
        "status",
        "wire",
    )

    def __init__(
        self,
        scope: dict[str, Any],
        wire: WebSocketWire,
        *,
        transport: TransportHandle | None,
        max_queue: int,
        max_queue_bytes: int,
    ) -> None:
        scope.pop("pagi.connection", None)  # http scopes only (R-CONN-17)
        scope.pop("method", None)
        scope["subprotocols"] = parse_subprotocols(scope["headers"])
        scope["extensions"][EXT_WEBSOCKET_HTTP_RESPONSE] = {}  # R-WSDENY-1
        if transport is not None:
            scope["pagi.transport"] = transport
        self.scope = scope
        self.wire = wire
        self.machine = SendMachine("websocket", scope["extensions"])
        self._max_queue = max_queue
        self._max_queue_bytes = max_queue_bytes
        self._resume_at = max_queue_bytes // 2
        # Each entry is an event and its payload_size(); the sizes add up to _queued_bytes.
        # A list read from _head on (not a deque: an empty deque holds ~600 bytes, and
        # most sessions are idle with nothing queued); emptied whenever it is drained.
        self._messages: list[tuple[dict[str, Any], int]] = []
        self._head = 0
        self._queued_bytes = 0
        self._room: Wakeup | None = None
        self._connect_delivered = False
        self._disconnect: dict[str, Any] | None = None
        self._responded = False  # an HTTP response (403/denial) replaced the upgrade
        self._denial: tuple[int, list[tuple[bytes, bytes]], list[bytes]] | None = None
        self._changed: Wakeup | None = None
        #: Status for the access log: 101 once accepted, else the HTTP status sent.
        self.status = 0

    # --- the driver's side ---------------------------------------------------------
    @property
    def ended(self) -> bool:
        """True once the session is over for the app (disconnect reported or responded)."""
        return self._disconnect is not None or self._responded

    @property
    def accepted(self) -> bool:
        return self.status == 101

    @property
    def queued_bytes(self) -> int:
        """Payload bytes waiting for the application (see :func:`payload_size`)."""
        return self._queued_bytes

    @property
    def backlogged(self) -> bool:
        """True while the driver must not read: the byte bound is reached, the session live."""
        return self._queued_bytes >= self._max_queue_bytes and not self.ended

    async def wait_room(self) -> None:
        """Wait until the app has taken the queue down to half the byte bound, or the end."""
        while self._queued_bytes > self._resume_at and not self.ended:
            room = self._room = Wakeup()
            await room.wait()

    def feed_message(self, data: str | bytes) -> bool:
        """Queue one whole message; ``False`` when the count is full (caller closes 1008).

        The byte bound is the caller's to keep, by reading no more while
        :attr:`backlogged`; this method queues whatever it is given.
        """
        if self._disconnect is not None:
            return True
        if len(self._messages) - self._head >= self._max_queue:
            return False
        size = payload_size(data)
        if isinstance(data, str):
            self._messages.append(({"type": "websocket.receive", "text": data}, size))
        else:
            self._messages.append(({"type": "websocket.receive", "bytes": data}, size))
        self._queued_bytes += size
        self._notify()
        return True

    def disconnected(self, code: int, reason: str) -> None:
        """The session ended; the first report wins (R-WS-30..34)."""
        if self._disconnect is None and not self._responded:
            self._disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
            self._notify()
            self._wake_reader()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def _wake_reader(self) -> None:
        if self._room is not None:
            self._room.set()
            self._room = None

    # --- the application's side ----------------------------------------------------
    async def receive(self) -> dict[str, Any]:
        """The next ``websocket.connect``, ``websocket.receive`` or ``websocket.disconnect``."""
        while True:
            if not self._connect_delivered:
                self._connect_delivered = True
                return {"type": "websocket.connect"}
            if self._head < len(self._messages):
                event, size = self._take()
                self._queued_bytes -= size
                if self._queued_bytes <= self._resume_at:
                    self._wake_reader()
                return event
            if self._disconnect is not None:
                return dict(self._disconnect)
            if self._responded:
                return {"type": "websocket.disconnect", "code": 1000, "reason": ""}
            changed = self._changed = Wakeup()
            await changed.wait()

    def _take(self) -> tuple[dict[str, Any], int]:
        messages = self._messages
        head = self._head
        entry = messages[head]
        messages[head] = _TAKEN  # the app has it now: the queue must not keep it alive
        head += 1
        if head == len(messages):
            messages.clear()  # frees the list's storage too
            head = 0
        elif head >= 64 and head * 2 >= len(messages):
            del messages[:head]  # an app that never quite catches up: drop what it read
            head = 0
        self._head = head
        return entry

    async def send(self, event: Event) -> None:
        """Validate and carry out one event."""
        before = self.machine.state
        if not self.machine.send(event):
            return  # the spec says to drop it (R-WSDENY-6, R-WS-17)
        event_type = event["type"]
        if event_type == "websocket.accept":
            subprotocol = event.get("subprotocol")
            if subprotocol is not None and subprotocol not in self.scope["subprotocols"]:
                self.machine.state = before
                offered = ", ".join(self.scope["subprotocols"]) or "none"
                raise EventError(
                    event_type,
                    "subprotocol",
                    f"{subprotocol!r} was not offered by the client (offered: {offered})",
                )
        if self._disconnect is not None or self._responded:
            return  # the peer is gone or never got a WebSocket: a no-op (R-WS-17)
        if event_type == "websocket.send":
            text = event.get("text")
            try:
                await self.wire.send_message(text if text is not None else bytes(event["bytes"]))
            except UnicodeEncodeError:
                raise EventError(event_type, "text", "cannot be encoded as UTF-8") from None
        elif event_type == "websocket.accept":
            self.status = 101
            await self.wire.accept(event.get("subprotocol"), list(event.get("headers") or ()))
        elif event_type == "websocket.close":
            if before == "handshake":
                await self._respond(403, [_TEXT_PLAIN], _FORBIDDEN_BODY)  # R-WS-12
            else:
                await self.wire.close(event.get("code", 1000), event.get("reason") or "")
        elif event_type == "websocket.keepalive":
            timeout = event.get("timeout")
            self.wire.keepalive(float(event["interval"]), None if not timeout else float(timeout))
        elif event_type == "websocket.http.response.start":
            self._denial = (event["status"], list(event.get("headers") or ()), [])
        else:  # websocket.http.response.body
            assert self._denial is not None
            self._denial[2].append(bytes(event.get("body") or b""))
            if not event.get("more"):
                await self.finish_denial()

    async def run(self, app: App) -> None:
        """Run the application for this session, with the spec's backstops.

        An app that returns (or raises) without answering the handshake gets
        403 (500 if it raised) sent for it (R-WS-21); a half-sent denial is
        sent with what was buffered; an open session is closed by the server
        with 1000 (1011 if the app raised, R-WS-22).
        """
        failure: BaseException | None = None
        try:
            await app(self.scope, self.receive, self.send)
        except Exception as exc:
            failure = exc
        state = self.machine.state
        if failure is not None:
            log.error("exception in WebSocket application", exc_info=failure)
        if state == "handshake":
            if failure is None:
                log.warning("WebSocket application returned without accepting; sending 403")
            await self.reject(500 if failure is not None else 403)
        elif state == "denying":
            await self.finish_denial()
        elif state == "open":
            self.wire.end_after_return(failure is not None)

    async def finish_denial(self) -> None:
        """Send the buffered denial response (also the backstop for ``more=1`` left open)."""
        if self._denial is not None and not self._responded:
            status, headers, parts = self._denial
            await self._respond(status, headers, b"".join(parts))

    async def reject(self, status: int = 403) -> None:
        """Backstop: refuse the handshake because the app did not answer it."""
        if not self._responded and self._disconnect is None:
            body = _FORBIDDEN_BODY if status == 403 else b"Internal Server Error\n"
            await self._respond(status, [_TEXT_PLAIN], body)

    async def _respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self._responded = True
        self.status = status
        self._notify()
        self._wake_reader()
        await self.wire.respond(status, headers, body)
