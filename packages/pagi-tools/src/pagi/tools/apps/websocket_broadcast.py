"""``WebSocketBroadcast``: every message a client sends goes to every client of the channel.

Messages travel through a :class:`~pagi.tools.channels.Channels`, so with the
Redis backend clients connected to different processes hear each other.
Text stays text and binary stays binary. Each message carries the sending
connection's token, so with ``echo_self=False`` (the default) the sender
does not get its own message back. Anything else published on the channel
(by a view, a worker, an SSE-side publisher) reaches the clients as well.
A client whose queue overflows under the ``disconnect`` policy is closed
with 1008.
"""

from __future__ import annotations

import secrets

import anyio

from pagi.spec import Receive, Scope, Send
from pagi.tools.apps.sse_pubsub import serve_lifespan
from pagi.tools.channels import Channels, SubscriberTooSlow
from pagi.tools.response import PlainTextResponse
from pagi.tools.websocket import WebSocket

__all__ = ["WebSocketBroadcast"]


class WebSocketBroadcast:
    """``WebSocketBroadcast(channels, channel="default", echo_self=False)``."""

    def __init__(self, channels: Channels, channel: str = "default", echo_self: bool = False):
        self.channels = channels
        self.channel = channel
        self.echo_self = echo_self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(self.channels, receive, send)
            return
        if scope["type"] != "websocket":
            await PlainTextResponse("WebSocket endpoint\n", 426)(scope, receive, send)
            return
        ws = WebSocket(scope, receive, send)
        await ws.accept()
        me = secrets.token_hex(8)
        transport = scope.get("pagi.transport")
        too_slow = False
        async with (
            self.channels.subscribe(self.channel, transport=transport) as events,
            anyio.create_task_group() as group,
        ):

            async def forward() -> None:
                nonlocal too_slow
                try:
                    async for event in events:
                        if event.sender == me and not self.echo_self:
                            continue
                        if isinstance(event.data, bytes):
                            await ws.send_bytes(event.data)
                        else:
                            await ws.send_text(event.text)
                except SubscriberTooSlow:
                    too_slow = True
                group.cancel_scope.cancel()

            group.start_soon(forward)
            async for message in ws:
                await self.channels.publish(self.channel, message, sender=me)
            group.cancel_scope.cancel()
        if too_slow:
            await ws.close(1008, "too slow")
