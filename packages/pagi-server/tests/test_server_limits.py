"""Malformed input, limits, smuggling attempts and slow clients (R-HERR-*, server-digest 8)."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
from server_helpers import hello, read_body, read_response, read_until_close

pytestmark = pytest.mark.anyio


async def _exchange(running: Any, data: bytes, timeout: float = 5.0) -> bytes:
    stream = await running.connect()
    try:
        await stream.send(data)
        return await read_until_close(stream, timeout)
    finally:
        await stream.aclose()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host on HTTP/1.1
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nFoo bar: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nFoo: x\r\n  folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked"
            b"\r\n\r\n0\r\n\r\n",
            400,
        ),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\nabc", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET nopath HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET / HTTP/9.9\r\nHost: a\r\n\r\n", 505),
    ],
)
async def test_malformed_requests_get_status_and_close_R_HERR_2(
    serve: Any, request_bytes: bytes, status: int
) -> None:
    called = False

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal called
        called = True
        await hello(scope, receive, send)

    async with serve(app) as running:
        raw = await _exchange(running, request_bytes)
    assert raw.startswith(b"HTTP/1.1 %d " % status), raw
    assert b"connection: close" in raw and b"content-type: text/plain" in raw
    assert not called


async def test_declared_body_over_limit_is_413_before_the_app_runs_R_HERR_3(serve: Any) -> None:
    called = False

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal called
        called = True

    async with serve(app, max_body_size=100) as running:
        raw = await _exchange(
            running, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n" + b"x" * 101
        )
    assert raw.startswith(b"HTTP/1.1 413 ") and not called


async def test_streamed_body_over_limit_is_413_and_body_too_large_R_HERR_3(serve: Any) -> None:
    reasons: list[str | None] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await read_body(receive)
        reasons.append(scope["pagi.connection"].disconnect_reason())

    async with serve(app, max_body_size=100) as running:
        stream = await running.connect()
        await stream.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        await stream.send(b"40\r\n" + b"x" * 64 + b"\r\n")
        await stream.send(b"40\r\n" + b"x" * 64 + b"\r\n")
        raw = await read_until_close(stream)
    assert raw.startswith(b"HTTP/1.1 413 ")
    assert reasons == ["body_too_large"]


async def test_long_request_line_is_414_while_bytes_arrive(serve: Any) -> None:
    async with serve(hello, max_request_line_size=1000) as running:
        stream = await running.connect()
        await stream.send(b"GET /" + b"a" * 5000)  # no line end, ever
        raw = await read_until_close(stream)
    assert raw.startswith(b"HTTP/1.1 414 ")


async def _send_until_answered(stream: Any, pieces: Any, pause: float) -> bytes:
    """Send pieces until the server answers; return everything it sends until it closes."""
    got = b""
    for piece in pieces:
        try:
            await stream.send(piece)
        except (anyio.BrokenResourceError, OSError):
            break
        with anyio.move_on_after(pause):
            got = await stream.receive()
        if got:
            break
    try:
        return got + await read_until_close(stream)
    except OSError:
        return got


async def test_endless_headers_are_431_without_waiting_for_the_end(serve: Any) -> None:
    async with serve(hello, max_header_size=4096) as running:
        stream = await running.connect()
        pieces = [b"GET / HTTP/1.1\r\nHost: a\r\n"]
        pieces += [b"X-Filler: " + b"y" * 1000 + b"\r\n"] * 100
        raw = await _send_until_answered(stream, pieces, 0.02)
    assert raw.startswith(b"HTTP/1.1 431 ")


async def test_too_many_header_fields_is_431(serve: Any) -> None:
    headers = b"".join(b"X-%d: 1\r\n" % i for i in range(30))
    async with serve(hello, max_header_count=20) as running:
        raw = await _exchange(running, b"GET / HTTP/1.1\r\nHost: a\r\n" + headers + b"\r\n")
    assert raw.startswith(b"HTTP/1.1 431 ")


async def test_bad_chunk_framing_is_rejected(serve: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await read_body(receive)
        await hello(scope, receive, send)

    async with serve(app) as running:
        raw = await _exchange(
            running,
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhelloXX0\r\n\r\n",
        )
    assert raw.startswith(b"HTTP/1.1 400 ")
    assert b"hello" not in raw.partition(b"\r\n\r\n")[2]


async def test_unread_body_is_never_parsed_as_a_request(serve: Any) -> None:
    """The desync the Perl server had (server-digest 8.1)."""
    paths: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        paths.append(scope["path"])
        await hello(scope, receive, send)

    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
    async with serve(app) as running:
        stream = await running.connect()
        await stream.send(
            b"POST /first HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
            + smuggled
            + b"GET /second HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        raw = await read_until_close(stream)
    assert paths == ["/first", "/second"]
    assert raw.count(b"HTTP/1.1 200") == 2


async def test_oversized_unread_body_closes_instead_of_draining(serve: Any) -> None:
    async with serve(hello, max_drain_size=1000) as running:
        stream = await running.connect()
        await stream.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n")
        await stream.send(b"x" * 5000)
        raw = await read_response(stream)
        assert raw.endswith(b"hello")
        with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError, OSError)):
            with anyio.fail_after(5):
                for _ in range(100):
                    await stream.send(b"x" * 5000)
                    await anyio.sleep(0.01)
                await stream.receive()


async def test_slowloris_head_gets_408_at_the_header_deadline(serve: Any) -> None:
    """A client trickling a head cannot keep its slot past header_timeout (server-digest 8.3)."""
    async with serve(hello, header_timeout=0.5) as running:
        stream = await running.connect()
        started = time.monotonic()
        head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"z" * 100
        raw = await _send_until_answered(stream, [bytes([c]) for c in head], 0.05)
        elapsed = time.monotonic() - started
    assert raw.startswith(b"HTTP/1.1 408 ")
    assert elapsed < 3


async def test_idle_keepalive_connection_is_closed(serve: Any) -> None:
    async with serve(hello, keepalive_timeout=0.3) as running:
        stream = await running.connect()
        await stream.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        first = await read_response(stream)
        started = time.monotonic()
        rest = await read_until_close(stream)
    assert first.endswith(b"hello") and rest == b""
    assert 0.2 < time.monotonic() - started < 3


async def test_silent_new_connection_is_closed_at_header_timeout(serve: Any) -> None:
    async with serve(hello, header_timeout=0.3) as running:
        stream = await running.connect()
        assert await read_until_close(stream) == b""


async def test_body_timeout_reports_client_timeout(serve: Any) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(await receive())
        seen.append(await receive())
        seen.append(scope["pagi.connection"].disconnect_reason())

    async with serve(app, body_timeout=0.3) as running:
        stream = await running.connect()
        await stream.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        raw = await read_until_close(stream)
    assert seen[0] == {"type": "http.request", "body": b"abc", "more": True}
    assert seen[1] == {"type": "http.disconnect"}
    assert seen[2] == "client_timeout"
    assert raw.startswith(b"HTTP/1.1 408 ")


async def test_max_connections_gets_503_with_retry_after(serve: Any) -> None:
    async with serve(hello, max_connections=1) as running:
        first = await running.connect()
        await first.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        await read_response(first)
        second = await running.connect()
        raw = await read_until_close(second)
        await first.aclose()
    assert raw.startswith(b"HTTP/1.1 503 ")
    assert b"retry-after: 5" in raw


async def test_stalled_reader_hits_write_timeout(serve: Any) -> None:
    """A client that stops reading cannot pin a response forever (write_timeout)."""
    reasons: list[str | None] = []
    done = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        conn = scope["pagi.connection"]
        await send({"type": "http.response.start", "status": 200})
        chunk = b"x" * 65536
        with anyio.fail_after(10):
            while conn.is_connected():
                await send({"type": "http.response.body", "body": chunk, "more": True})
        reasons.append(conn.disconnect_reason())
        done.set()

    async with serve(app, write_timeout=0.3) as running:
        stream = await running.connect()
        await stream.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        with anyio.fail_after(10):
            await done.wait()  # never reading a byte
    assert reasons == ["write_timeout"]
