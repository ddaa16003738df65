"""``SSEPubSub``: an ``sse`` endpoint that streams one channel of a :class:`Channels`.

Each client gets its own subscription (a bounded queue, see
:mod:`pagi.tools.channels`); events go out with their id when the channel
keeps history, and a reconnecting ``EventSource`` that sends
``Last-Event-ID`` first receives what it missed, from any process with the
Redis backend. The server's ``pagi.transport`` handle is passed to the
subscription so a stalled client meets the overflow policy early. A
subscriber ended by the ``disconnect`` policy has its stream closed
(``EventSource`` reconnects, and replays when history is on).

Other scope types: ``lifespan`` starts and closes the channels, a plain
``http`` request is answered 406 (it did not ask for ``text/event-stream``)
and a WebSocket is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pagi.spec import Receive, Scope, Send
from pagi.tools.channels import Channels, SubscriberTooSlow
from pagi.tools.response import PlainTextResponse
from pagi.tools.sse import SSE

__all__ = ["SSEPubSub", "serve_lifespan"]

logger = logging.getLogger("pagi.tools.apps")

#: A fixed channel name, or ``scope -> name`` (for example from a path parameter).
ChannelName = str | Callable[[Scope], str]


class SSEPubSub:
    """``SSEPubSub(channels, channel="default", history=0, retry_ms=None, keepalive=15.0)``."""

    def __init__(
        self,
        channels: Channels,
        channel: ChannelName = "default",
        history: int = 0,
        retry_ms: int | None = None,
        keepalive: float = 15.0,
    ) -> None:
        if history < 0:
            raise ValueError("history must be >= 0")
        self.channels = channels
        self.channel = channel
        self.history = history
        self.retry_ms = retry_ms
        self.keepalive = keepalive
        if history and isinstance(channel, str):
            channels.configure(channel, history=history)

    def channel_for(self, scope: Scope) -> str:
        """The channel this request streams."""
        return self.channel if isinstance(self.channel, str) else self.channel(scope)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await serve_lifespan(self.channels, receive, send)
        elif kind == "sse":
            await self.stream(SSE(scope, receive, send))
        elif kind == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 1008})
        else:
            body = "this endpoint streams text/event-stream\n"
            await PlainTextResponse(body, 406)(scope, receive, send)

    async def stream(self, sse: SSE) -> None:
        """Subscribe and forward events until the client leaves."""
        channel = self.channel_for(sse.scope)
        if self.history and self.channels.policy(channel).history < self.history:
            self.channels.configure(channel, history=self.history)
        await sse.start()
        if self.keepalive:
            await sse.keepalive(self.keepalive)
        last_id = sse.last_event_id if self.history else None
        transport = sse.scope.get("pagi.transport")
        retry = self.retry_ms
        async with self.channels.subscribe(
            channel, last_event_id=last_id, transport=transport
        ) as events:

            async def forward() -> None:
                nonlocal retry
                async for event in events:
                    await sse.send(event.text, id=event.id, retry=retry)
                    retry = None

            try:
                await sse.run_until_disconnect(forward)
            except SubscriberTooSlow:
                logger.info("SSE subscriber of %r too slow: closing its stream", channel)
        if sse.disconnect_reason is None:
            await sse.close("too_slow" if events.closed else None)


async def serve_lifespan(channels: Channels, receive: Receive, send: Send) -> None:
    """Answer a ``lifespan`` scope: start ``channels`` at startup, close them at shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await channels.start()
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await channels.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
