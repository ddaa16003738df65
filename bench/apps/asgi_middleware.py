"""ASGI side of run_middleware.py: Starlette's GZipMiddleware on the same payloads.

Paths: /json and /stream behind GZipMiddleware(minimum_size=500,
compresslevel=6) (Starlette's default level is 9; 6 matches our GZip);
/plain bare.
"""

from _mw_payloads import JSON_BODY, PLAIN, TEXT_CHUNKS
from starlette.middleware.gzip import GZipMiddleware


async def json_app(scope, receive, send):
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(JSON_BODY))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": JSON_BODY})


async def stream_app(scope, receive, send):
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    last = len(TEXT_CHUNKS) - 1
    for i, chunk in enumerate(TEXT_CHUNKS):
        await send({"type": "http.response.body", "body": chunk, "more_body": i < last})


async def plain_app(scope, receive, send):
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(PLAIN))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": PLAIN})


ROUTES = {
    "/json": GZipMiddleware(json_app, minimum_size=500, compresslevel=6),
    "/stream": GZipMiddleware(stream_app, minimum_size=500, compresslevel=6),
    "/plain": plain_app,
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
