"""The sans-IO HTTP/1.x request parser, byte by byte (RFC 9112)."""

from __future__ import annotations

import pytest

from pagi.server.protocols.http1_parser import (
    ChunkedReader,
    LengthReader,
    ParseError,
    RequestHead,
    parse_head,
)

LIMITS = {"max_line": 100, "max_head": 400, "max_fields": 10, "max_body": 1000}


def parse(data: bytes) -> RequestHead | None:
    return parse_head(bytearray(data), **LIMITS)


def status_of(data: bytes) -> int:
    with pytest.raises(ParseError) as info:
        parse(data)
    return info.value.status


def test_simple_head_and_leftover_stays_in_buffer() -> None:
    buf = bytearray(b"GET /a?b HTTP/1.1\r\nHost: x\r\nX-A:  v  \r\n\r\nNEXT")
    head = parse_head(buf, **LIMITS)
    assert head is not None
    assert (head.method, head.target, head.http_version) == ("GET", b"/a?b", "1.1")
    assert head.headers == [(b"host", b"x"), (b"x-a", b"v")]
    assert head.keep_alive and head.content_length is None and not head.chunked
    assert buf == b"NEXT"


def test_incomplete_head_returns_none_and_consumes_nothing() -> None:
    buf = bytearray(b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert parse_head(buf, **LIMITS) is None
    assert buf == b"GET / HTTP/1.1\r\nHost: x\r\n"


def test_bare_lf_is_accepted_and_bare_cr_rejected() -> None:
    head = parse(b"GET / HTTP/1.1\nHost: x\n\n")
    assert head is not None and head.headers == [(b"host", b"x")]
    assert status_of(b"GET / HTTP/1.1\r\nHost: x\rY: 1\r\n\r\n") == 400


def test_leading_empty_lines_are_ignored() -> None:
    assert parse(b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n") is not None


def test_limits_apply_to_partial_heads() -> None:
    assert status_of(b"GET /" + b"a" * 200) == 414
    assert status_of(b"GET / HTTP/1.1\r\n" + b"X: " + b"y" * 500) == 431
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(11))
    assert status_of(b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n") == 431


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nName : x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\tfold\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
        (b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET relative HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n", 413),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 413),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked"
            b"\r\n\r\n",
            400,
        ),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ],
)
def test_rejections(data: bytes, status: int) -> None:
    assert status_of(data) == status


def test_framing_and_connection_semantics() -> None:
    head = parse(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n"
        b"Connection: close\r\nExpect: 100-continue\r\n\r\n"
    )
    assert head is not None and head.chunked and not head.keep_alive and head.expect_continue
    old = parse(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert old is not None and old.keep_alive and old.http_version == "1.0"
    assert not parse(b"GET / HTTP/1.0\r\n\r\n").keep_alive  # type: ignore[union-attr]
    upgrade = parse(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
        b"Upgrade: websocket\r\n\r\n"
    )
    assert upgrade is not None and upgrade.upgrade == b"websocket"
    assert parse(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n") is not None
    assert parse(b"GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n") is not None


def test_length_reader_takes_only_its_bytes() -> None:
    buf = bytearray(b"helloGET")
    reader = LengthReader(5)
    assert reader.read(buf) == (b"hello", True)
    assert buf == b"GET"


def test_chunked_reader_incremental_with_extensions_and_trailers() -> None:
    reader = ChunkedReader()
    buf = bytearray()
    out = b""
    wire = b"3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT"
    finished = False
    for i in range(len(wire)):
        buf += wire[i : i + 1]
        data, finished = reader.read(buf)
        out += data
        if finished:
            break
    assert finished and out == b"abc0123456789"
    assert wire.endswith(b"\r\n\r\n" + bytes(buf)) or buf == b""


@pytest.mark.parametrize(
    "wire",
    [
        b"5\r\nhelloXX0\r\n\r\n",  # data not followed by CRLF (server-digest 8.4)
        b"zz\r\n",
        b"-1\r\n",
        b"0\r\nBad Trailer\r\n\r\n",
        b"11111111111111111\r\n",
    ],
)
def test_chunked_reader_rejects_bad_framing(wire: bytes) -> None:
    with pytest.raises(ParseError) as info:
        ChunkedReader().read(bytearray(wire))
    assert info.value.status == 400


def test_chunked_trailers_are_bounded() -> None:
    with pytest.raises(ParseError) as info:
        ChunkedReader(max_trailers=50).read(bytearray(b"0\r\n" + b"X: " + b"y" * 100))
    assert info.value.status == 431
