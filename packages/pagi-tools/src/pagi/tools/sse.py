"""The Server-Sent Events helper for ``sse`` scopes.

The server owns the wire format (R-SSE-30..43); this helper sends the
``sse.*`` events and keeps the state the spec's machine implies:
``PENDING`` -> ``STARTED`` -> ``CLOSED``, or ``PENDING`` -> ``DECLINED``.
Every send starts the stream first if needed.

Disconnects arrive as ``sse.disconnect`` on ``receive``. :meth:`SSE.every`
and :meth:`SSE.stream` run the producer next to a watcher task that reads
``receive``; when the client leaves, the watcher cancels the producer, so a
periodic sender never outlives its client.

One rule for what an item means, in :meth:`SSE.send`, :meth:`SSE.send_event`,
:meth:`SSE.stream` and :meth:`SSE.every` alike: a :class:`ServerSentEvent`,
or a mapping whose keys are all event fields (``data``, ``event``, ``id``,
``retry``) and include ``data``, is an event with those fields; anything
else is the data -- a ``str`` as it is, any other value as compact JSON.
(To send a JSON object shaped like ``{"data": ...}``, wrap it:
``send(ServerSentEvent(json.dumps(obj)))``.) Keyword fields given to
``send`` override the item's.
"""

from __future__ import annotations

import enum
import inspect
import json
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import anyio

from pagi.spec import Receive, Scope, Send
from pagi.tools.headers import HeaderInput, MutableHeaders
from pagi.tools.request import HTTPConnection
from pagi.tools.response import PlainTextResponse, Response

__all__ = ["SSE", "SSEState", "ServerSentEvent"]


@dataclass(frozen=True)
class ServerSentEvent:
    """One event: ``data`` plus the optional ``event`` name, ``id`` and ``retry`` (ms)."""

    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        """``data`` parsed as JSON."""
        return json.loads(self.data)


#: What :meth:`SSE.stream` and :meth:`SSE.every` accept per item.
EventLike = ServerSentEvent | Mapping[str, Any] | str | Any


_FIELDS = frozenset({"data", "event", "id", "retry"})


def _is_event_fields(value: Any) -> bool:
    return isinstance(value, Mapping) and "data" in value and set(value) <= _FIELDS


class SSEState(enum.Enum):
    """Where an :class:`SSE` stream is in its life."""

    PENDING = "pending"
    STARTED = "started"
    CLOSED = "closed"
    DECLINED = "declined"


class SSE(HTTPConnection):
    """An ``sse`` scope with ``receive`` and ``send``."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "sse":
            raise TypeError(f"SSE needs an sse scope, got {scope.get('type')!r}")
        super().__init__(scope, receive)
        self._send = send
        self.phase = SSEState.PENDING
        self._disconnect_reason: str | None = None
        self._body_done = False

    @property
    def method(self) -> str:
        """The request method (SSE is detected on any method, R-SSE-2)."""
        return str(self.scope.get("method", "GET"))

    @property
    def last_event_id(self) -> str | None:
        """The ``Last-Event-ID`` a reconnecting client sent, for resuming."""
        return self.headers.get("last-event-id")

    @property
    def disconnect_reason(self) -> str | None:
        """The ``sse.disconnect`` reason once the client has gone."""
        return self._disconnect_reason

    @property
    def is_connected(self) -> bool:
        """True while the stream is open and the client has not left."""
        return self.phase is SSEState.STARTED and self._disconnect_reason is None

    @property
    def disconnected(self) -> bool:
        """True once an ``sse.disconnect`` was seen (synchronous)."""
        return self._disconnect_reason is not None

    async def body(self) -> bytes:
        """The request body (``sse.request`` events); empty for a GET."""
        chunks: list[bytes] = []
        while not self._body_done:
            event = await self._receive()
            if event["type"] == "sse.disconnect":
                self._disconnect_reason = str(event.get("reason") or "client_closed")
                break
            chunks.append(bytes(event.get("body") or b""))
            self._body_done = not event.get("more")
        return b"".join(chunks)

    async def start(self, status: int = 200, headers: HeaderInput | None = None) -> None:
        """Send ``sse.start`` (idempotent). The server adds content-type and cache headers."""
        if self.phase is SSEState.STARTED:
            return
        if self.phase is not SSEState.PENDING:
            raise RuntimeError(f"cannot start an SSE stream that is {self.phase.value}")
        event: dict[str, Any] = {"type": "sse.start", "status": status}
        if headers is not None:
            event["headers"] = MutableHeaders(headers).raw
        await self._send(event)
        self.phase = SSEState.STARTED

    async def decline(
        self, response: Response | None = None, *, status: int = 204, body: str = ""
    ) -> None:
        """Answer with a plain HTTP response instead of a stream (R-SSE-61).

        The default 204 tells an ``EventSource`` to stop reconnecting (R-SSE-64).
        """
        if self.phase is not SSEState.PENDING:
            raise RuntimeError(f"cannot decline an SSE stream that is {self.phase.value}")
        await (response or PlainTextResponse(body, status))(self.scope, self._receive, self._send)
        self.phase = SSEState.DECLINED

    async def send(
        self,
        data: EventLike,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
    ) -> None:
        """Send one event (see the module's rule: fields mapping / ServerSentEvent / data)."""
        if isinstance(data, ServerSentEvent):
            fields: Mapping[str, Any] = {
                "data": data.data,
                "event": data.event,
                "id": data.id,
                "retry": data.retry,
            }
        elif _is_event_fields(data):
            fields = cast(Mapping[str, Any], data)
        else:
            fields = {"data": data}
        event = event if event is not None else fields.get("event")
        id = id if id is not None else fields.get("id")
        retry = retry if retry is not None else fields.get("retry")
        payload = fields["data"]
        if not isinstance(payload, str):
            payload = json.dumps(
                payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            )
        message: dict[str, Any] = {"type": "sse.send", "data": payload}
        for key, value in (("event", event), ("id", id), ("retry", retry)):
            if value is not None:
                message[key] = value
        await self._emit(message)

    async def send_event(self, item: EventLike) -> None:
        """Send one item; the same rule as :meth:`send`."""
        await self.send(item)

    async def comment(self, text: str = "") -> None:
        """Send a comment line (ignored by ``EventSource``; handy as a ping)."""
        await self._emit({"type": "sse.comment", "comment": text})

    async def keepalive(self, interval: float, comment: str = "") -> None:
        """Have the server send a comment every ``interval`` seconds (0 stops)."""
        await self._emit({"type": "sse.keepalive", "interval": interval, "comment": comment})

    async def _emit(self, event: dict[str, Any]) -> None:
        if self.phase is SSEState.PENDING:
            await self.start()
        if self.phase is not SSEState.STARTED:
            raise RuntimeError(f"cannot send on an SSE stream that is {self.phase.value}")
        await self._send(event)

    async def close(self, reason: str | None = None) -> None:
        """End the stream (idempotent); ``reason`` is for server logs only (R-SSE-54)."""
        if self.phase in (SSEState.CLOSED, SSEState.DECLINED):
            return
        if self.phase is SSEState.PENDING:
            await self.start()
        event: dict[str, Any] = {"type": "sse.close"}
        if reason is not None:
            event["reason"] = reason
        await self._send(event)
        self.phase = SSEState.CLOSED

    async def wait_disconnect(self) -> str:
        """Wait for ``sse.disconnect``; return its reason."""
        while self._disconnect_reason is None:
            event = await self._receive()
            if event["type"] == "sse.disconnect":
                self._disconnect_reason = str(event.get("reason") or "client_closed")
        return self._disconnect_reason

    async def run_until_disconnect(self, producer: Callable[[], Awaitable[None]]) -> None:
        """Run ``producer()`` until it returns, the stream closes or the client leaves."""
        if self._disconnect_reason is not None:
            return
        error: Exception | None = None
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                await self.wait_disconnect()
                group.cancel_scope.cancel()

            group.start_soon(watch)
            try:
                await producer()
            except Exception as exc:  # re-raised outside, not wrapped in a group
                error = exc
            finally:
                group.cancel_scope.cancel()
        if error is not None:
            raise error

    async def stream(self, source: AsyncIterable[EventLike] | Iterable[EventLike]) -> None:
        """Send every item of ``source`` until it ends or the client disconnects."""
        await self.start()

        async def produce() -> None:
            if isinstance(source, AsyncIterable):
                async for item in source:
                    if self.phase is not SSEState.STARTED:
                        return
                    await self.send_event(item)
            else:
                for item in source:
                    if self.phase is not SSEState.STARTED:
                        return
                    await self.send_event(item)

        await self.run_until_disconnect(produce)

    async def every(
        self,
        interval: float,
        callback: Callable[[], Awaitable[EventLike | None] | EventLike | None],
    ) -> None:
        """Call ``callback`` every ``interval`` seconds and send what it returns.

        ``None`` sends nothing. Stops when the client disconnects or the
        stream is closed (for example by ``callback`` calling :meth:`close`);
        an exception from ``callback`` propagates.
        """
        await self.start()

        async def tick() -> None:
            while self.phase is SSEState.STARTED:
                result = callback()
                if inspect.isawaitable(result):
                    result = await result
                if result is not None and self.phase is SSEState.STARTED:
                    await self.send_event(result)
                await anyio.sleep(interval)

        await self.run_until_disconnect(tick)
