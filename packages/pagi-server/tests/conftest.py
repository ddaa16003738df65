"""Fixtures for server tests: an in-process server on a free loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

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

    async def connect(self) -> anyio.abc.SocketStream:
        return await anyio.connect_tcp(self.host, self.port)


@asynccontextmanager
async def _serve(app: Any, **options: Any) -> AsyncIterator[Running]:
    options.setdefault("access_log", None)
    options.setdefault("quiet", True)
    options.setdefault("port", 0)
    options.setdefault("shutdown_timeout", 2.0)
    server = Server(app, **options)
    async with anyio.create_task_group() as tg:
        addresses = await tg.start(server.serve)
        host, port = addresses[0]
        try:
            yield Running(server, host, port)
        finally:
            server.request_shutdown()


@pytest.fixture
def serve() -> Callable[..., AbstractAsyncContextManager[Running]]:
    """``async with serve(app, **options) as running:`` runs a server for the block."""
    return _serve


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
            while not rest.endswith(b"0\r\n\r\n"):
                rest += await stream.receive()
        return head + b"\r\n\r\n" + rest
