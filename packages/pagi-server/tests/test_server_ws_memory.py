"""WebSocket receive queue: bounded in bytes by stopping reads, not only by message count.

An application that has not called ``receive()`` yet must not let a client
grow the server's memory: once ``max_receive_queue_bytes`` of decompressed
payload wait in the queue the server stops reading the socket (TCP
backpressure) and resumes when the app has taken the queue below half of
it. The message-count limit, ``max_receive_queue``, still closes with 1008.

Requirement ids: R-WSP-4 (1008 ``queue_overflow`` at the count cap),
R-WS-33 (its disconnect reason), R-WS-31 (a peer's Close after reading
resumes).
"""

from __future__ import annotations

import base64
import os
import select
import socket
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import anyio
import pytest
from server_subprocess import ServerProcess, free_port, write_app
from ws_client import RawWS

from pagi.server.cli import build_parser
from pagi.server.config import ConfigError, ServerConfig
from pagi.server.streams.websocket import WebSocketStream, payload_size

MiB = 1024 * 1024
KiB = 1024

# --- helpers -------------------------------------------------------------------------------


def mask(payload: bytes, key: bytes) -> bytes:
    """RFC 6455 5.3 client masking, done on integers so megabytes take milliseconds."""
    if not payload:
        return payload
    n = len(payload)
    keys = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(keys, "big")).to_bytes(n, "big")


def frame(opcode: int, payload: bytes, *, rsv1: bool = False, key: bytes | None = None) -> bytes:
    """One masked client frame with FIN set."""
    key = os.urandom(4) if key is None else key
    first = 0x80 | (0x40 if rsv1 else 0) | opcode
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first, 0x80 | size)
    elif size < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, size)
    return header + key + mask(payload, key)


def deflate_message(payload: bytes) -> bytes:
    """A permessage-deflate payload (RFC 7692 7.2.1) from a fresh compressor."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


def vm_rss(pid: int) -> int:
    """Resident set size of a process in bytes, from ``/proc/<pid>/status``."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


class Holder:
    """An app that accepts, parks until ``go`` is set, then records every event.

    It keeps the session's :class:`WebSocketStream` (the object behind
    ``receive``) so the test can look at the queue while the app is parked.
    """

    def __init__(self, *, close_instead: bool = False, keepalive: bool = False) -> None:
        self.go = anyio.Event()
        self.done = anyio.Event()
        self.events: list[dict[str, Any]] = []
        self.stream: WebSocketStream | None = None
        self.close_instead = close_instead
        self.keepalive = keepalive

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await receive()
            await send({"type": "websocket.accept"})
            self.stream = receive.__self__
            if self.keepalive:
                await send({"type": "websocket.keepalive", "interval": 0.1, "timeout": 0.3})
            await self.go.wait()
            if self.close_instead:
                await send({"type": "websocket.close", "code": 1000})
            while True:
                event = await receive()
                self.events.append(event)
                if event["type"] == "websocket.disconnect":
                    return
        finally:
            self.done.set()


def numbered(i: int, size: int, *, compressible: bool) -> bytes:
    """Message ``i``: its number, then filler that is zeros or a pattern of the number."""
    head = struct.pack("!I", i)
    if compressible:
        return head + bytes(size - 4)
    return (head * (size // 4 + 1))[:size]


async def flood_until_stalled(
    ws: RawWS, frames: list[bytes], holder: Holder, bound: int, max_message: int
) -> tuple[int, int, bool]:
    """Write ``frames`` until the queue is full and the writes make no progress for 0.5 s.

    Meanwhile the server must send nothing (no Close 1008). Then the app is
    let go (``holder.go``) and the writes finish. Returns the bytes written
    and whether every frame was written, both at the stall, and the peak of
    the queued bytes seen.
    """
    progress = [0, 0]  # bytes written, frames written

    async def writer() -> None:
        for data in frames:
            await ws.stream.send(data)
            progress[0] += len(data)
            progress[1] += 1

    peak = 0
    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        with anyio.fail_after(15):
            last, still_since = -1, anyio.current_time()
            while True:
                await anyio.sleep(0.05)
                if holder.stream is not None:
                    peak = max(peak, holder.stream.queued_bytes)
                    assert holder.stream.queued_bytes < bound + max_message
                if progress[0] != last:
                    last, still_since = progress[0], anyio.current_time()
                elif anyio.current_time() - still_since >= 0.5 or progress[1] == len(frames):
                    if peak >= bound:
                        break
            written, complete = progress[0], progress[1] == len(frames)
            await expect_no_close(ws)
            assert holder.stream is not None and holder.stream.backlogged
            holder.go.set()  # the app starts receiving: the writer can finish
    return written, peak, complete


async def expect_no_close(ws: RawWS, wait: float = 0.3) -> None:
    """Nothing but pings (in particular no Close) arrives from the server for ``wait`` s."""
    with anyio.move_on_after(wait):
        while True:
            frame_ = await ws.recv_frame(timeout=wait + 1)
            if frame_[1] != 0x9:
                raise AssertionError(f"unexpected frame from the server: {frame_!r}")


# --- backpressure over a real socket, in process ---------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflate"])
async def test_byte_bound_stops_reading_and_delivers_everything(serve: Any, deflate: bool) -> None:
    """Far more than the byte bound, sent before the app receives: no 1008, reads stop.

    The queue never holds more than the bound plus one message (counted
    after decompression in the deflate case); plain frames make the
    client's writes stall. Then the app receives every message, intact and
    in order, and pings and the closing handshake work (R-WS-31). The
    message-count limit (8) is never reached, since the byte bound stops
    reading at 5 messages.
    """
    bound, size, count = 1 * MiB, 256 * KiB, 96 if not deflate else 64
    holder = Holder()
    options = {
        "max_receive_queue_bytes": bound,
        "max_ws_message_size": size,
        "max_ws_frame_size": size,
        "max_receive_queue": 8,
    }
    extra = b"sec-websocket-extensions: permessage-deflate; client_no_context_takeover\r\n"
    messages = [numbered(i, size, compressible=deflate) for i in range(count)]
    if deflate:
        frames = [frame(0x2, deflate_message(m), rsv1=True) for m in messages]
    else:
        frames = [frame(0x2, m) for m in messages]
    async with serve(holder, **options) as running:
        ws, head = await RawWS.open(running, extra=extra if deflate else b"")
        assert head.startswith(b"HTTP/1.1 101")
        assert (b"permessage-deflate" in head.lower()) is deflate
        written, peak, complete = await flood_until_stalled(ws, frames, holder, bound, size)
        if not deflate:
            assert not complete, "the server read everything: no backpressure"
            assert written < sum(map(len, frames))
        else:
            assert complete  # a few KiB on the wire, 16 MiB decompressed
        assert bound <= peak < bound + size
        with anyio.fail_after(15):
            while len(holder.events) < count:
                await anyio.sleep(0.02)
        await ws.send_frame(0x9, b"still there?")
        _, opcode, payload, _ = await ws.recv_frame()
        assert (opcode, payload) == (0xA, b"still there?")
        await ws.close(1000)
        code, _ = await ws.recv_close()
        assert code == 1000
        await ws.expect_eof()
        with anyio.fail_after(5):
            await holder.done.wait()
    received = [e.get("bytes") for e in holder.events[:-1]]
    assert len(received) == count
    for i, data in enumerate(received):
        assert data == messages[i], f"message {i} differs"
    assert holder.events[-1] == {"type": "websocket.disconnect", "code": 1000, "reason": ""}


@pytest.mark.anyio
async def test_server_close_while_reading_is_paused(serve: Any) -> None:
    """The app closes while the queue is full: reading resumes, the peer's Close is read.

    The pause also outlasts the idle timeout and the pong deadline of the
    app's keepalive (the client never answers pings): neither fires while the
    server is not reading.
    """
    bound, size = 512 * KiB, 128 * KiB
    holder = Holder(close_instead=True, keepalive=True)
    frames = [frame(0x2, numbered(i, size, compressible=False)) for i in range(192)]
    options = {
        "max_receive_queue_bytes": bound,
        "max_ws_message_size": size,
        "ws_idle_timeout": 0.3,
    }
    async with serve(holder, **options) as running:
        ws, _ = await RawWS.open(running)
        _, peak, complete = await flood_until_stalled(ws, frames, holder, bound, size)
        assert not complete and bound <= peak < bound + size
        code, _ = await ws.recv_close()  # sent once the app woke; the rest was discarded
        assert code == 1000
        await ws.close(1000)
        await ws.expect_eof()
        with anyio.fail_after(5):
            await holder.done.wait()
    assert holder.events[-1] == {"type": "websocket.disconnect", "code": 1000, "reason": ""}
    # What was queued before the close is still delivered, never more than fit.
    assert all(e["type"] == "websocket.receive" for e in holder.events[:-1])
    assert sum(len(e["bytes"]) for e in holder.events[:-1]) < bound + size


@pytest.mark.anyio
async def test_message_count_limit_still_closes_1008(serve: Any) -> None:
    """R-WSP-4, R-WS-33: the count is the hard limit; small messages never reach the bytes."""
    holder = Holder()
    async with serve(holder, max_receive_queue=4, max_receive_queue_bytes=1 * MiB) as running:
        ws, _ = await RawWS.open(running)
        for i in range(10):
            await ws.send_frame(0x1, b"m%d" % i)
        code, reason = await ws.recv_close()
        assert (code, reason) == (1008, b"receive queue overflow")
        await ws.close(1008)
        await ws.expect_eof()
        holder.go.set()
        with anyio.fail_after(5):
            await holder.done.wait()
    assert [e.get("text") for e in holder.events[:-1]] == ["m0", "m1", "m2", "m3"]
    assert holder.events[-1] == {
        "type": "websocket.disconnect",
        "code": 1008,
        "reason": "queue_overflow",
    }


# --- the stream and the option, without a socket ---------------------------------------------


class _NoWire:
    async def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        pass

    async def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        pass

    async def send_message(self, data: str | bytes) -> None:
        pass

    async def close(self, code: int, reason: str) -> None:
        pass

    def keepalive(self, interval: float, timeout: float | None) -> None:
        pass


def _stream(max_queue: int = 100, max_queue_bytes: int = 100) -> WebSocketStream:
    scope: dict[str, Any] = {"headers": [], "extensions": {}}
    return WebSocketStream(
        scope, _NoWire(), transport=None, max_queue=max_queue, max_queue_bytes=max_queue_bytes
    )


def test_payload_size_counts_memory() -> None:
    assert payload_size(b"") == 0
    assert payload_size(b"\x00" * 1000) == 1000
    assert payload_size("a" * 1000) == 1000  # ASCII: its UTF-8 length
    assert payload_size("é" * 1000) >= 1000
    assert payload_size("€" * 1000) >= 2000
    assert payload_size("😀" * 1000) >= 4000


@pytest.mark.anyio
async def test_stream_backlogged_until_drained_to_half() -> None:
    stream = _stream(max_queue_bytes=100)
    assert await stream.receive() == {"type": "websocket.connect"}
    for _ in range(3):
        assert stream.feed_message(b"x" * 30)
    assert not stream.backlogged and stream.queued_bytes == 90
    assert stream.feed_message("y" * 30)  # the queue may pass the bound by one message
    assert stream.backlogged and stream.queued_bytes == 120
    resumed = anyio.Event()

    async def reader() -> None:
        await stream.wait_room()
        resumed.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        await anyio.wait_all_tasks_blocked()  # the reader waits for room
        assert (await stream.receive())["bytes"] == b"x" * 30
        assert (await stream.receive())["bytes"] == b"x" * 30
        await anyio.wait_all_tasks_blocked()
        assert not resumed.is_set()  # 60 bytes left: above half the bound
        await stream.receive()
        with anyio.fail_after(1):
            await resumed.wait()  # 30 left
    assert not stream.backlogged and stream.queued_bytes == 30


@pytest.mark.anyio
async def test_stream_end_releases_a_paused_reader() -> None:
    stream = _stream(max_queue_bytes=10)
    stream.feed_message(b"z" * 50)
    assert stream.backlogged
    async with anyio.create_task_group() as tg:
        tg.start_soon(stream.wait_room)
        await anyio.wait_all_tasks_blocked()  # the reader waits for room
        stream.disconnected(1001, "server_shutdown")
    assert not stream.backlogged  # the session is over: read on, to see the Close
    assert stream.feed_message(b"dropped")  # ignored, not queued
    assert stream.queued_bytes == 50


def test_max_receive_queue_bytes_option() -> None:
    default = ServerConfig()
    assert default.max_receive_queue_bytes == min(4 * default.max_ws_message_size, 64 * MiB)
    for bad in (0, -1):
        with pytest.raises(ConfigError, match="max_receive_queue_bytes"):
            ServerConfig(max_receive_queue_bytes=bad)
    args = build_parser().parse_args(["app:app", "--max-receive-queue-bytes", "1048576"])
    assert args.max_receive_queue_bytes == 1048576


# --- the attack, against a real pagi-server process ------------------------------------------

NEVER_RECEIVES = """
import anyio


async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    await anyio.sleep_forever()
"""


def test_deflate_flood_to_an_app_that_never_receives_stays_bounded(tmp_path: Path) -> None:
    """16 MiB of zeros per message, compressed to ~16 KiB, for 10 s: RSS grows < 150 MB.

    Before the byte bound, 4.2 MB on the wire queued 256 such messages (4 GiB).
    The test stops early, and fails, once growth passes the limit.
    """
    limit = 150 * 1000 * 1000
    write_app(tmp_path, "flood_app.py", NEVER_RECEIVES)
    port = free_port()
    server = ServerProcess(["flood_app.py", "--port", str(port), "--no-access-log"], tmp_path)
    sock = None
    try:
        server.wait_port(port)
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        key = base64.b64encode(os.urandom(16))
        sock.sendall(
            b"GET / HTTP/1.1\r\nhost: localhost\r\nupgrade: websocket\r\n"
            b"connection: Upgrade\r\nsec-websocket-version: 13\r\n"
            b"sec-websocket-key: " + key + b"\r\n"
            b"sec-websocket-extensions: permessage-deflate; client_no_context_takeover\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, "server closed during the handshake"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        assert b"permessage-deflate" in head.lower()
        time.sleep(0.2)
        before = vm_rss(server.proc.pid)

        wire = frame(0x2, deflate_message(bytes(16 * MiB)), rsv1=True)
        sock.setblocking(False)
        offset = 0
        sent = 0
        peak = before
        closed_by_server = False
        deadline = time.monotonic() + 10.0
        next_sample = 0.0
        while time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_sample:
                peak = max(peak, vm_rss(server.proc.pid))
                next_sample = now + 0.05
                if peak - before > limit:
                    break
            readable, writable, _ = select.select([sock], [sock], [], 0.05)
            if readable:
                try:
                    if not sock.recv(65536):
                        closed_by_server = True
                        break
                except OSError:
                    closed_by_server = True
                    break
            if writable:
                try:
                    offset += sock.send(wire[offset:])
                except BlockingIOError:
                    continue
                except OSError:
                    closed_by_server = True
                    break
                if offset == len(wire):
                    offset = 0
                    sent += 1
        peak = max(peak, vm_rss(server.proc.pid))
    finally:
        if sock is not None:
            sock.close()
        server.proc.kill()
        server.proc.wait(timeout=10)
    growth = peak - before
    print(f"messages sent: {sent}, RSS growth: {growth / 1e6:.1f} MB")
    assert growth < limit, f"RSS grew {growth / 1e6:.0f} MB after {sent} messages"
    assert not closed_by_server
