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
application parked on ``receive`` never hangs. Messages the application has
not collected are held in a queue of at most ``max_queue`` entries; the
driver learns from :meth:`feed_message` returning ``False`` that it is full
and closes with 1008 ``queue_overflow`` (R-WSP-4) instead of buffering
without bound.

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

from collections import deque
from typing import Any, Protocol

import anyio

from pagi.server.transport import TransportHandle
from pagi.spec import EXT_WEBSOCKET_HTTP_RESPONSE, Event, EventError, SendMachine

__all__ = ["WebSocketStream", "WebSocketWire", "parse_subprotocols"]

_FORBIDDEN_BODY = b"Forbidden\n"
_TEXT_PLAIN = (b"content-type", b"text/plain; charset=utf-8")


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
        "_max_queue",
        "_messages",
        "_responded",
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
        self._messages: deque[dict[str, Any]] = deque()
        self._connect_delivered = False
        self._disconnect: dict[str, Any] | None = None
        self._responded = False  # an HTTP response (403/denial) replaced the upgrade
        self._denial: tuple[int, list[tuple[bytes, bytes]], list[bytes]] | None = None
        self._changed: anyio.Event | None = None
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

    def feed_message(self, data: str | bytes) -> bool:
        """Queue one whole message; ``False`` when the queue is full (caller closes 1008)."""
        if self._disconnect is not None:
            return True
        if len(self._messages) >= self._max_queue:
            return False
        if isinstance(data, str):
            self._messages.append({"type": "websocket.receive", "text": data})
        else:
            self._messages.append({"type": "websocket.receive", "bytes": data})
        self._notify()
        return True

    def disconnected(self, code: int, reason: str) -> None:
        """The session ended; the first report wins (R-WS-30..34)."""
        if self._disconnect is None and not self._responded:
            self._disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
            self._notify()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    # --- the application's side ----------------------------------------------------
    async def receive(self) -> dict[str, Any]:
        """The next ``websocket.connect``, ``websocket.receive`` or ``websocket.disconnect``."""
        while True:
            if not self._connect_delivered:
                self._connect_delivered = True
                return {"type": "websocket.connect"}
            if self._messages:
                return self._messages.popleft()
            if self._disconnect is not None:
                return dict(self._disconnect)
            if self._responded:
                return {"type": "websocket.disconnect", "code": 1000, "reason": ""}
            changed = self._changed = anyio.Event()
            await changed.wait()

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
        await self.wire.respond(status, headers, body)
