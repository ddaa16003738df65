"""Streaming: a chunked response that ends with trailers, and one that runs until the client leaves.

* ``GET /count?n=5`` sends ``n`` lines one by one, then trailer fields
  ``x-lines`` and ``x-checksum`` (SHA-256 of the body), announced with
  ``trailers: True`` on ``http.response.start``.
* ``GET /forever`` sends a line every 50 ms for as long as the client stays.
  It never waits on ``receive()`` to find out: ``pagi.connection`` says
  whether the client is still there, and ``on_disconnect`` reports why it
  went. ``GET /last`` shows how the last ``/forever`` stream ended.
"""

import hashlib
import json
from urllib.parse import parse_qs

import anyio

LAST: dict = {"lines": 0, "reason": None}


async def start(send, content_type=b"text/plain", trailers=False, extra=()):
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", content_type), *extra],
            "trailers": trailers,
        }
    )


async def count(scope, send):
    query = parse_qs(scope["query_string"].decode())
    n = min(int(query.get("n", ["5"])[0]), 1000)
    digest = hashlib.sha256()
    await start(send, trailers=True, extra=[(b"trailer", b"x-lines, x-checksum")])
    for i in range(1, n + 1):
        line = f"line {i}\n".encode()
        digest.update(line)
        await send({"type": "http.response.body", "body": line, "more": True})
        await anyio.sleep(0.01)
    await send({"type": "http.response.body", "body": b"", "more": False})
    await send(
        {
            "type": "http.response.trailers",
            "headers": [
                (b"x-lines", str(n).encode()),
                (b"x-checksum", digest.hexdigest().encode()),
            ],
        }
    )


async def forever(scope, send):
    connection = scope["pagi.connection"]
    LAST.update(lines=0, reason="still streaming")
    # Called once, with a standard reason ("client_closed", "write_timeout", ...).
    connection.on_disconnect(lambda reason: LAST.update(reason=reason))
    await start(send)
    while connection.is_connected():
        LAST["lines"] += 1
        # After a disconnect a well-formed send is a no-op, so this never raises.
        await send({"type": "http.response.body", "body": b"tick\n", "more": True})
        await anyio.sleep(0.05)
    # The client is gone: nothing more to send, and no error to report.


async def last(send):
    body = json.dumps(LAST).encode()
    await start(send, b"application/json")
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope type {scope['type']!r}")
    if scope["path"] == "/count":
        await count(scope, send)
    elif scope["path"] == "/forever":
        await forever(scope, send)
    elif scope["path"] == "/last":
        await last(send)
    else:
        await start(send)
        await send({"type": "http.response.body", "body": b"try /count, /forever, /last\n"})
