"""The proxy benchmark's upstream: GET /big?mib=N streams N MiB; POST /sink counts the body."""

CHUNK = b"x" * 262144


async def app(scope, receive, send):
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope type {scope['type']!r}")
    if scope["path"] == "/sink":
        size = 0
        while True:
            event = await receive()
            size += len(event.get("body", b""))
            if event["type"] != "http.request" or not event.get("more"):
                break
        body = b"%d" % size
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return
    mib = int(scope["query_string"].decode().partition("=")[2] or "1")
    size = mib * 2**20
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"%d" % size)],
        }
    )
    for _ in range(size // len(CHUNK)):
        await send({"type": "http.response.body", "body": CHUNK, "more": True})
    await send({"type": "http.response.body", "body": b"", "more": False})
