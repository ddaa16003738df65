"""The ASGI twin of pagi_fanout.py: Starlette + broadcaster (memory backend) + sse-starlette.

``GET /sse`` (text/event-stream via EventSourceResponse) and ``/ws`` subscribe to the
channel; ``POST /publish`` publishes one event; ``GET /`` answers "ok".
"""

import contextlib

from broadcaster import Broadcast
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute

EVENT = '{"n": 1, "msg": "fanout hello, world"}'
broadcast = Broadcast("memory://")


async def ready(request):
    return PlainTextResponse("ok")


async def publish(request):
    await broadcast.publish(channel="bench", message=EVENT)
    return JSONResponse({"ok": 1})


async def sse(request):
    async def events():
        async with broadcast.subscribe(channel="bench") as subscriber:
            async for event in subscriber:
                yield {"data": event.message}

    return EventSourceResponse(events())


async def ws(websocket):
    await websocket.accept()
    async with broadcast.subscribe(channel="bench") as subscriber:
        async for event in subscriber:
            await websocket.send_text(event.message)


@contextlib.asynccontextmanager
async def lifespan(app):
    await broadcast.connect()
    yield
    await broadcast.disconnect()


app = Starlette(
    routes=[
        Route("/", ready),
        Route("/publish", publish, methods=["POST"]),
        Route("/sse", sse),
        WebSocketRoute("/ws", ws),
    ],
    lifespan=lifespan,
)
