"""Accepting connections: a burst waiting in the backlog is taken in one wake-up, and a
cancelled accept (the drain cancels the accept loop) takes no connection it then drops."""

from __future__ import annotations

import asyncio
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


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_cancelled_accept_leaves_the_connection_queued(anyio_backend: str) -> None:
    """Cancelled in the event-loop turn in which the socket became readable.

    With ``loop.sock_accept`` the reader callback of that same turn accepted
    the connection after the waiting future was cancelled, could not hand it
    over ("Exception in callback ..._sock_accept") and dropped it: its client
    got a reset (one or two failed requests per rolling restart in
    bench/chaos.py).
    """
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    listener = multi.listeners[0]
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    scopes: list[anyio.CancelScope] = []
    results: list[object] = []
    client: socket.socket | None = None

    async def waiting() -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            results.append(await accept(listener))

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiting)
            await anyio.wait_all_tasks_blocked()  # accept() waits: nothing is queued
            client = socket.create_connection(("127.0.0.1", port))
            client.sendall(b"ping")
            # Runs first in the next turn, before that turn's reader callbacks.
            asyncio.get_running_loop().call_soon(scopes[0].cancel)
        assert results == []  # cancelled, and it took nothing
        with anyio.fail_after(2):
            streams = await accept(listener)
        assert len(streams) == 1
        assert await streams[0].receive() == b"ping"
        await streams[0].aclose()
    finally:
        if client is not None:
            client.close()
        await multi.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_reads_stay_below_the_malloc_mmap_threshold(anyio_backend: str) -> None:
    """asyncio's selector transport reads 256 KiB at a time unless told otherwise.

    A read above glibc's initial mmap threshold (128 KiB) raises the threshold
    once freed, and the heap then fragments: RSS crept up under bench/soak.py.
    """
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    listener = multi.listeners[0]
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    client = socket.create_connection(("127.0.0.1", port))
    try:
        (stream,) = await accept(listener)
        transport = stream._transport  # type: ignore[attr-defined]
        if hasattr(transport, "max_size"):  # the selector transport; uvloop has its own
            assert transport.max_size < 128 * 1024
        await stream.aclose()
    finally:
        client.close()
        await multi.aclose()
