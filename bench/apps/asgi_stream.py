"""ASGI streaming: 1 MiB body sent as 16 chunks of 64 KiB, no content-length (chunked)."""

CHUNK = b"x" * 65536
COUNT = 16


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    headers = [(b"content-type", b"application/octet-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for i in range(COUNT):
        await send({"type": "http.response.body", "body": CHUNK, "more_body": i < COUNT - 1})
