"""Raw HTTP: what a request looks like to a PAGI app, answered as JSON, no toolkit.

``GET /anything?x=1`` answers with the method, path, query string, headers,
client address and body size it received. The body is read to its end
first, as the specification asks of every app.
"""

import json


async def read_body(receive):
    """Collect ``http.request`` events until ``more`` is false."""
    chunks = []
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            return None
        chunks.append(event.get("body", b""))
        if not event.get("more", False):
            return b"".join(chunks)


async def app(scope, receive, send):
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope type {scope['type']!r}")
    body = await read_body(receive)
    if body is None:
        return  # the client left before sending the whole body
    report = {
        "method": scope["method"],
        "path": scope["path"],
        "query_string": scope["query_string"].decode("latin-1"),
        "http_version": scope.get("http_version"),
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
        "client": list(scope["client"]) if scope.get("client") else None,
        "body_bytes": len(body),
    }
    payload = json.dumps(report, indent=2).encode() + b"\n"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(payload)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
