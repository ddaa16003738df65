"""An in-memory WebSocket session against an app.

The session plays the server: the app's first ``receive`` is
``websocket.connect``; what the app sends goes through
:class:`pagi.spec.SendMachine` and lands in a queue the test reads with
real timeouts. A refused handshake (``websocket.close`` before accept, or a
denial response) raises :class:`WebSocketDenied` carrying the HTTP response
the client would have seen, so denials are testable too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import anyio
from anyio.abc import TaskGroup

from pagi.spec import App, SendMachine
from pagi.tools.exceptions import WebSocketDisconnect
from pagi.tools.headers import Headers
from pagi.tools.testing.response import TestResponse
from pagi.tools.testing.session import AppSession

__all__ = ["WebSocketDenied", "WebSocketSession"]


class WebSocketDenied(Exception):
    """The app refused the handshake; ``response`` is what the client got (403 by default)."""

    def __init__(self, response: TestResponse) -> None:
        self.response = response
        super().__init__(f"WebSocket handshake refused with HTTP {response.status_code}")


class WebSocketSession(AppSession):
    """The client end of one WebSocket; use it through ``client.websocket()``."""

    def __init__(
        self, app: App, scope: dict[str, Any], timeout: float, close_timeout: float
    ) -> None:
        super().__init__(app, scope, timeout)
        self.close_timeout = close_timeout
        self.machine = SendMachine("websocket", scope.get("extensions"))
        self._to_app_in, self._to_app_out = anyio.create_memory_object_stream[Mapping[str, Any]](
            math.inf
        )
        self._client_closed = False
        self._disconnect_event: Mapping[str, Any] | None = None
        #: The subprotocol and extra headers the app chose in ``websocket.accept``.
        self.subprotocol: str | None = None
        self.accept_headers = Headers()
        self.close_code: int | None = None
        self.close_reason: str | None = None
        #: The last ``websocket.keepalive`` settings the app asked for.
        self.keepalive: Mapping[str, Any] | None = None

    # -- the server side the app sees ---------------------------------------

    async def _receive(self) -> Mapping[str, Any]:
        if self._disconnect_event is not None:
            return self._disconnect_event
        event = await self._to_app_out.receive()
        if event["type"] == "websocket.disconnect":
            self._disconnect_event = event
        return event

    async def _send(self, event: Mapping[str, Any]) -> None:
        if not self.machine.send(event) or self._client_closed:
            return
        if event["type"] == "websocket.keepalive":
            self.keepalive = dict(event)
            return
        if event["type"] == "websocket.close" and self.machine.state == "closed":
            # The closing handshake completes at once in memory: the app's next
            # receive sees the disconnect with its own code.
            code = int(event.get("code") or 1000)
            self._to_app_in.send_nowait(
                {"type": "websocket.disconnect", "code": code, "reason": event.get("reason") or ""}
            )
        self._from_app_in.send_nowait(dict(event))

    # -- the client side the test drives -------------------------------------

    async def start(self, group: TaskGroup) -> None:
        """Run the app and wait for its answer to ``websocket.connect``."""
        group.start_soon(self._run_app)
        self._to_app_in.send_nowait({"type": "websocket.connect"})
        first = await self._next_event()
        if first is None:
            self._raise_app_error()
            raise WebSocketDenied(self._denial(403, [], b""))
        if first["type"] == "websocket.accept":
            self.subprotocol = first.get("subprotocol")
            self.accept_headers = Headers(raw=first.get("headers") or [])
            return
        if first["type"] == "websocket.close":
            raise WebSocketDenied(
                self._denial(403, [(b"content-type", b"text/plain")], b"Forbidden")
            )
        # websocket.http.response.start: collect the denial body.
        body = await self._read_body()
        raise WebSocketDenied(self._denial(int(first["status"]), first.get("headers") or [], body))

    def _denial(self, status: int, headers: Any, body: bytes) -> TestResponse:
        return TestResponse(status, Headers(raw=headers), body, exception=self.exception)

    def _raise_app_error(self) -> None:
        if self.exception is not None:
            raise self.exception

    async def send_text(self, data: str) -> None:
        """Send a text message to the app."""
        self._to_app_in.send_nowait({"type": "websocket.receive", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary message to the app."""
        self._to_app_in.send_nowait({"type": "websocket.receive", "bytes": bytes(data)})

    async def send_json(self, data: Any) -> None:
        """Send ``data`` as a JSON text message."""
        await self.send_text(json.dumps(data))

    async def receive(self) -> Mapping[str, Any]:
        """The app's next ``websocket.send``; raises :class:`WebSocketDisconnect` on close.

        Raises the app's exception if it crashed, and ``TimeoutError`` when
        nothing arrives within the session timeout.
        """
        event = await self._next_event()
        if event is None:
            self._raise_app_error()
            raise WebSocketDisconnect(self.close_code or 1000, self.close_reason or "")
        if event["type"] == "websocket.close":
            self.close_code = int(event.get("code") or 1000)
            self.close_reason = str(event.get("reason") or "")
            raise WebSocketDisconnect(self.close_code, self.close_reason)
        return event

    async def receive_text(self) -> str:
        """The next message, which must be text."""
        event = await self.receive()
        if event.get("text") is None:
            raise TypeError(f"expected a text message, got {event!r}")
        return str(event["text"])

    async def receive_bytes(self) -> bytes:
        """The next message, which must be binary."""
        event = await self.receive()
        if event.get("bytes") is None:
            raise TypeError(f"expected a binary message, got {event!r}")
        return bytes(event["bytes"])

    async def receive_json(self) -> Any:
        """The next message parsed as JSON."""
        event = await self.receive()
        return json.loads(event["text"] if event.get("text") is not None else event["bytes"])

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close from the client side and wait (briefly) for the app to finish."""
        if not self._client_closed and self._disconnect_event is None:
            self._to_app_in.send_nowait(
                {"type": "websocket.disconnect", "code": code, "reason": reason}
            )
        self._client_closed = True
        await self._wait_app_done(self.close_timeout)

    def dispose(self) -> None:
        """Close the in-memory queues (the session is over)."""
        super().dispose()
        self._to_app_in.close()
        self._to_app_out.close()
