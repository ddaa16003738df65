"""The WebSocket helper: accept, send and receive messages, close or deny.

State machine (one per helper): ``CONNECTING`` until ``accept``, then
``CONNECTED``, then ``CLOSED`` when either side closes; ``DENIED`` when the
handshake was refused. The first ``websocket.connect`` event is consumed
lazily by :meth:`WebSocket.accept` / :meth:`WebSocket.deny`, so a handler
can inspect headers and subprotocols before deciding.

Receiving a ``websocket.disconnect`` raises :class:`WebSocketDisconnect`
from the ``receive_*`` methods and ends the ``iter_*`` iterators quietly;
either way :attr:`close_code` and :attr:`close_reason` are recorded.
"""

from __future__ import annotations

import enum
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

from pagi.spec import EXT_WEBSOCKET_HTTP_RESPONSE, Receive, Scope, Send
from pagi.tools.exceptions import WebSocketDisconnect
from pagi.tools.headers import HeaderInput, MutableHeaders
from pagi.tools.request import HTTPConnection
from pagi.tools.response import PlainTextResponse, Response

__all__ = ["WebSocket", "WebSocketState"]


class WebSocketState(enum.Enum):
    """Where a :class:`WebSocket` is in its life."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"
    DENIED = "denied"


class WebSocket(HTTPConnection):
    """A ``websocket`` scope with ``receive`` and ``send``."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "websocket":
            raise TypeError(f"WebSocket needs a websocket scope, got {scope.get('type')!r}")
        super().__init__(scope, receive)
        self._send = send
        self.phase = WebSocketState.CONNECTING
        self._connect_seen = False
        self.close_code: int | None = None
        self.close_reason: str | None = None

    @property
    def disconnected(self) -> bool:
        """True once the WebSocket is closed (by the peer or by us) or was denied."""
        return self.phase in (WebSocketState.CLOSED, WebSocketState.DENIED)

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered, in its order of preference."""
        return list(self.scope.get("subprotocols") or [])

    @property
    def supports_denial(self) -> bool:
        """True when the server can send a custom HTTP response instead of accepting."""
        return EXT_WEBSOCKET_HTTP_RESPONSE in (self.scope.get("extensions") or {})

    async def _await_connect(self) -> None:
        if self._connect_seen:
            return
        event = await self._receive()
        if event["type"] == "websocket.disconnect":
            self._closed_by_peer(event)
            raise WebSocketDisconnect(self.close_code or 1006, self.close_reason or "")
        if event["type"] != "websocket.connect":
            raise RuntimeError(f"expected websocket.connect first, got {event['type']!r}")
        self._connect_seen = True

    async def accept(
        self, subprotocol: str | None = None, headers: HeaderInput | None = None
    ) -> None:
        """Complete the handshake, optionally choosing a subprotocol and adding headers."""
        if self.phase is not WebSocketState.CONNECTING:
            raise RuntimeError(f"cannot accept a WebSocket that is {self.phase.value}")
        await self._await_connect()
        event: dict[str, Any] = {"type": "websocket.accept"}
        if subprotocol is not None:
            event["subprotocol"] = subprotocol
        if headers is not None:
            event["headers"] = MutableHeaders(headers).raw
        await self._send(event)
        self.phase = WebSocketState.CONNECTED

    async def deny(
        self, response: Response | None = None, *, status: int = 403, body: str | None = None
    ) -> None:
        """Refuse the handshake with an HTTP response.

        Uses ``websocket.http.response.*`` when the server advertises it;
        otherwise a ``websocket.close`` before accept, which the server
        answers with a bare 403 (R-WSDENY-2). ``response`` wins over
        ``status``/``body``.
        """
        if self.phase is not WebSocketState.CONNECTING:
            raise RuntimeError(f"cannot deny a WebSocket that is {self.phase.value}")
        await self._await_connect()
        if response is None:
            response = PlainTextResponse(body if body is not None else "Forbidden", status)
        await response(self.scope, self._receive, self._send)
        self.phase = WebSocketState.DENIED

    async def receive(self) -> Mapping[str, Any]:
        """The next raw event (``websocket.receive`` or ``websocket.disconnect``)."""
        if self.phase is WebSocketState.CONNECTING:
            raise RuntimeError("accept() the WebSocket before receiving messages")
        if self.phase is not WebSocketState.CONNECTED:
            raise WebSocketDisconnect(self.close_code or 1000, self.close_reason or "")
        event = await self._receive()
        if event["type"] == "websocket.disconnect":
            self._closed_by_peer(event)
        return event

    def _closed_by_peer(self, event: Mapping[str, Any]) -> None:
        self.phase = WebSocketState.CLOSED
        self.close_code = int(event.get("code", 1005))
        self.close_reason = str(event.get("reason") or "")

    async def _message(self) -> str | bytes:
        event = await self.receive()
        if event["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(self.close_code or 1005, self.close_reason or "")
        text = event.get("text")
        return text if text is not None else bytes(event.get("bytes") or b"")

    async def receive_message(self) -> str | bytes:
        """The next message, ``str`` for text frames and ``bytes`` for binary ones."""
        return await self._message()

    async def receive_text(self) -> str:
        """The next message, which must be a text frame."""
        message = await self._message()
        if not isinstance(message, str):
            raise TypeError("expected a text message, got a binary one")
        return message

    async def receive_bytes(self) -> bytes:
        """The next message, which must be a binary frame."""
        message = await self._message()
        if not isinstance(message, bytes):
            raise TypeError("expected a binary message, got a text one")
        return message

    async def receive_json(self) -> Any:
        """The next message (text or binary) parsed as JSON."""
        return json.loads(await self._message())

    async def __aiter__(self) -> AsyncIterator[str | bytes]:
        """Yield messages until the peer disconnects."""
        try:
            while True:
                yield await self._message()
        except WebSocketDisconnect:
            return

    async def iter_text(self) -> AsyncIterator[str]:
        """Yield text messages until the peer disconnects."""
        async for message in self:
            if not isinstance(message, str):
                raise TypeError("expected a text message, got a binary one")
            yield message

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """Yield binary messages until the peer disconnects."""
        async for message in self:
            if not isinstance(message, bytes):
                raise TypeError("expected a binary message, got a text one")
            yield message

    async def iter_json(self) -> AsyncIterator[Any]:
        """Yield JSON messages until the peer disconnects."""
        async for message in self:
            yield json.loads(message)

    async def send_text(self, data: str) -> None:
        """Send a text frame."""
        await self._send_event({"type": "websocket.send", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary frame."""
        await self._send_event({"type": "websocket.send", "bytes": bytes(data)})

    async def send_json(self, data: Any, mode: Literal["text", "binary"] = "text") -> None:
        """Send ``data`` as compact JSON in a text (default) or binary frame."""
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        if mode == "binary":
            await self.send_bytes(text.encode("utf-8"))
        else:
            await self.send_text(text)

    async def _send_event(self, event: dict[str, Any]) -> None:
        if self.phase is WebSocketState.CONNECTING:
            raise RuntimeError("accept() the WebSocket before sending messages")
        if self.phase is not WebSocketState.CONNECTED:
            # The peer is gone: a send is a no-op, as the server's would be (R-WS-17).
            return
        await self._send(event)

    async def keepalive(self, interval: float, timeout: float | None = None) -> None:
        """Have the server ping every ``interval`` s (0 stops); close if no pong in ``timeout``."""
        event: dict[str, Any] = {"type": "websocket.keepalive", "interval": interval}
        if timeout is not None:
            event["timeout"] = timeout
        await self._send_event(event)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (idempotent). Before accept this refuses the handshake (403)."""
        if self.phase in (WebSocketState.CLOSED, WebSocketState.DENIED):
            return
        if self.phase is WebSocketState.CONNECTING:
            await self._await_connect()
        await self._send({"type": "websocket.close", "code": code, "reason": reason})
        self.phase = WebSocketState.CLOSED
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
