"""The real-time apps behind one dispatcher, for test_tools_realtime_over_server.py.

``REALTIME_REDIS_URL`` selects the Redis backend (every process shares the
channels); without it the channels are in memory.
"""

from __future__ import annotations

import os
from typing import Any

from pagi.tools import JSONResponse, Lifespan, PlainTextResponse
from pagi.tools.apps import HealthcheckApp, SSEPubSub, WebSocketBroadcast, WebSocketChat
from pagi.tools.channels import Channels, RedisBackend

url = os.environ.get("REALTIME_REDIS_URL")
channels = Channels(
    RedisBackend(url, prefix=os.environ.get("REALTIME_PREFIX", "rt:")) if url else None
)
broadcast = WebSocketBroadcast(channels, channel="all")
chat = WebSocketChat(channels)
feed = SSEPubSub(channels, "feed", history=20, retry_ms=1000)
health = HealthcheckApp(version="test")


async def dispatch(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope.get("path")
    if path == "/broadcast":
        await broadcast(scope, receive, send)
    elif path == "/chat":
        await chat(scope, receive, send)
    elif path == "/feed":
        await feed(scope, receive, send)
    elif path == "/health":
        await health(scope, receive, send)
    elif path == "/publish" and scope["type"] == "http":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        event_id = await channels.publish("feed", body.decode())
        await JSONResponse({"id": event_id})(scope, receive, send)
    elif path == "/presence":
        counts = {name: await channels.presence(name) for name in ("all", "feed", "chat:lobby")}
        await JSONResponse(counts)(scope, receive, send)
    else:
        await PlainTextResponse("not found", 404)(scope, receive, send)


app = Lifespan(dispatch, context=[channels.lifespan])
