"""A blocked read is interrupted on every event loop: keep-alive timeout and drain.

The server wakes a connection waiting for its next request by shutting down
the socket's read side. uvloop's transport socket refuses ``shutdown()``
(``TypeError``): on uvloop an idle keep-alive connection was never closed at
its timeout, and a drain with one open crashed the worker (found by
bench/chaos.py once uvloop was the loop).
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from server_helpers import hello, read_response, read_until_close

pytestmark = pytest.mark.anyio

LOOPS = [
    pytest.param("asyncio", id="asyncio"),
    pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    pytest.param("trio", id="trio"),
]
GET = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"


@pytest.fixture(params=LOOPS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    if isinstance(request.param, tuple):
        pytest.importorskip("uvloop")
    return request.param


async def test_idle_keepalive_connection_is_closed_at_its_timeout(serve: Any) -> None:
    async with serve(hello, keepalive_timeout=0.3) as running:
        stream = await running.connect()
        await stream.send(GET)
        assert (await read_response(stream)).startswith(b"HTTP/1.1 200 ")
        with anyio.fail_after(3):
            assert await read_until_close(stream) == b""  # closed by the server, no 408


async def test_drain_closes_an_idle_keepalive_connection(serve: Any) -> None:
    async with serve(hello, shutdown_timeout=5) as running:
        stream = await running.connect()
        await stream.send(GET)
        assert (await read_response(stream)).startswith(b"HTTP/1.1 200 ")
        running.server.request_shutdown()
        with anyio.fail_after(3):
            assert await read_until_close(stream) == b""
