"""Small PAGI apps the server tests share."""

from __future__ import annotations

import json
from typing import Any


async def read_body(receive: Any) -> bytes:
    body = b""
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            return body
        body += event.get("body", b"")
        if not event.get("more"):
            return body


async def hello(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        raise RuntimeError("http only")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items() if not k.startswith("pagi.")}
    return value


async def echo_scope(scope: Any, receive: Any, send: Any) -> None:
    """Responds with the scope (minus objects) and the body as JSON."""
    if scope["type"] != "http":
        raise RuntimeError("http only")
    body = await read_body(receive)
    data = _jsonable(dict(scope))
    data["body"] = body.decode("latin-1")
    data["has_connection"] = "pagi.connection" in scope
    data["has_transport"] = "pagi.transport" in scope
    payload = json.dumps(data).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": payload})
