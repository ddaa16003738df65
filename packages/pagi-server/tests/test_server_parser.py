"""The sans-IO HTTP/1.x request parser, byte by byte (RFC 9112).

The smuggling shapes here are the ones a live server was once caught
framing differently from h11 and llhttp; each must be refused the same way
however its bytes are split into reads. The live counterparts, over real
sockets, are in test_server_smuggling.py; the differential fuzzing in
test_server_parser_fuzz.py.
"""

from __future__ import annotations

import itertools

import pytest

from pagi.server.protocols.http1_parser import (
    ChunkedReader,
    HeadParser,
    LengthReader,
    ParseError,
    RequestHead,
)

LIMITS = {"max_line": 100, "max_head": 400, "max_fields": 10, "max_body": 1000}


def parse_head(buf: bytearray, **limits: int) -> RequestHead | None:
    return HeadParser(**limits).parse(buf)


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


def test_bare_lf_and_bare_cr_are_rejected() -> None:
    # Decision (server README): RFC 9112 2.2 lets a server accept a bare LF,
    # but a front end that does not would see another message boundary.
    assert status_of(b"GET / HTTP/1.1\nHost: x\n\n") == 400
    assert status_of(b"GET / HTTP/1.1\r\nHost: x\n\r\n") == 400
    assert status_of(b"GET / HTTP/1.1\r\nHost: x\rY: 1\r\n\r\n") == 400
    assert status_of(b"GET / HTTP/1.1\r\nHost: x\r\r\n\r\n") == 400
    # Decided as soon as the lone byte is known, without waiting for the end.
    assert status_of(b"GET / HTTP/1.1\r\nHost: x\n") == 400
    assert status_of(b"GET / HTTP/1.1\r\nHost: x\rY") == 400
    assert parse(b"GET / HTTP/1.1\r\nHost: x\r") is None  # its LF may still come


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
        (b"GET / HTTP/1.9\r\nHost: a\r\n\r\n", 505),
        (b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505),
        (b"GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400),
        (b"GET / http/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET a.example:443 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"CONNECT / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", 400),
        (b"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"CONNECT a.example:443 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", 400),
        (b"CONNECT a.example:443 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
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
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n", 400),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
            b"Transfer-Encoding:\r\n\r\n",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 501),
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
    te = parse(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \t CHUNKED \r\n\r\n")
    assert te is not None and te.chunked
    connect = parse(b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n")
    assert connect is not None and connect.connect and not connect.keep_alive
    assert parse(b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n") is not None
    assert parse(b"GET / HTTP/1.1\r\nHost:\r\n\r\n") is not None  # empty Host: RFC 9112 3.2


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
    # Fed one byte at a time, the reader finishes on the trailers' last byte and leaves
    # nothing behind; fed whole, it leaves exactly what follows the message.
    assert i == len(wire) - len(b"NEXT") - 1 and buf == b""
    whole = bytearray(wire)
    assert ChunkedReader().read(whole) == (b"abc0123456789", True)
    assert whole == b"NEXT"


@pytest.mark.parametrize(
    "wire",
    [
        b"5\r\nhelloXX0\r\n\r\n",  # data not followed by CRLF (server-digest 8.4)
        b"zz\r\n",
        b"-1\r\n",
        b"0\r\nBad Trailer\r\n\r\n",
        b"11111111111111111\r\n",
        # Every line of a chunked body ends in CRLF, nothing else (smuggling shapes).
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhello\r\n0\n\r\n",
        b"5 \nhello\r\n0\r\n\r\n",
        b"5 \r\nhello\r\n0\r\n\r\n",
        b"5;ext\nhello\r\n0\r\n\r\n",
        b"5;ext=1 \r\nhello\r\n0\r\n\r\n",
        b"5\r\nhello\r\n0\r\n\n",
        b"5\r\nhello\r\n0\r\nX: 1\n\r\n",
        b"5\r\nhello\r\n0\r\nX: 1\r\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"\r\n",
        # Fields that would reframe the message are refused in trailers.
        b"0\r\nContent-Length: 5\r\n\r\n",
        b"0\r\nTransfer-Encoding: chunked\r\n\r\n",
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


def test_chunked_trailers_keep_fields_and_drop_routing_ones() -> None:
    reader = ChunkedReader()
    buf = bytearray(b'2;a="q \\" x";b\r\nhi\r\n0\r\nX-Sum: 1\r\nHost: evil\r\n\r\nNEXT')
    assert reader.read(buf) == (b"hi", True)
    assert reader.trailers == [(b"x-sum", b"1")]
    assert buf == b"NEXT"


def test_chunk_extension_whitespace_is_refused() -> None:
    # RFC 9112 7.1.1 has BWS around ";" and "=", but h11 and llhttp both refuse
    # it; we refuse too (server README, "deliberate differences").
    for line in (b"2 ;a=b", b"2; a=b", b"2;a =b", b"2;a= b"):
        with pytest.raises(ParseError):
            ChunkedReader().read(bytearray(line + b"\r\nhi\r\n0\r\n\r\n"))


SEGMENTED = [
    b"GET / HTTP/1.1\r\nHost: a\n\nGET /SMUGGLED HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\n\r\nGET /SMUGGLED HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 40\n\n"
    b"X\r\n\r\nGET /SMUGGLED HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: \rGET /SMUGGLED HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /" + b"a" * 150 + b"\r\n",
    b"GET / HTTP/1.1\r\n" + b"X: " + b"y" * 500,
    b"GET /" + b"a" * 98 + b"\r HTTP/1.1\r\n\r\n",
]


def _outcome_in_reads(data: bytes, cuts: list[int]) -> object:
    parser = HeadParser(**LIMITS)
    buf = bytearray()
    bounds = [0, *cuts, len(data)]
    try:
        for lo, hi in itertools.pairwise(bounds):
            buf += data[lo:hi]
            head = parser.parse(buf)
            if head is not None:
                return (head.method, head.target, bytes(buf))
    except ParseError as exc:
        return exc.status
    return None


@pytest.mark.parametrize("data", SEGMENTED)
def test_same_bytes_parse_the_same_however_split(data: bytes) -> None:
    whole = _outcome_in_reads(data, [])
    assert _outcome_in_reads(data, list(range(1, len(data)))) == whole
    for cut in range(1, len(data)):
        assert _outcome_in_reads(data, [cut]) == whole, cut


def test_trickled_head_costs_linear_time() -> None:
    import time

    fields = b"".join(b"X-Field-%d: %s\r\n" % (i, b"v" * 40) for i in range(4000))
    data = b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n"
    limits = {"max_line": 1 << 20, "max_head": 1 << 22, "max_fields": 1 << 20, "max_body": 0}

    def whole() -> float:
        began = time.perf_counter()
        assert HeadParser(**limits).parse(bytearray(data)) is not None
        return time.perf_counter() - began

    def trickled() -> float:
        parser = HeadParser(**limits)
        buf = bytearray()
        began = time.perf_counter()
        for i in range(len(data)):
            buf.append(data[i])
            head = parser.parse(buf)
        assert head is not None
        return time.perf_counter() - began

    # Per byte the trickled parse does a constant amount of work; one byte at
    # a time still costs Python call overhead, so compare against a generous
    # per-byte budget rather than against the one-shot parse alone.
    per_byte = min(trickled() for _ in range(2)) / len(data)
    assert per_byte < 20e-6, per_byte
    assert whole() < 0.5
