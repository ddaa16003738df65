"""PAGI WebSocket echo on any path, plus a plain 200 for HTTP (readiness probe).

Also serves SSE (scope type ``sse``, chosen by the server for ``Accept:
text/event-stream``): small events as fast as the server takes them, until
the client goes away.
"""

import asyncio

OK = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
EVENT = '{"n": 1, "msg": "hello, world"}'


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
    elif kind == "sse":
        await send({"type": "sse.start"})
        gone = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            while not gone.done():
                await send({"type": "sse.send", "data": EVENT})
                await asyncio.sleep(0)  # as an app awaiting its event source would
        finally:
            gone.cancel()
    elif kind == "http":
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
    else:
        raise RuntimeError(f"unsupported scope type {kind!r}")
