"""Request smuggling attempts against a live server, over real sockets.

Each shape below was once framed differently by our parser than by h11 and
llhttp: sent as one request whose body ends with a second request for
``/SMUGGLED``, the server answered two requests. Each is now sent both in
one write and trickled over many writes, and at most one request may reach
the application, never ``/SMUGGLED``. The control cases show that properly
framed pipelining still reaches the app, so the assertion can fail.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from server_helpers import read_body, read_until_close

pytestmark = pytest.mark.anyio

SMUGGLED = b"GET /SMUGGLED HTTP/1.1\r\nHost: a\r\n\r\n"


def _chunked(head_extra: bytes, body: bytes) -> bytes:
    return (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        + head_extra
        + b"\r\n"
        + body
    )


def _sized(head: bytes, body: bytes) -> bytes:
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


SHAPES: dict[str, tuple[bytes, int | None]] = {
    # name: (bytes on the wire, status the client must see, or None for a quiet close)
    "bare LF ends a chunk-size line": (
        _chunked(b"", b"5\nhello\r\n0\r\n\r\n" + SMUGGLED),
        400,
    ),
    "bare LF ends the last-chunk line": (
        _chunked(b"", b"5\r\nhello\r\n0\n\r\n" + SMUGGLED),
        400,
    ),
    "chunk size, space, then LF": (
        _chunked(b"", b"5 \nhello\r\n0\r\n\r\n" + SMUGGLED),
        400,
    ),
    "bare LF ends a chunk-extension line": (
        _chunked(b"", b"5;ext=1\nhello\r\n0\r\n\r\n" + SMUGGLED),
        400,
    ),
    "whitespace before the CRLF of a chunk-size line": (
        _chunked(b"", b"5 \r\nhello\r\n0\r\n\r\n" + SMUGGLED),
        400,
    ),
    "bare CR inside the head": (
        b"GET / HTTP/1.1\r\nHost: a\r\nX: y\rContent-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED,
        400,
    ),
    "Transfer-Encoding with a trailing comma": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n0\r\n\r\n" + SMUGGLED,
        400,
    ),
    "chunked plus a second, empty Transfer-Encoding field": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding:\r\n\r\n"
        b"0\r\n\r\n" + SMUGGLED,
        400,
    ),
    "Content-Length in the trailers": (
        _chunked(b"", b"0\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED),
        400,
    ),
    "Transfer-Encoding in the trailers": (
        _chunked(b"", b"0\r\nTransfer-Encoding: chunked\r\n\r\n" + SMUGGLED),
        400,
    ),
    "CONNECT with an origin-form target and a body": (
        _sized(b"CONNECT / HTTP/1.1\r\nHost: a\r\n", SMUGGLED),
        400,
    ),
    "CONNECT with an authority-form target and a body": (
        _sized(b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n", SMUGGLED),
        400,
    ),
    "HTTP/1.9 request line": (
        _sized(b"POST / HTTP/1.9\r\nHost: a\r\n", SMUGGLED),
        505,
    ),
    "head ended by bare LF, then a pipelined request": (
        b"GET / HTTP/1.1\r\nHost: a\n\n" + SMUGGLED,
        400,
    ),
    "head ended by LF CRLF, then a pipelined request": (
        b"GET / HTTP/1.1\r\nHost: a\n\r\n" + SMUGGLED,
        400,
    ),
    "head ended by bare LF, Content-Length body holding CRLF CRLF": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\n\n" % (len(SMUGGLED) + 4)
        + b"X\r\n\r\n"
        + SMUGGLED,
        400,
    ),
}


async def _send(stream: anyio.abc.SocketStream, data: bytes, piece: int) -> None:
    if piece >= len(data):
        await stream.send(data)
        return
    for start in range(0, len(data), piece):
        try:
            await stream.send(data[start : start + piece])
        except (anyio.BrokenResourceError, OSError):
            return  # refused early: the server has closed its side
        await anyio.sleep(0.002)  # separate reads on the server


async def _attack(serve: Any, data: bytes, piece: int) -> tuple[list[str], bytes]:
    paths: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        paths.append(scope["path"])
        await read_body(receive)
        body = scope["path"].encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async with serve(app, keepalive_timeout=1.0, header_timeout=1.0) as running:
        stream = await running.connect()
        await _send(stream, data, piece)
        try:
            await stream.send_eof()  # so the server's lingering close need not wait
        except (anyio.BrokenResourceError, OSError):
            pass
        raw = await read_until_close(stream, timeout=8)
    return paths, raw


@pytest.mark.parametrize("piece", [1 << 20, 7], ids=["one-write", "many-writes"])
@pytest.mark.parametrize("shape", list(SHAPES), ids=list(SHAPES))
async def test_smuggled_request_never_reaches_the_app(serve: Any, shape: str, piece: int) -> None:
    data, status = SHAPES[shape]
    paths, raw = await _attack(serve, data, piece)
    assert "/SMUGGLED" not in paths
    assert len(paths) <= 1
    assert raw.count(b"HTTP/1.1 ") <= 1
    if status is not None:
        assert raw.startswith(b"HTTP/1.1 %d " % status), raw[:60]


@pytest.mark.parametrize("piece", [1 << 20, 7], ids=["one-write", "many-writes"])
async def test_properly_framed_pipelining_still_reaches_the_app(serve: Any, piece: int) -> None:
    """The control: the same harness sees both requests when the framing is honest."""
    data = (
        _chunked(b"", b"5;ext=1\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n")
        + b"GET /second HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    paths, raw = await _attack(serve, data, piece)
    assert paths == ["/", "/second"]
    assert raw.count(b"HTTP/1.1 200 ") == 2


async def test_connect_with_authority_form_is_served_once_then_closed(serve: Any) -> None:
    """CONNECT ends the connection: whatever follows is never parsed as HTTP."""
    data = b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n" + SMUGGLED
    paths, raw = await _attack(serve, data, 1 << 20)
    assert paths == ["a.example:443"]
    assert raw.count(b"HTTP/1.1 ") == 1
