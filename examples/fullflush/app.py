"""The fullflush extension: push what was sent so far to the client, now.

``GET /progress`` writes a line, sends ``http.fullflush`` when the scope
advertises the extension (``"fullflush" in scope["extensions"]``), and
then waits until someone calls ``POST /release`` (or 30 s pass) before it
writes the rest. The flush is what lets a client see ``step 1`` while the
app is still waiting: without it a server may keep a small write in a
buffer until more follows.
"""

import anyio

RELEASE: dict = {"event": None}


async def line(send, text, more=True):
    await send({"type": "http.response.body", "body": text.encode(), "more": more})


async def progress(scope, send):
    flush = "fullflush" in scope.get("extensions", {})
    release = RELEASE["event"] = anyio.Event()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    await line(send, f"step 1 (fullflush advertised: {flush})\n")
    if flush:
        await send({"type": "http.fullflush"})
    with anyio.move_on_after(30):
        await release.wait()
    await line(send, "step 2\n", more=False)


async def app(scope, receive, send):
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope type {scope['type']!r}")
    if scope["path"] == "/progress":
        await progress(scope, send)
        return
    released = False
    if scope["path"] == "/release" and RELEASE["event"] is not None:
        RELEASE["event"].set()
        released = True
    body = b"released\n" if released else b"GET /progress, then POST /release\n"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": body})
