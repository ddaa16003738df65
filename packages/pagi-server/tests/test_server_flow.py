"""``pagi.transport`` flow control on websocket and sse scopes, with a client that stops reading.

The client socket gets a tiny receive buffer and is not read, so the kernel
buffers fill and the server's outbox is the only place bytes can pile up.
Requirement ids: R-FLOW-1, R-FLOW-10..18.
"""

from __future__ import annotations

import socket
from typing import Any

import anyio
import pytest
from ws_client import WS_HEADERS

pytestmark = pytest.mark.anyio

CHUNK = 16384
HIGH = 65536
LOW = 16384


class Producer:
    """Shared state between the test and an app that writes as fast as it is allowed."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.highs: list[int] = []
        self.drains: list[int] = []
        self.sent = 0
        self.in_send_since: float | None = None
        self.max_buffered = 0
        self.stop = False
        self.done = anyio.Event()

    def watch(self, transport: Any) -> None:
        self.transport = transport
        transport.on_drain(lambda: self.drains.append(transport.buffered_amount()))
        assert self.drains == []  # never merely because the buffer is low (R-FLOW-15)
        transport.on_high_water(lambda: self.highs.append(transport.buffered_amount()))

    async def produce(self, send_one: Any) -> None:
        try:
            while not self.stop:
                self.in_send_since = anyio.current_time()
                await send_one()
                self.in_send_since = None
                self.sent += 1
                self.max_buffered = max(self.max_buffered, self.transport.buffered_amount())
        finally:
            self.done.set()

    async def wait_blocked(self) -> None:
        """Until a send has been pending for a while with the buffer at the high mark."""
        with anyio.fail_after(20):
            while True:
                since = self.in_send_since
                if since is not None and anyio.current_time() - since > 0.3 and self.highs:
                    return
                await anyio.sleep(0.02)


def slow_client(running: Any, request: bytes) -> socket.socket:
    """A plain blocking socket with a tiny receive buffer, read by nobody until we say so.

    (Not an event-loop stream: those read eagerly into their own buffers.)
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((running.host, running.port))
    sock.sendall(request)
    return sock


async def drain_forever(sock: socket.socket) -> None:
    sock.settimeout(0.2)

    def read_some() -> bool:
        try:
            return bool(sock.recv(65536))
        except TimeoutError:
            return True
        except OSError:
            return False

    while await anyio.to_thread.run_sync(read_some):
        pass


async def check_backpressure(producer: Producer, sock: socket.socket) -> None:
    await producer.wait_blocked()
    transport = producer.transport
    assert transport.high_water_mark() == HIGH and transport.low_water_mark() == LOW
    # R-FLOW-12: the pending send is parked at the high mark and stays there.
    assert transport.buffered_amount() >= HIGH
    assert producer.highs and min(producer.highs) >= HIGH
    # Hysteresis (R-FLOW-16): highs and drains alternate, so we are one high ahead now.
    assert len(producer.highs) == len(producer.drains) + 1
    drains = len(producer.drains)
    sent = producer.sent
    await anyio.sleep(0.3)
    assert producer.sent == sent
    assert len(producer.drains) == drains
    # R-FLOW-14: registering while above the mark fires at once.
    late: list[int] = []
    transport.on_high_water(lambda: late.append(1))
    assert late == [1]
    # Memory is bounded by the watermark: at most one message more than the mark.
    assert producer.max_buffered < HIGH + CHUNK + 64
    async with anyio.create_task_group() as tg:
        tg.start_soon(drain_forever, sock)
        with anyio.fail_after(20):
            while len(producer.drains) == drains:
                await anyio.sleep(0.01)
        # R-FLOW-15: the drain came when the buffer fell below the low mark.
        assert producer.drains[drains] < LOW
        assert len(producer.drains) <= len(producer.highs)
        with anyio.fail_after(20):
            while producer.sent < sent + 10:
                await anyio.sleep(0.01)
        producer.stop = True
        with anyio.fail_after(20):
            await producer.done.wait()
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


async def test_websocket_send_blocks_at_the_high_mark(serve: Any) -> None:
    producer = Producer()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        producer.watch(scope["pagi.transport"])
        await producer.produce(lambda: send({"type": "websocket.send", "bytes": b"x" * CHUNK}))

    async with serve(
        app,
        write_high_watermark=HIGH,
        write_low_watermark=LOW,
        ws_per_message_deflate=False,
        write_timeout=60,
    ) as running:
        request = b"GET / HTTP/1.1\r\nhost: x\r\n" + WS_HEADERS + b"\r\n"
        await check_backpressure(producer, slow_client(running, request))


async def test_sse_send_blocks_at_the_high_mark(serve: Any) -> None:
    producer = Producer()
    data = "y" * CHUNK

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "sse.start"})
        producer.watch(scope["pagi.transport"])
        await producer.produce(lambda: send({"type": "sse.send", "data": data}))

    async with serve(
        app, write_high_watermark=HIGH, write_low_watermark=LOW, write_timeout=60
    ) as running:
        request = b"GET / HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n"
        await check_backpressure(producer, slow_client(running, request))


async def test_write_timeout_ends_a_stalled_websocket(serve: Any) -> None:
    """A client that never reads is dropped after write_timeout: 1006 write_timeout."""
    events: list[dict[str, Any]] = []
    done = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        try:
            for _ in range(10_000):  # blocks at the high mark; no-ops once dropped
                await send({"type": "websocket.send", "bytes": b"z" * CHUNK})
            events.append(await receive())
        finally:
            done.set()

    async with serve(
        app, write_timeout=0.3, header_timeout=1, ws_per_message_deflate=False
    ) as running:
        request = b"GET / HTTP/1.1\r\nhost: x\r\n" + WS_HEADERS + b"\r\n"
        sock = slow_client(running, request)
        with anyio.fail_after(20):
            await done.wait()
        sock.close()
    assert events == [{"type": "websocket.disconnect", "code": 1006, "reason": "write_timeout"}]
