"""Clients that reset their connection early (found by bench/soak.py).

The server's ticker peeks at the socket of a connection whose app is busy
without reading, to notice a client that left (R-HTTP-63). After a reset the
asyncio transport has closed that socket; peeking at descriptor -1 raised
``ValueError`` in the ticker task, which ended the whole server (exit 1).

On uvloop a transport that closed before anyone asked for its socket has
none: a client resetting right after connecting made the connection's
handler fail ("connection task failed", AttributeError) instead of just
ending.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import anyio
import pytest
from anyio.abc import SocketAttribute
from server_helpers import hello, read_response

from pagi.server.net.stream import accept
from pagi.server.server import _connection_info

pytestmark = pytest.mark.anyio


async def test_reset_while_the_app_is_busy_keeps_the_server_up_R_HTTP_63(serve: Any) -> None:
    started = anyio.Event()
    finished = anyio.Event()
    reasons: list[str | None] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] != "/busy":
            await hello(scope, receive, send)
            return
        started.set()
        with anyio.fail_after(5):
            reasons.append(await scope["pagi.connection"].disconnect_future())
        # Still busy, never reading: the ticker (every 0.2 s with a 1 s keep-alive
        # timeout) looks at this connection several times meanwhile.
        await anyio.sleep(1.2)
        finished.set()

    async with serve(app, keepalive_timeout=1) as running:
        client = socket.create_connection((running.host, running.port))
        client.sendall(b"GET /busy HTTP/1.1\r\nhost: x\r\n\r\n")
        with anyio.fail_after(5):
            await started.wait()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # RST
        with anyio.fail_after(5):
            await finished.wait()
        stream = await running.connect()
        await stream.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        assert (await read_response(stream)).startswith(b"HTTP/1.1 200 ")
    # The app learnt that the client left (asyncio reports the lost transport as
    # write_error, trio's peek as client_closed).
    assert len(reasons) == 1 and reasons[0] in ("client_closed", "write_error")


@pytest.mark.parametrize(
    "anyio_backend", [pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"), "asyncio"]
)
async def test_a_connection_gone_before_it_is_looked_at_is_not_served(
    anyio_backend: Any,
) -> None:
    if isinstance(anyio_backend, tuple):
        pytest.importorskip("uvloop")
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    listener = multi.listeners[0]
    port = listener.extra(SocketAttribute.local_port)
    client = socket.create_connection(("127.0.0.1", port))
    try:
        (stream,) = await accept(listener)
        stream._transport.abort()  # type: ignore[attr-defined]  # as after a client's reset
        await anyio.sleep(0.05)
        info = _connection_info(stream, None, "", None)
        # uvloop no longer knows the socket: nothing to serve; asyncio still does.
        if isinstance(anyio_backend, tuple):
            assert info is None
        else:
            assert info is not None and info.server[1] == port
        await stream.aclose()
    finally:
        client.close()
        await multi.aclose()
