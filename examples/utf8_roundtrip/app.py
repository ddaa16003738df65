"""UTF-8 round trip: text comes in through every input and goes back out unchanged.

* ``/echo/<anything>?k=v`` (any method): JSON with the path after ``/echo/``,
  the query parameters, the ``x-text`` request header, and the body read as
  an urlencoded form or as JSON (by ``content-type``).
* ``/ws`` (WebSocket): each message comes back as
  ``{"text": ..., "code_points": n, "utf8_bytes": m}``.
* ``/sse?text=...`` (SSE): the text as the data of an ``echo`` event (line
  breaks included), then a ``length`` event, then the stream ends.

Everything is decoded as strict UTF-8 from the bytes on the wire:
``raw_path`` (``path`` holds Latin-1 for bytes that are not UTF-8, A-24),
``query_string``, header values, the body. Bytes that are not UTF-8 get a
``400`` (or an ``{"error": ...}`` message on the WebSocket) naming the input,
never a traceback. Written on the raw interface, so each decode is visible.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes


class BadInput(Exception):
    """Input the client must fix; the message says which and why."""


def utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{what} is not valid UTF-8 (byte {exc.start})") from None


def pairs(encoded: bytes, what: str) -> dict[str, list[str]]:
    """``a=1&b=%C3%A9`` -> ``{"a": ["1"], "b": ["é"]}``, strictly UTF-8."""
    text = utf8(encoded, what)  # percent-escapes are ASCII; raw bytes must be UTF-8 too
    out: dict[str, list[str]] = {}
    try:
        for key, value in parse_qsl(text, keep_blank_values=True, errors="strict"):
            out.setdefault(key, []).append(value)
    except UnicodeDecodeError:
        raise BadInput(f"{what} has percent-escapes that are not UTF-8") from None
    return out


def header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def send_json(send: Any, status: int, data: Any) -> None:
    body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Any, limit: int = 1 << 20) -> bytes:
    chunks, size = [], 0
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            return b""
        size += len(event.get("body", b""))
        if size > limit:
            raise BadInput(f"the body is larger than {limit} bytes")
        chunks.append(event.get("body", b""))
        if not event.get("more"):
            return b"".join(chunks)


async def echo(scope: dict[str, Any], receive: Any) -> dict[str, Any]:
    raw = scope.get("raw_path") or scope["path"].encode("latin-1")
    path = utf8(unquote_to_bytes(raw), "the path")
    result: dict[str, Any] = {
        "method": scope["method"],
        "path": path.removeprefix("/echo/"),
        "query": pairs(scope["query_string"], "the query string"),
    }
    text_header = header(scope, b"x-text")
    if text_header is not None:
        result["header"] = utf8(text_header, "the x-text header")
    body = await read_body(receive)
    content_type = (header(scope, b"content-type") or b"").split(b";")[0].strip().lower()
    if content_type == b"application/x-www-form-urlencoded":
        result["form"] = pairs(body, "the form body")
    elif content_type == b"application/json":
        try:
            result["json"] = json.loads(utf8(body, "the JSON body"))
        except ValueError as exc:
            raise BadInput(f"the JSON body is not JSON: {exc}") from None
    elif body:
        result["text"] = utf8(body, "the body")
    return result


def measured(text: str) -> dict[str, Any]:
    return {"text": text, "code_points": len(text), "utf8_bytes": len(text.encode("utf-8"))}


async def websocket(receive: Any, send: Any) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            return
        # Text frames are valid UTF-8 already (the server checks, RFC 6455 8.1);
        # binary frames are whatever the client sent.
        text = event.get("text")
        if text is None:
            try:
                text = utf8(event.get("bytes") or b"", "the binary message")
            except BadInput as exc:
                await send({"type": "websocket.send", "text": json.dumps({"error": str(exc)})})
                continue
        reply = json.dumps(measured(text), ensure_ascii=False)
        await send({"type": "websocket.send", "text": reply})


async def sse(scope: dict[str, Any], send: Any) -> None:
    try:
        text = pairs(scope["query_string"], "the query string").get("text", [""])[0]
    except BadInput as exc:
        message = str(exc).encode("utf-8")
        await send(
            {
                "type": "sse.http.response.start",
                "status": 400,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")],
            }
        )
        await send({"type": "sse.http.response.body", "body": message})
        return
    await send({"type": "sse.start", "status": 200})
    await send({"type": "sse.send", "event": "echo", "data": text})  # the server splits lines
    details = measured(text)
    del details["text"]
    await send({"type": "sse.send", "event": "length", "data": json.dumps(details)})
    await send({"type": "sse.close"})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    kind = scope["type"]
    if kind == "lifespan":
        while True:
            step = (await receive())["type"]
            await send({"type": step + ".complete"})
            if step == "lifespan.shutdown":
                return
    elif kind == "websocket":
        await websocket(receive, send)
    elif kind == "sse":
        await sse(scope, send)
    elif kind == "http":
        if not scope["path"].startswith("/echo/"):
            await send_json(send, 404, {"error": "try /echo/<text>, /ws or /sse?text=..."})
            return
        try:
            result = await echo(scope, receive)
        except BadInput as exc:
            await send_json(send, 400, {"error": str(exc)})
            return
        await send_json(send, 200, result)
