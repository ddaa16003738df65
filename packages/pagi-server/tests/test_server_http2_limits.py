"""HTTP/2 attacks and their bounds: Rapid Reset, floods, malformed and oversized headers.

Each test attacks a real server over a socket on 127.0.0.1 with a raw
``h2`` client, checks the bound (tasks, GOAWAY ENHANCE_YOUR_CALM, a stream
error only) and, where the connection is ended, that a warning names the
peer and the limit and that another connection is still served.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import anyio
import anyio.abc
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import httpx
import pytest
from h2_client import H2Client, h2_connections, request_headers, warnings_naming
from hyperframe.frame import (
    ContinuationFrame,
    HeadersFrame,
    PriorityFrame,
    WindowUpdateFrame,
)
from server_helpers import hello, read_body

pytestmark = pytest.mark.anyio

ErrorCodes = h2.errors.ErrorCodes
SettingCodes = h2.settings.SettingCodes


async def _still_serves(running: Any) -> None:
    """A fresh connection gets its answer while (or after) another was attacked."""
    async with httpx.AsyncClient(http1=False, http2=True, timeout=5) as other:
        response = await other.get(running.url + "/hello")
    assert response.status_code == 200 and response.text == "hello"


def _local_port(stream: anyio.abc.SocketStream) -> int:
    return int(stream.extra(anyio.abc.SocketAttribute.local_port))


# --- settings --------------------------------------------------------------------------


@pytest.mark.parametrize("stream_window", [100_000, 16_384])
async def test_settings_advertise_the_configured_limits(serve: Any, stream_window: int) -> None:
    options = {
        "h2_max_concurrent_streams": 7,
        "h2_initial_stream_window": stream_window,
        "h2_initial_connection_window": 3_000_000,
        "h2_max_frame_size": 32_768,
        "h2_max_header_list_size": 20_000,
    }
    async with serve(hello, **options) as running:
        client = H2Client(await running.connect())
        await client.start()

        def announced(seen: list[Any]) -> bool:
            windows = [e for e in seen if isinstance(e, h2.events.WindowUpdated)]
            settings = [e for e in seen if isinstance(e, h2.events.RemoteSettingsChanged)]
            return bool(windows) and bool(settings)

        await client.until(announced)
        remote = client.conn.remote_settings
        assert remote.max_concurrent_streams == 7
        assert remote.initial_window_size == stream_window
        assert remote.max_frame_size == 32_768
        assert remote.max_header_list_size == 20_000
        update = next(e for e in client.seen if isinstance(e, h2.events.WindowUpdated))
        assert update.stream_id == 0 and update.delta == 3_000_000 - 65_535
        sid = await client.request(request_headers(b"/hello"))
        await client.until(lambda seen: sid in client.ended())
        assert client.statuses()[sid] == b"200"


# --- Rapid Reset (CVE-2023-44487) --------------------------------------------------------


class _Apps:
    """An app whose requests ignore their disconnect and keep their task (a slow handler)."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.release = anyio.Event()
        self.all_done = anyio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/hello":
            await hello(scope, receive, send)
            return
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            with anyio.move_on_after(10):
                await self.release.wait()
        finally:
            self.running -= 1
            if not self.running:
                self.all_done.set()


async def test_reset_streams_keep_counting_until_their_app_finishes(serve: Any) -> None:
    """Tasks per connection never exceed h2_max_concurrent_streams, reset or not."""
    apps = _Apps()
    async with serve(apps, h2_max_concurrent_streams=10, shutdown_timeout=0.5) as running:
        client = H2Client(await running.connect())
        await client.start()
        first = []
        for _ in range(30):  # one write each, so every app that may start does
            first.append(await client.request(request_headers(b"/slow")))
        refused = await client.until(lambda seen: len(client.resets()) >= 20)
        del refused
        resets = client.resets()
        assert set(resets.values()) == {ErrorCodes.REFUSED_STREAM}
        assert apps.running == 10
        started = [sid for sid in first if sid not in resets]
        for sid in started:  # the client gives up on them: their apps still run
            client.conn.reset_stream(sid, ErrorCodes.CANCEL)
        await client.flush()
        later = [await client.request(request_headers(b"/slow")) for _ in range(10)]
        await client.until(lambda seen: all(sid in client.resets() for sid in later))
        assert all(client.resets()[sid] == ErrorCodes.REFUSED_STREAM for sid in later)
        assert apps.peak == 10
        apps.release.set()
        # Once the apps are done, the connection serves again.
        with anyio.fail_after(5):
            await apps.all_done.wait()
        sid = await client.request(request_headers(b"/hello"))
        await client.until(lambda seen: sid in client.ended())
        assert client.statuses()[sid] == b"200"
        assert client.goaway() is None


async def test_rapid_reset_ends_with_goaway_enhance_your_calm(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    apps = _Apps()
    caplog.set_level(logging.WARNING, logger="pagi.server")
    async with serve(
        apps, h2_max_resets_per_window=100, h2_max_concurrent_streams=10, shutdown_timeout=0.5
    ) as running:
        stream = await running.connect()
        port = _local_port(stream)
        client = H2Client(stream)
        await client.start()
        sent = 0
        for round_no in range(100):
            # Open and reset streams in the same write (the app never starts) and
            # in separate writes (it does); both count.
            for _ in range(5):
                sid = client.conn.get_next_available_stream_id()
                client.conn.send_headers(sid, request_headers(b"/slow"), end_stream=True)
                if round_no % 2:
                    await client.flush()
                client.conn.reset_stream(sid, ErrorCodes.CANCEL)
                sent += 1
            await client.flush()
            if client.broken:
                break
            await anyio.sleep(0)
        await client.until_closed()
        goaway = client.goaway()
        assert goaway is not None and goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
        assert apps.peak <= 10
        await _still_serves(running)
    lines = warnings_naming(caplog, "h2_max_resets_per_window")
    assert lines and f":{port}" in lines[0]


# --- malformed and oversized requests ------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [(b":method", "GÉT".encode()), (b":scheme", "htt\u00e9p".encode()), (b":method", b"G T")],
)
async def test_bad_method_or_scheme_resets_only_that_stream(
    serve: Any, field: bytes, value: bytes
) -> None:
    async with serve(hello) as running:
        client = H2Client(await running.connect(), validate=False)
        await client.start()
        headers = [(n, value if n == field else v) for n, v in request_headers()]
        bad = await client.request(headers)
        await client.until(lambda seen: bad in client.resets())
        assert client.resets()[bad] == ErrorCodes.PROTOCOL_ERROR
        good = await client.request(request_headers())
        await client.until(lambda seen: good in client.ended())
        assert client.statuses()[good] == b"200"
        assert client.goaway() is None


_BASE = request_headers()
_MALFORMED: dict[str, list[tuple[bytes, bytes]]] = {
    "upper-case name": [*_BASE, (b"X-Upper", b"1")],
    "connection field": [*_BASE, (b"connection", b"keep-alive")],
    "te other than trailers": [*_BASE, (b"te", b"gzip")],
    "leading space in value": [*_BASE, (b"x-a", b" v")],
    "CR in value": [*_BASE, (b"x-a", b"a\rb")],
    "NUL in value": [*_BASE, (b"x-a", b"a\x00b")],
    "pseudo after regular": [*_BASE[:3], (b"x-a", b"1"), _BASE[3]],
    "repeated :path": [*_BASE, (b":path", b"/again")],
    "unknown pseudo": [(b":foo", b"x"), *_BASE],
    ":status in a request": [(b":status", b"200"), *_BASE],
    "no :path": [h for h in _BASE if h[0] != b":path"],
    "no :scheme": [h for h in _BASE if h[0] != b":scheme"],
    "host differs from :authority": [*_BASE, (b"host", b"elsewhere.test")],
}


async def test_malformed_requests_are_stream_errors(serve: Any) -> None:
    """RFC 9113 8.1.1: RST_STREAM PROTOCOL_ERROR for each; the connection serves on."""
    async with serve(hello) as running:
        client = H2Client(await running.connect(), validate=False)
        await client.start()
        sids = {name: await client.request(headers) for name, headers in _MALFORMED.items()}
        good = await client.request(request_headers())
        await client.until(lambda seen: good in client.ended())
        await client.until(lambda seen: set(sids.values()) <= set(client.resets()))
        resets = client.resets()
        assert {name: resets[sid] for name, sid in sids.items()} == dict.fromkeys(
            _MALFORMED, ErrorCodes.PROTOCOL_ERROR
        )
        assert client.statuses() == {good: b"200"}
        assert client.goaway() is None


@pytest.mark.parametrize("shape", ["count", "size"])
async def test_header_limits_give_431_on_h2(serve: Any, shape: str) -> None:
    """--max-header-count and --max-header-size hold for HTTP/2 header lists too."""
    if shape == "count":
        extra = tuple((b"x-h%d" % i, b"v") for i in range(11))
    else:
        extra = ((b"x-big", b"v" * 1500),)
    async with serve(hello, max_header_count=10, max_header_size=1000) as running:
        client = H2Client(await running.connect())
        await client.start()
        bad = await client.request(request_headers(extra=extra))
        await client.until(lambda seen: bad in client.ended())
        good = await client.request(request_headers())
        await client.until(lambda seen: good in client.ended())
        assert client.statuses() == {bad: b"431", good: b"200"}
        assert client.goaway() is None


async def test_continuation_chain_past_the_header_list_size_ends_the_connection(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pagi.server")
    async with serve(hello, h2_max_header_list_size=4096) as running:
        client = H2Client(await running.connect())
        await client.start()
        head = HeadersFrame(1, data=b"\x00" * 1000)  # never decoded: refused on size
        chain = [ContinuationFrame(1, data=b"\x00" * 1000) for _ in range(50)]
        await client.send_raw(head, *chain)
        await client.until_closed()
        goaway = client.goaway()
        assert goaway is not None and goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
        await _still_serves(running)
    assert warnings_naming(caplog, "h2_max_header_list_size")


async def test_hpack_bomb_past_the_header_list_size_ends_the_connection(serve: Any) -> None:
    """A small block that decodes to more than h2_max_header_list_size (indexed repeats)."""
    async with serve(hello, h2_max_header_list_size=16_384) as running:
        client = H2Client(await running.connect())
        await client.start()
        bomb = tuple((b"x-bomb", b"a" * 3000) for _ in range(20))  # 60 KB decoded
        await client.request(request_headers(extra=bomb))
        await client.until_closed()
        goaway = client.goaway()
        assert goaway is not None and goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM


async def test_oversized_frame_is_refused_at_its_header(serve: Any) -> None:
    """A frame longer than h2_max_frame_size ends the connection before its payload arrives."""
    async with serve(hello) as running:
        client = H2Client(await running.connect())
        await client.start()
        # Only the 9-byte header of a 1 MiB DATA frame: nothing is buffered for it.
        await client.send_raw((1 << 20).to_bytes(3, "big") + b"\x00\x00\x00\x00\x00\x01")
        await client.until_closed()
        goaway = client.goaway()
        assert goaway is not None and goaway.error_code == ErrorCodes.FRAME_SIZE_ERROR


# --- control-frame floods ------------------------------------------------------------


async def _flood(client: H2Client, kind: str, count: int) -> None:
    conn = client.conn
    if kind == "ping":
        for i in range(count):
            conn.ping(i.to_bytes(8, "big"))
        await client.flush()
    elif kind == "settings":
        for _ in range(count):
            conn.update_settings({SettingCodes.ENABLE_PUSH: 0})
        await client.flush()
    elif kind == "empty-data":
        sid = await client.request(request_headers(b"/echo", b"POST"), end=False)
        for _ in range(count):
            conn.send_data(sid, b"")
        await client.flush()
    elif kind == "continuation":
        chain = [ContinuationFrame(1) for _ in range(count)]
        await client.send_raw(HeadersFrame(1), *chain)
    elif kind == "window-update-closed":
        sid = await client.request(request_headers(b"/hello"))
        await client.until(lambda seen: sid in client.ended())
        updates = []
        for _ in range(count):
            frame = WindowUpdateFrame(sid)
            frame.window_increment = 1
            updates.append(frame)
        await client.send_raw(*updates)
    elif kind == "priority":
        frames = [PriorityFrame(1001 + 2 * i, depends_on=0, stream_weight=16) for i in range(count)]
        await client.send_raw(*frames)
    elif kind == "unknown-frames":
        # type 0xf0, no flags, stream 0, a one-byte payload
        await client.send_raw(b"\x00\x00\x01\xf0\x00\x00\x00\x00\x00x" * count)
    else:
        raise AssertionError(kind)


async def _echo(scope: Any, receive: Any, send: Any) -> None:
    if scope["path"] == "/echo":
        body = await read_body(receive)
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": body})
    else:
        await hello(scope, receive, send)


@pytest.mark.parametrize(
    "kind",
    [
        "ping",
        "settings",
        "empty-data",
        "continuation",
        "window-update-closed",
        "priority",
        "unknown-frames",
    ],
)
async def test_control_frame_flood_ends_with_goaway(
    serve: Any, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    caplog.set_level(logging.WARNING, logger="pagi.server")
    async with serve(_echo, h2_max_control_frames_per_window=50) as running:
        stream = await running.connect()
        port = _local_port(stream)
        client = H2Client(stream)
        await client.start()
        await _flood(client, kind, 60)
        await client.until_closed()
        goaway = client.goaway()
        assert goaway is not None and goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
        await _still_serves(running)
    lines = warnings_naming(caplog, "h2_max_control_frames_per_window")
    assert lines and f":{port}" in lines[0]


async def test_control_frames_within_the_limit_are_served(serve: Any) -> None:
    async with serve(_echo, h2_max_control_frames_per_window=50) as running:
        client = H2Client(await running.connect())
        await client.start()
        await _flood(client, "ping", 40)
        sid = await client.request(request_headers(b"/hello"))
        await client.until(lambda seen: sid in client.ended())
        acks = [e for e in client.seen if isinstance(e, h2.events.PingAckReceived)]
        assert len(acks) == 40 and client.goaway() is None


async def test_ping_flood_that_never_reads_the_acks_stops_the_reader(serve: Any) -> None:
    """With no flood limit, the server stops reading once its ACKs fill the outbox."""
    async with serve(_echo, h2_max_control_frames_per_window=0, shutdown_timeout=0.5) as running:
        # A plain blocking socket in a thread: nothing on the client side reads.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        sock.connect((running.host, running.port))
        client = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        client.initiate_connection()
        sid = client.get_next_available_stream_id()
        client.send_headers(sid, request_headers(b"/echo", b"POST"))  # held open
        batch = b"".join(
            (8).to_bytes(3, "big") + b"\x06\x00\x00\x00\x00\x00" + i.to_bytes(8, "big")
            for i in range(1000)
        )

        def flood() -> int:
            sock.sendall(client.data_to_send())
            sock.settimeout(0.5)
            for sent in range(2000):  # at most 2M PINGs; the server stops long before
                try:
                    sock.sendall(batch)
                except TimeoutError:
                    return sent
            return -1

        try:
            batches = await anyio.to_thread.run_sync(flood)
            assert batches > 0, "the server kept reading PINGs nobody read the ACKs of"
            (conn,) = h2_connections(running)
            assert conn.outbox.buffered <= conn.outbox.high + 128 * 1024
            assert sid in conn.streams
        finally:
            sock.close()
