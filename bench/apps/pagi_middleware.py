"""PAGI side of run_middleware.py: GZip on a 64 KiB JSON body and a 1 MiB stream; ErrorHandler.

Paths: /json and /stream behind GZip(minimum_size=500, compresslevel=6);
/plain bare; /plain-eh behind ErrorHandler (the overhead measurement).
"""

from _mw_payloads import JSON_BODY, PLAIN, TEXT_CHUNKS

from pagi.tools.middleware import ErrorHandler, GZip


async def json_app(scope, receive, send):
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(JSON_BODY))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": JSON_BODY})


async def stream_app(scope, receive, send):
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    last = len(TEXT_CHUNKS) - 1
    for i, chunk in enumerate(TEXT_CHUNKS):
        await send({"type": "http.response.body", "body": chunk, "more": i < last})


async def plain_app(scope, receive, send):
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(PLAIN))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": PLAIN})


ROUTES = {
    "/json": GZip(json_app, minimum_size=500, compresslevel=6),
    "/stream": GZip(stream_app, minimum_size=500, compresslevel=6),
    "/plain": plain_app,
    "/plain-eh": ErrorHandler(plain_app),
    "/": plain_app,
}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await ROUTES[scope["path"]](scope, receive, send)
