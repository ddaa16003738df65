"""Raw WebSocket echo: the ``websocket`` scope's events by hand, no toolkit.

Text frames come back as text, binary as binary. Sending ``bye`` makes the
server close with code 1000 and reason ``"bye"``. Plain HTTP requests get
a short explanation instead.
"""


async def app(scope, receive, send):
    if scope["type"] == "http":
        body = b"connect a WebSocket client to this URL\n"
        await send(
            {
                "type": "http.response.start",
                "status": 426,
                "headers": [(b"content-type", b"text/plain"), (b"upgrade", b"websocket")],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return
    if scope["type"] != "websocket":
        raise RuntimeError(f"unsupported scope type {scope['type']!r}")
    event = await receive()
    if event["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            return  # the client closed (event["code"] says how)
        text = event.get("text")
        if text == "bye":
            await send({"type": "websocket.close", "code": 1000, "reason": "bye"})
            return
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": event.get("bytes") or b""})
