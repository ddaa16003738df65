"""Fan-out on pagi.tools channels: any ``sse`` stream (SSEPubSub) and any WebSocket
(WebSocketBroadcast) subscribes to one channel; ``POST /publish`` publishes one event to
it; other HTTP requests answer "ok" (readiness probe). ``FANOUT_REDIS=redis://...``
selects the Redis backend (default: memory).
"""

import os

from pagi.tools import JSONResponse, Lifespan, PlainTextResponse
from pagi.tools.apps import SSEPubSub, WebSocketBroadcast
from pagi.tools.channels import Channels, RedisBackend

EVENT = '{"n": 1, "msg": "fanout hello, world"}'
redis_url = os.environ.get("FANOUT_REDIS")
# Queues deep enough that a benchmark window of in-flight events never drops.
channels = Channels(RedisBackend(redis_url) if redis_url else None, queue_size=1024)
streams = SSEPubSub(channels, "bench", keepalive=0)
sockets = WebSocketBroadcast(channels, "bench")
OK = PlainTextResponse("ok")


async def fanout(scope, receive, send):
    kind = scope["type"]
    if kind == "sse":
        await streams(scope, receive, send)
    elif kind == "websocket":
        await sockets(scope, receive, send)
    elif scope["method"] == "POST":
        await channels.publish("bench", EVENT)
        await JSONResponse({"ok": 1})(scope, receive, send)
    else:
        await OK(scope, receive, send)


app = Lifespan(fanout, context=[channels.lifespan])
