"""``WebSocketRateLimit``: cap how fast one WebSocket peer may send.

Two token buckets per connection, one counting messages and one counting
bytes (text counted as UTF-8), each refilling at its per-second rate and
holding ``burst`` seconds' worth. A message that finds either bucket short
is over the limit:

* ``on_exceed="close"`` (default): the connection is closed with 1008
  (policy violation); the app's next ``receive`` gets
  ``websocket.disconnect`` with that code, and whatever it still sends is
  dropped, since the socket is closing;
* ``on_exceed="drop"``: the message is discarded and the app never sees it.

The buckets live in the connection's own closure: nothing is shared
between connections, and nothing outlives one.
"""

from __future__ import annotations

import time
from typing import Literal

from pagi.spec import App, Event, Receive, Scope, Send
from pagi.tools.middleware.base import Middleware, OptionError
from pagi.tools.ratelimit_backends import refill

__all__ = ["WebSocketRateLimit"]

#: Close code for "policy violation" (RFC 6455 section 7.4.1).
POLICY_VIOLATION = 1008


class WebSocketRateLimit(Middleware):
    """``WebSocketRateLimit(app, messages_per_second=100, bytes_per_second=1048576, ...)``."""

    scope_types = ("websocket",)

    def __init__(
        self,
        app: App,
        messages_per_second: float = 100,
        bytes_per_second: float = 1048576,
        burst: float = 2.0,
        on_exceed: Literal["close", "drop"] = "close",
    ) -> None:
        super().__init__(app)
        for option, value in (
            ("messages_per_second", messages_per_second),
            ("bytes_per_second", bytes_per_second),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise OptionError("WebSocketRateLimit", option, "must be a number > 0")
        if isinstance(burst, bool) or not isinstance(burst, (int, float)) or not burst >= 1:
            raise OptionError(
                "WebSocketRateLimit", "burst", "must be a number >= 1 (seconds' worth)"
            )
        if on_exceed not in ("close", "drop"):
            raise OptionError("WebSocketRateLimit", "on_exceed", "must be 'close' or 'drop'")
        self.message_rate = float(messages_per_second)
        self.byte_rate = float(bytes_per_second)
        self.burst = float(burst)
        self.on_exceed = on_exceed

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        message_cap = self.message_rate * self.burst
        byte_cap = self.byte_rate * self.burst
        messages, data, stamp = message_cap, byte_cap, time.monotonic()
        closed = False

        async def limited_receive() -> Event:
            nonlocal messages, data, stamp, closed
            while True:
                if closed:
                    return {"type": "websocket.disconnect", "code": POLICY_VIOLATION, "reason": ""}
                event = await receive()
                if event.get("type") != "websocket.receive":
                    return event
                text = event.get("text")
                size = (
                    len(text.encode("utf-8"))
                    if text is not None
                    else len(event.get("bytes") or b"")
                )
                now = time.monotonic()
                # Refill both first, then take from both only if both have enough.
                messages, _ = refill(messages, stamp, now, self.message_rate, message_cap, 0)
                data, _ = refill(data, stamp, now, self.byte_rate, byte_cap, 0)
                stamp = now
                if messages >= 1 and data >= size:
                    messages -= 1
                    data -= size
                    return event
                if self.on_exceed == "drop":
                    continue
                closed = True
                await send(
                    {
                        "type": "websocket.close",
                        "code": POLICY_VIOLATION,
                        "reason": "rate limit exceeded",
                    }
                )

        async def guarded_send(event: Event) -> None:
            if not closed:
                await send(event)

        await self.app(scope, limited_receive, guarded_send)
