"""Request body echo: the body is sent back as it arrives, piece by piece, never held whole.

Each ``http.request`` event's bytes go straight out as a response body
event with ``more=True``; the server applies backpressure both ways, so a
1 GiB upload uses no more memory than a few chunks. The response copies
the request's content type; with ``?count=1`` a last line says how many
body events the upload arrived in.
"""


async def app(scope, receive, send):
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope type {scope['type']!r}")
    if scope["method"] not in ("POST", "PUT"):
        body = b"POST or PUT a body and it comes back\n"
        await send(
            {
                "type": "http.response.start",
                "status": 405,
                "headers": [(b"allow", b"POST, PUT"), (b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return
    content_type = dict(scope["headers"]).get(b"content-type", b"application/octet-stream")
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", content_type)],
        }
    )
    pieces = 0
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            return  # the client left mid-upload; nothing left to answer
        pieces += 1
        body = event.get("body", b"")
        if body:
            await send({"type": "http.response.body", "body": body, "more": True})
        if not event.get("more", False):
            break
    tail = f"\n[{pieces} pieces]\n".encode() if b"count=1" in scope["query_string"] else b""
    await send({"type": "http.response.body", "body": tail})
