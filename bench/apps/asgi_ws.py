"""ASGI WebSocket echo on any path, plus a plain 200 for HTTP (readiness probe).

A GET with ``Accept: text/event-stream`` gets an SSE stream written by hand
(ASGI has no SSE scope): small events as fast as the server takes them, until
the client goes away.
"""

import asyncio

OK = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
EVENT = b'data: {"n": 1, "msg": "hello, world"}\n\n'


async def _wait_disconnect(receive):
    while True:
        event = await receive()
        if event["type"].endswith(".disconnect"):
            return


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "websocket":
        event = await receive()
        if event["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        while True:
            event = await receive()
            if event["type"] != "websocket.receive":
                return
            if event.get("text") is not None:
                await send({"type": "websocket.send", "text": event["text"]})
            else:
                await send({"type": "websocket.send", "bytes": event["bytes"]})
    elif kind == "http":
        accept = dict(scope["headers"]).get(b"accept", b"")
        if b"text/event-stream" in accept:
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            gone = asyncio.ensure_future(_wait_disconnect(receive))
            try:
                while not gone.done():
                    await send({"type": "http.response.body", "body": EVENT, "more_body": True})
                    await asyncio.sleep(0)  # as an app awaiting its event source would
            finally:
                gone.cancel()
            return
        await send({"type": "http.response.start", "status": 200, "headers": OK})
        await send({"type": "http.response.body", "body": b"ok"})
    elif kind == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
