"""HTTP/2 flow control, request-body backpressure and deadlines, over real sockets.

The request body is pulled: a stream's credit goes back to the client only
as its app reads, so unread bodies cost at most a window; bytes nobody will
read are credited at once so other uploads never stall; a client that goes
quiet is cut off by header_timeout, body_timeout or keepalive_timeout.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import pytest
from h2_client import H2Client, h2_connections, request_headers, warnings_naming
from hyperframe.frame import HeadersFrame
from server_helpers import hello, read_body

pytestmark = pytest.mark.anyio

ErrorCodes = h2.errors.ErrorCodes
KiB = 1024
MiB = 1024 * 1024


async def upload(client: H2Client, pending: dict[int, int], *, idle: float) -> int:
    """Send ``pending`` body bytes per stream as flow control allows; return bytes sent.

    Returns when every body is sent (or its stream ended or was reset by the
    server), or once nothing has moved for ``idle`` seconds (a stall).
    """
    conn = client.conn
    sent = 0
    while pending:
        progressed = False
        for sid, left in list(pending.items()):
            if sid in client.resets() or sid in client.ended():
                del pending[sid]  # the server has answered; it wants no more
                continue
            try:
                window = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            except h2.exceptions.ProtocolError:
                del pending[sid]
                continue
            size = min(window, left)
            if size > 0:
                conn.send_data(sid, b"x" * size, end_stream=size == left)
                sent += size
                progressed = True
                if size == left:
                    del pending[sid]
                else:
                    pending[sid] = left - size
        await client.flush()
        if not pending:
            break
        if not progressed:
            with anyio.move_on_after(idle) as scope:
                await client.receive_once()
            if scope.cancelled_caught or client.closed:
                return sent
    return sent


# --- credit for bytes nobody reads ---------------------------------------------------


async def test_unread_bodies_return_their_credit(serve: Any) -> None:
    """100 uploads of 100 KiB on one connection to an app that never reads: all answered."""
    answered = 0

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal answered
        answered += 1
        await hello(scope, receive, send)

    # The smallest connection window: without the credit, the second upload stalls.
    async with serve(app, h2_initial_connection_window=65535) as running:
        client = H2Client(await running.connect())
        await client.start()
        sids = []
        for _ in range(100):
            sid = await client.request(request_headers(b"/upload", b"POST"), end=False)
            sids.append(sid)
            await upload(client, {sid: 100 * KiB}, idle=2.0)
        await client.until(lambda seen: all(sid in client.ended() for sid in sids), timeout=10)
        assert answered == 100
        assert [client.statuses()[sid] for sid in sids] == [b"200"] * 100
        # Streams answered while the client was still sending were told to stop.
        assert set(client.resets().values()) <= {ErrorCodes.NO_ERROR}
        assert client.goaway() is None


# --- backpressure: credit returned as the app reads ------------------------------------


async def test_unread_body_buffers_at_most_the_stream_window(serve: Any) -> None:
    release = anyio.Event()
    lengths: dict[str, int] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await release.wait()  # does not read yet
        body = await read_body(receive)
        lengths[scope["path"]] = len(body)
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"%d" % len(body)})

    window = 32 * KiB
    async with serve(
        app, h2_initial_stream_window=window, h2_initial_connection_window=1 * MiB
    ) as running:
        client = H2Client(await running.connect())
        await client.start()
        await client.until(
            lambda seen: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in seen)
        )
        sids = [
            await client.request(request_headers(b"/%d" % i, b"POST"), end=False) for i in range(8)
        ]
        sent = await upload(client, dict.fromkeys(sids, 1 * MiB), idle=0.5)
        (conn,) = h2_connections(running)
        buffered = conn.buffered_body_bytes()
        # Each stream holds at most its window; nothing is credited back unread.
        assert sent == sum(buffered.values())
        assert all(0 < held <= window for held in buffered.values())
        release.set()
        await upload(client, {sid: 1 * MiB - buffered[sid] for sid in sids}, idle=5.0)
        await client.until(lambda seen: all(sid in client.ended() for sid in sids), timeout=10)
    assert lengths == {f"/{i}": 1 * MiB for i in range(8)}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


_HOLDING_APP = """
import anyio

async def app(scope, receive, send):
    if scope["path"] == "/hold":
        await anyio.sleep(60)  # never reads its body, never answers
        return
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": b"ok"})
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
async def test_unread_uploads_keep_rss_bounded(tmp_path: Path, anyio_backend: str) -> None:
    """100 streams x 10 MiB to a handler that never reads: the server's RSS grows < 150 MB."""
    app_file = tmp_path / "hold.py"
    app_file.write_text(_HOLDING_APP)
    port = _free_port()
    errors = (tmp_path / "server.err").open("wb")  # a file: nobody reads a pipe while we upload
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pagi.server",
            str(app_file),
            "--port",
            str(port),
            "--loop",
            "trio" if anyio_backend == "trio" else "asyncio",
            "--lifespan",
            "off",
            "--no-access-log",
            "--env",
            "production",
            "--quiet",
            "--shutdown-timeout",
            "1",
        ],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=errors,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    log = (tmp_path / "server.err").read_text()
                    raise AssertionError(f"the server did not listen on {port}: {log}") from None
                await anyio.sleep(0.05)  # poll interval of a deadline-bounded wait
        async with stream:
            client = H2Client(stream)
            await client.start()
            warm = await client.request(request_headers(b"/"))
            await client.until(lambda seen: warm in client.ended())
            before = _rss_kib(server.pid)
            sids = [
                await client.request(request_headers(b"/hold", b"POST"), end=False)
                for _ in range(100)
            ]
            sent = await upload(client, dict.fromkeys(sids, 10 * MiB), idle=1.0)
            after = _rss_kib(server.pid)
        growth_mb = (after - before) / 1024
        print(
            f"\nRSS {before / 1024:.1f} MB -> {after / 1024:.1f} MB (+{growth_mb:.1f} MB);"
            f" {sent / MiB:.2f} MiB accepted of 1000 MiB offered"
        )
        assert sent <= 1 * MiB  # the connection window: the rest waits for the app
        assert growth_mb < 150
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        errors.close()


# --- deadlines -----------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["no-end-headers", "partial-frame"])
async def test_unfinished_header_block_ends_the_connection(
    serve: Any, caplog: pytest.LogCaptureFixture, shape: str
) -> None:
    caplog.set_level(logging.WARNING, logger="pagi.server")
    async with serve(hello, header_timeout=0.3, keepalive_timeout=30) as running:
        client = H2Client(await running.connect())
        await client.start()
        # Settle the preface first: the client's SETTINGS ACK must not land in the block.
        await client.until(
            lambda seen: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in seen)
        )
        if shape == "no-end-headers":
            await client.send_raw(HeadersFrame(1, data=b"\x82"))  # no END_HEADERS, no more
        else:
            # The header of a 100-byte HEADERS frame and 10 bytes of it.
            await client.send_raw(b"\x00\x00\x64\x01\x05\x00\x00\x00\x01" + b"\x82" * 10)
        started = anyio.current_time()
        await client.until_closed(timeout=5)
        assert anyio.current_time() - started < 3
        assert client.goaway() is not None
    assert warnings_naming(caplog, "header_timeout")


async def test_stalled_body_resets_the_stream_and_disconnects_the_app(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pagi.server")
    events: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/hello":
            await hello(scope, receive, send)
            return
        while True:
            event = await receive()
            events.append(event)
            if event["type"] == "http.disconnect":
                return

    async with serve(app, body_timeout=0.3) as running:
        client = H2Client(await running.connect())
        await client.start()
        sid = await client.request(request_headers(b"/upload", b"POST"), b"0123456789", end=False)
        await client.until(lambda seen: sid in client.resets(), timeout=5)
        assert client.resets()[sid] == ErrorCodes.CANCEL
        other = await client.request(request_headers(b"/hello"))
        await client.until(lambda seen: other in client.ended())
        assert client.statuses()[other] == b"200"
    assert events[0] == {"type": "http.request", "body": b"0123456789", "more": True}
    assert events[-1]["type"] == "http.disconnect"
    assert warnings_naming(caplog, "body_timeout")


async def test_idle_connection_gets_goaway_after_keepalive_timeout(serve: Any) -> None:
    async with serve(hello, keepalive_timeout=0.3) as running:
        client = H2Client(await running.connect())
        await client.start()
        sid = await client.request(request_headers(b"/"))
        await client.until(lambda seen: sid in client.ended())
        started = anyio.current_time()
        await client.until_closed(timeout=5)
        assert anyio.current_time() - started < 3
        goaway = client.goaway()
        assert goaway is not None and goaway.error_code == ErrorCodes.NO_ERROR
        assert goaway.last_stream_id == sid


# --- fairness ----------------------------------------------------------------------


async def test_large_responses_share_the_connection(serve: Any) -> None:
    """Two big responses on one connection go out interleaved, not one after the other."""
    payload = b"y" * (1 * MiB)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": payload})

    async with serve(app) as running:
        client = H2Client(await running.connect())
        client.conn.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**30}
        )
        await client.start()
        client.conn.increment_flow_control_window(2**30)
        first = await client.request(request_headers(b"/a"))
        second = await client.request(request_headers(b"/b"))
        await client.until(lambda seen: {first, second} <= client.ended(), timeout=10)
    order = [e.stream_id for e in client.seen if isinstance(e, h2.events.DataReceived)]
    sizes = {
        sid: sum(
            len(e.data)
            for e in client.seen
            if isinstance(e, h2.events.DataReceived) and e.stream_id == sid
        )
        for sid in (first, second)
    }
    assert sizes == {first: 1 * MiB, second: 1 * MiB}
    # The second stream's first bytes arrive before the first stream's last ones.
    assert order.index(second) < len(order) - 1 - order[::-1].index(first)
