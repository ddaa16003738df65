"""An in-memory SSE session: read events one by one, with real timeouts.

Nothing is buffered until the end: each ``sse.send`` the app makes is
available to the test as soon as it is sent, so endless streams are testable
(read what you need, then leave the ``async with``; the app gets
``sse.disconnect`` and is cancelled if it ignores it). Comments, keepalive
settings and the ``sse.close`` are all recorded (tools-digest 10, defect 10).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
from anyio.abc import TaskGroup

from pagi.spec import App, DisconnectReason, SendMachine
from pagi.tools.headers import Headers
from pagi.tools.sse import ServerSentEvent
from pagi.tools.testing.response import TestResponse
from pagi.tools.testing.session import AppSession

__all__ = ["SSEDeclined", "SSESession", "SSEStreamEnded"]


class SSEDeclined(Exception):
    """The app answered with a plain HTTP response instead of a stream."""

    def __init__(self, response: TestResponse) -> None:
        self.response = response
        super().__init__(f"SSE request declined with HTTP {response.status_code}")


class SSEStreamEnded(Exception):
    """The stream ended (``sse.close`` or the app returned) before the expected event."""


class SSESession(AppSession):
    """The client end of one SSE stream; use it through ``client.sse()``."""

    def __init__(
        self, app: App, scope: dict[str, Any], body: bytes, timeout: float, close_timeout: float
    ) -> None:
        super().__init__(app, scope, timeout)
        self.close_timeout = close_timeout
        self.machine = SendMachine("sse", scope.get("extensions"))
        self._body = body
        self._body_sent = False
        self._disconnected = anyio.Event()
        self._reason = DisconnectReason.CLIENT_CLOSED
        self.status_code = 0
        self.headers = Headers()
        #: Comment texts in arrival order (``sse.comment``).
        self.comments: list[str] = []
        #: The last ``sse.keepalive`` event the app sent.
        self.keepalive: Mapping[str, Any] | None = None
        #: True once the app sent ``sse.close``; ``close_reason`` is its reason.
        self.closed_by_app = False
        self.close_reason: str | None = None

    async def _receive(self) -> Mapping[str, Any]:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "sse.request", "body": self._body, "more": False}
        await self._disconnected.wait()
        return {"type": "sse.disconnect", "reason": self._reason}

    async def _send(self, event: Mapping[str, Any]) -> None:
        if not self.machine.send(event) or self._disconnected.is_set():
            return
        self._from_app_in.send_nowait(dict(event))

    async def start(self, group: TaskGroup) -> None:
        """Run the app and wait for ``sse.start`` (or a decline)."""
        group.start_soon(self._run_app)
        first = await self._next_event()
        if first is None:
            if self.exception is not None:
                raise self.exception
            raise SSEDeclined(TestResponse(500, Headers(), b"the app returned without starting"))
        if first["type"] == "sse.start":
            self.status_code = int(first.get("status") or 200)
            self.headers = Headers(raw=first.get("headers") or [])
            return
        body = await self._read_body()
        raise SSEDeclined(
            TestResponse(int(first["status"]), Headers(raw=first.get("headers") or []), body)
        )

    async def receive(self) -> Mapping[str, Any] | None:
        """The app's next raw event (send, comment, keepalive, close); ``None`` at the end."""
        event = await self._next_event()
        if event is None:
            if self.exception is not None:
                raise self.exception
            return None
        kind = event["type"]
        if kind == "sse.comment":
            self.comments.append(str(event.get("comment") or ""))
        elif kind == "sse.keepalive":
            self.keepalive = event
        elif kind == "sse.close":
            self.closed_by_app = True
            self.close_reason = event.get("reason")
        return event

    async def receive_event(self) -> ServerSentEvent:
        """The next ``sse.send`` as a :class:`ServerSentEvent` (comments are recorded, skipped).

        Raises :class:`SSEStreamEnded` at the end of the stream and
        ``TimeoutError`` if no event comes within the session timeout.
        """
        while True:
            event = await self.receive()
            if event is None or event["type"] == "sse.close":
                raise SSEStreamEnded("the stream ended before another event")
            if event["type"] == "sse.send":
                return ServerSentEvent(
                    data=str(event["data"]),
                    event=event.get("event"),
                    id=event.get("id"),
                    retry=event.get("retry"),
                )

    async def receive_json(self) -> Any:
        """The ``data`` of the next event, parsed as JSON."""
        return (await self.receive_event()).json()

    async def __aiter__(self) -> AsyncIterator[ServerSentEvent]:
        """Yield events until the stream ends."""
        while True:
            try:
                yield await self.receive_event()
            except SSEStreamEnded:
                return

    async def close(self, reason: str = DisconnectReason.CLIENT_CLOSED) -> None:
        """Disconnect the client and wait (briefly) for the app to finish."""
        self._reason = reason
        self._disconnected.set()
        await self._wait_app_done(self.close_timeout)
