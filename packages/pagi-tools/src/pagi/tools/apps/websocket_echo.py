"""``WebSocketEcho``: accept and send every text or binary message back."""

from __future__ import annotations

from pagi.spec import Receive, Scope, Send
from pagi.tools.response import PlainTextResponse
from pagi.tools.websocket import WebSocket

__all__ = ["WebSocketEcho"]


class WebSocketEcho:
    """``WebSocketEcho()``: the smallest useful WebSocket app, handy for probes and tests."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            if scope["type"] == "lifespan":
                return  # nothing to set up; the server carries on without lifespan
            await PlainTextResponse("WebSocket endpoint\n", 426)(scope, receive, send)
            return
        ws = WebSocket(scope, receive, send)
        await ws.accept()
        async for message in ws:
            if isinstance(message, str):
                await ws.send_text(message)
            else:
                await ws.send_bytes(message)
