"""Accepting connections: a burst waiting in the backlog is taken in one wake-up."""

from __future__ import annotations

import socket

import anyio
import pytest

from pagi.server.net.stream import accept

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_burst_of_connections_is_accepted_at_once(anyio_backend: str) -> None:
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    listener = multi.listeners[0]
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
    try:
        await anyio.sleep(0.05)  # the kernel has completed the five handshakes
        streams = await accept(listener)
        assert len(streams) == 5
        for client in clients:
            client.sendall(b"ping")
        got = {await stream.receive() for stream in streams}
        assert got == {b"ping"}
        for stream in streams:
            await stream.aclose()
    finally:
        for client in clients:
            client.close()
        await multi.aclose()


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_accepts_one_at_a_time(anyio_backend: str) -> None:
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    listener = multi.listeners[0]
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    client = socket.create_connection(("127.0.0.1", port))
    try:
        streams = await accept(listener)
        assert len(streams) == 1
        await streams[0].aclose()
    finally:
        client.close()
        await multi.aclose()
