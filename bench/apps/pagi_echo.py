"""PAGI echo: reads the whole request body and sends it back with a content-length.

``run_all.py``'s post workload POSTs 16 KiB; a GET (readiness probe) gets an
empty 200.
"""


async def app(scope, receive, send):
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif event["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        raise RuntimeError(f"unsupported scope type {scope['type']!r}")
    chunks = []
    while True:
        event = await receive()
        if event["type"] != "http.request":
            return  # the client went away
        chunks.append(event.get("body", b""))
        if not event.get("more", False):
            break
    body = b"".join(chunks)
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", b"%d" % len(body)),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
