"""Raw SSE broadcaster: every ``POST /publish`` reaches every open ``/events`` stream.

The ``sse`` scope by hand, no toolkit. Each listener gets a small queue of
its own; a listener whose queue is full misses a message rather than
slowing the publisher. A listener ends when ``receive()`` reports
``sse.disconnect``. The listeners live in this process only (see
``examples/chat`` for pub/sub across workers).
"""

import json

import anyio

LISTENERS: set = set()


async def events(receive, send):
    """One ``sse`` listener: a ``hello`` event, then whatever is published."""
    event = await receive()  # the (empty) request body of the GET
    if event["type"] == "sse.disconnect":
        return
    await send({"type": "sse.start"})
    await send({"type": "sse.keepalive", "interval": 15})
    outbox, inbox = anyio.create_memory_object_stream(16)
    LISTENERS.add(outbox)
    await send({"type": "sse.send", "event": "hello", "data": str(len(LISTENERS))})
    try:
        async with anyio.create_task_group() as tg:

            async def until_disconnect():
                while (await receive())["type"] != "sse.disconnect":
                    pass
                tg.cancel_scope.cancel()

            tg.start_soon(until_disconnect)
            async for number, text in inbox:
                await send(
                    {"type": "sse.send", "event": "message", "id": str(number), "data": text}
                )
    finally:
        LISTENERS.discard(outbox)


async def respond(send, status, payload):
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


PUBLISHED = 0


async def publish(receive, send):
    global PUBLISHED
    body = b""
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            return
        body += event.get("body", b"")
        if len(body) > 4096:
            await respond(send, 413, {"error": "at most 4096 bytes"})
            return
        if not event.get("more", False):
            break
    try:
        text = body.decode()
    except UnicodeDecodeError:
        await respond(send, 400, {"error": "the message must be UTF-8 text"})
        return
    PUBLISHED += 1
    delivered = 0
    for listener in list(LISTENERS):
        try:
            listener.send_nowait((PUBLISHED, text))
            delivered += 1
        except (anyio.WouldBlock, anyio.BrokenResourceError):
            pass  # a slow or departed listener misses this one
    await respond(send, 200, {"id": PUBLISHED, "delivered": delivered})


async def app(scope, receive, send):
    if scope["type"] == "sse" and scope["path"] == "/events":
        await events(receive, send)
    elif scope["type"] == "sse":
        await send({"type": "sse.http.response.start", "status": 404})
        await send({"type": "sse.http.response.body", "body": b"no such stream"})
    elif scope["type"] == "http" and scope["path"] == "/publish" and scope["method"] == "POST":
        await publish(receive, send)
    elif scope["type"] == "http":
        await respond(send, 404, {"try": ["GET /events (SSE)", "POST /publish"]})
    else:
        raise RuntimeError(f"unsupported scope type {scope['type']!r}")
