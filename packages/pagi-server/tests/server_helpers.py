"""Shared helpers for server tests: in-process server, raw-socket readers, small apps."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio

from pagi.server import Server


@dataclass
class Running:
    """A server started by the ``serve`` fixture."""

    server: Server
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    opened: list[anyio.abc.SocketStream] = field(default_factory=list)

    async def connect(self) -> anyio.abc.SocketStream:
        """A raw client connection, closed when the server block ends."""
        stream = await anyio.connect_tcp(self.host, self.port)
        self.opened.append(stream)
        return stream


@asynccontextmanager
async def serve_app(app: Any, **options: Any) -> AsyncIterator[Running]:
    options.setdefault("access_log", None)
    options.setdefault("quiet", True)
    options.setdefault("port", 0)
    options.setdefault("shutdown_timeout", 2.0)
    options.setdefault("lifespan", "off")
    server = Server(app, **options)
    opened: list[anyio.abc.SocketStream] = []
    try:
        async with anyio.create_task_group() as tg:
            addresses = await tg.start(server.serve)
            host, port = addresses[0]
            running = Running(server, host, port, opened)
            try:
                yield running
            finally:
                server.request_shutdown()
    finally:
        for stream in opened:
            await stream.aclose()


async def until(check: Any, what: str, timeout: float = 5.0) -> None:
    """Poll ``check()`` until it is true; fail naming ``what`` after ``timeout`` seconds.

    For conditions nothing signals (a flag in the server, a socket state);
    where the test owns the code that makes it true, an event is better.
    """
    deadline = anyio.current_time() + timeout
    while not check():
        if anyio.current_time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await anyio.sleep(0.01)


async def read_until_close(stream: anyio.abc.ByteStream, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes (fails the test on timeout)."""
    chunks = []
    with anyio.fail_after(timeout):
        while True:
            try:
                chunks.append(await stream.receive())
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                break
    return b"".join(chunks)


def _chunked_complete(body: bytes) -> bool:
    pos = 0
    while True:
        line_end = body.find(b"\r\n", pos)
        if line_end < 0:
            return False
        size = int(body[pos:line_end].split(b";")[0], 16)
        if size == 0:
            return (
                body.find(b"\r\n\r\n", line_end - 2 if line_end >= 2 else 0) >= 0
                and (body.endswith(b"\r\n\r\n") or b"\r\n\r\n" in body[line_end:])
            ) or body[line_end:].startswith(b"\r\n\r\n")
        pos = line_end + 2 + size + 2
        if pos > len(body):
            return False


async def read_response(stream: anyio.abc.ByteStream, timeout: float = 5.0) -> bytes:
    """One response with a content-length or chunked body, read off a raw socket."""
    buf = b""
    with anyio.fail_after(timeout):
        while b"\r\n\r\n" not in buf:
            buf += await stream.receive()
        head, _, rest = buf.partition(b"\r\n\r\n")
        lower = head.lower()
        if b"content-length:" in lower:
            length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
            while len(rest) < length:
                rest += await stream.receive()
        elif b"transfer-encoding: chunked" in lower:
            while not _chunked_complete(rest):
                rest += await stream.receive()
        return head + b"\r\n\r\n" + rest


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
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")],
        }
    )
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
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": payload})
