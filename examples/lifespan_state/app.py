"""Lifespan state: set up once at startup, read by every request, torn down at shutdown.

At ``lifespan.startup`` the app fills ``scope["state"]`` (a dict the
server keeps for this app); every request's scope carries a shallow copy
of it in ``scope["state"]``. Values are shared objects, so the request
counter below is one counter. At ``lifespan.shutdown`` the app prints a
summary, which shows in the server's log.
"""

import json
import time


async def lifespan(scope, receive, send):
    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            scope["state"]["started"] = time.time()
            scope["state"]["counter"] = {"requests": 0}
            scope["state"]["greeting"] = "hello from the lifespan"
            await send({"type": "lifespan.startup.complete"})
        elif event["type"] == "lifespan.shutdown":
            served = scope["state"]["counter"]["requests"]
            print(f"lifespan_state: shutting down after {served} requests", flush=True)
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope type {scope['type']!r}")
    state = scope["state"]
    state["counter"]["requests"] += 1
    body = json.dumps(
        {
            "greeting": state["greeting"],
            "requests": state["counter"]["requests"],
            "uptime": round(time.time() - state["started"], 3),
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
