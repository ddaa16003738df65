"""A strict, sans-IO HTTP/1.x request parser: heads and body framing.

Theory of operation
-------------------
The server reads into one ``bytearray``; these functions look at it and
consume what they use, so pipelined requests simply stay in the buffer.

* :func:`parse_head` finds the end of a request head, validates it against
  RFC 9112 and the configured limits, and returns a :class:`RequestHead`
  (or ``None`` when the head is not complete yet). Limits are checked on
  the *partial* buffer too: a request line that grows past its limit is a
  414 and a head past its limit a 431 as soon as the bytes arrive, not
  after a terminator that may never come.
* :class:`ChunkedReader` and :class:`LengthReader` take body bytes off the
  buffer; the chunked one is a small state machine that checks every CRLF
  and reads (and bounds) trailer fields, so no byte of a body can ever be
  mistaken for the next request.

Every rejection is a :class:`ParseError` carrying the status the client
gets (400, 413, 414, 431, 501, 505) and a short reason.

Why not h11? h11 is an excellent general parser, but a server needs a few
things it does not do (reject ``Content-Length`` together with
``Transfer-Encoding``, reject duplicate identical ``Content-Length``,
reject obs-fold, tell 414 from 431 while bytes arrive), and those meant
scanning every head a second time. Parsing once, here, is both stricter and
about three times cheaper per request, which is most of a hello-world
request's cost. Responses are serialised by the driver.

Line endings: CRLF, and a bare LF is accepted as RFC 9112 section 2.2
allows; a bare CR anywhere in the head is rejected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "H2_PREFACE",
    "ChunkedReader",
    "LengthReader",
    "ParseError",
    "RequestHead",
    "parse_head",
    "split_tokens",
]

_REQUEST_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^\x00-\x20\x7f]+) HTTP/(\d)\.(\d)")
_FIELD = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_DIGITS = re.compile(rb"[0-9]{1,18}")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(;.*)?")


#: What a client sends first to speak HTTP/2 with prior knowledge (RFC 9113 3.4).
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class ParseError(Exception):
    """The request is refused with ``status``; ``reason`` goes in the response body."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class RequestHead:
    """A validated request head."""

    method: str
    target: bytes
    http_version: str  # "1.0" or "1.1"
    headers: list[tuple[bytes, bytes]]  # lower-case names, wire order, duplicates kept
    content_length: int | None
    chunked: bool
    keep_alive: bool
    expect_continue: bool
    upgrade: bytes  # the Upgrade value when Connection names "upgrade", else b""
    accept: bytes


def split_tokens(value: bytes) -> list[bytes]:
    """The lower-cased, trimmed items of a comma-separated header value."""
    return [t.strip().lower() for t in value.split(b",") if t.strip()]


def _find_head_end(buf: bytearray) -> tuple[int, int]:
    """(end of the last header line, index after the blank line) or (-1, -1)."""
    end = buf.find(b"\r\n\r\n")
    if end >= 0:
        return end, end + 4
    end = buf.find(b"\n\n")
    if end >= 0:
        return end, end + 2
    end = buf.find(b"\n\r\n")
    if end >= 0:
        return end, end + 3
    return -1, -1


def parse_head(
    buf: bytearray,
    *,
    max_line: int,
    max_head: int,
    max_fields: int,
    max_body: int,
) -> RequestHead | None:
    """Parse and consume one request head from ``buf``; ``None`` if incomplete."""
    # RFC 9112 2.2: ignore empty lines before a request line.
    while buf[:2] == b"\r\n" or buf[:1] == b"\n":
        del buf[: 2 if buf[:1] == b"\r" else 1]
    end, after = _find_head_end(buf)
    if end < 0:
        first_nl = buf.find(b"\n")
        if (first_nl < 0 and len(buf) > max_line) or first_nl > max_line:
            raise ParseError(414, "Request line too long")
        if len(buf) > max_head:
            raise ParseError(431, "Request header fields too large")
        return None
    if end > max_head:
        first_nl = buf.find(b"\n")
        if first_nl > max_line:
            raise ParseError(414, "Request line too long")
        raise ParseError(431, "Request header fields too large")
    raw = bytes(buf[:end])
    del buf[:after]
    lines = raw.split(b"\n")
    if b"\r" in raw:
        lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
        for line in lines:
            if b"\r" in line:
                raise ParseError(400, "Bare CR in request head")
    request_line = lines[0]
    if len(request_line) > max_line:
        raise ParseError(414, "Request line too long")
    match = _REQUEST_LINE.fullmatch(request_line)
    if match is None:
        raise ParseError(400, "Malformed request line")
    method_b, target, major, minor = match.groups()
    if major != b"1":
        raise ParseError(505, "HTTP version not supported")
    version = "1.0" if minor == b"0" else "1.1"
    if len(lines) - 1 > max_fields:
        raise ParseError(431, "Too many header fields")

    headers: list[tuple[bytes, bytes]] = []
    content_length: int | None = None
    transfer_encoding: list[bytes] | None = None
    hosts = 0
    connection: list[bytes] = []
    upgrade = b""
    expect = b""
    accept = b""
    for line in lines[1:]:
        field = _FIELD.fullmatch(line)
        if field is None:
            if line[:1] in (b" ", b"\t"):
                raise ParseError(400, "Obsolete line folding is not accepted")
            raise ParseError(400, "Malformed header field")
        name = field.group(1).lower()
        value = field.group(2)
        if _BAD_VALUE.search(value) is not None:
            raise ParseError(400, "Control character in a header value")
        headers.append((name, value))
        if name == b"content-length":
            if content_length is not None:
                raise ParseError(400, "Duplicate Content-Length")
            if _DIGITS.fullmatch(value) is None:
                if value.isdigit():
                    raise ParseError(413, "Content-Length too large")
                raise ParseError(400, "Invalid Content-Length")
            content_length = int(value)
        elif name == b"transfer-encoding":
            transfer_encoding = (transfer_encoding or []) + split_tokens(value)
        elif name == b"host":
            hosts += 1
        elif name == b"connection":
            connection += split_tokens(value)
        elif name == b"upgrade":
            upgrade = value
        elif name == b"expect":
            expect = value
        elif name == b"accept":
            accept = value if not accept else accept + b", " + value

    if hosts > 1:
        raise ParseError(400, "Duplicate Host header")
    if hosts == 0 and version == "1.1":
        raise ParseError(400, "Missing Host header")
    chunked = False
    if transfer_encoding is not None:
        if content_length is not None:
            raise ParseError(400, "Both Content-Length and Transfer-Encoding")
        if version == "1.0":
            raise ParseError(400, "Transfer-Encoding in an HTTP/1.0 request")
        if any(coding != b"chunked" for coding in transfer_encoding):
            raise ParseError(501, "Unsupported Transfer-Encoding")
        if len(transfer_encoding) != 1:
            raise ParseError(400, "Invalid Transfer-Encoding")
        chunked = True
    if content_length is not None and max_body and content_length > max_body:
        raise ParseError(413, "Request body too large")
    if not (
        target[:1] == b"/"
        or target == b"*"
        or target[:7].lower() == b"http://"
        or target[:8].lower() == b"https://"
    ):
        raise ParseError(400, "Invalid request target")
    if version == "1.1":
        keep_alive = b"close" not in connection
    else:
        keep_alive = b"keep-alive" in connection and b"close" not in connection
    return RequestHead(
        method=method_b.decode("ascii"),
        target=target,
        http_version=version,
        headers=headers,
        content_length=content_length,
        chunked=chunked,
        keep_alive=keep_alive,
        expect_continue=version == "1.1" and expect.lower() == b"100-continue",
        upgrade=upgrade if b"upgrade" in connection else b"",
        accept=accept,
    )


class LengthReader:
    """A body of known length (``Content-Length``)."""

    __slots__ = ("remaining",)

    def __init__(self, length: int) -> None:
        self.remaining = length

    def read(self, buf: bytearray) -> tuple[bytes, bool]:
        """Take body bytes off ``buf``; return ``(data, finished)``."""
        take = min(self.remaining, len(buf))
        data = bytes(buf[:take])
        del buf[:take]
        self.remaining -= take
        return data, self.remaining == 0


class ChunkedReader:
    """A chunked body (RFC 9112 section 7.1), strictly framed."""

    __slots__ = ("_max_line", "_max_trailers", "_remaining", "_state", "_trailer_bytes")

    def __init__(self, *, max_line: int = 4096, max_trailers: int = 16384) -> None:
        self._state = "size"  # size -> data -> crlf -> size ... -> trailers -> done
        self._remaining = 0
        self._max_line = max_line
        self._max_trailers = max_trailers
        self._trailer_bytes = 0

    def read(self, buf: bytearray) -> tuple[bytes, bool]:
        """Take what is available off ``buf``; return ``(data, finished)``."""
        out: list[bytes] = []
        while True:
            state = self._state
            if state == "data":
                take = min(self._remaining, len(buf))
                if take:
                    out.append(bytes(buf[:take]))
                    del buf[:take]
                    self._remaining -= take
                if self._remaining:
                    break
                self._state = "crlf"
            elif state == "crlf":
                if len(buf) < 2:
                    if bytes(buf[:1]) not in (b"", b"\r"):
                        raise ParseError(400, "Malformed chunk: missing CRLF after data")
                    break
                if buf[:2] != b"\r\n":
                    raise ParseError(400, "Malformed chunk: missing CRLF after data")
                del buf[:2]
                self._state = "size"
            elif state == "size":
                nl = buf.find(b"\n")
                if nl < 0:
                    if len(buf) > self._max_line:
                        raise ParseError(400, "Chunk size line too long")
                    break
                line = bytes(buf[:nl])
                del buf[: nl + 1]
                if line.endswith(b"\r"):
                    line = line[:-1]
                match = _CHUNK_SIZE.fullmatch(line)
                if match is None:
                    raise ParseError(400, "Malformed chunk size")
                size = int(match.group(1), 16)
                if size == 0:
                    self._state = "trailers"
                else:
                    self._remaining = size
                    self._state = "data"
            elif state == "trailers":
                nl = buf.find(b"\n")
                if nl < 0:
                    if self._trailer_bytes + len(buf) > self._max_trailers:
                        raise ParseError(431, "Trailer section too large")
                    break
                line = bytes(buf[:nl])
                del buf[: nl + 1]
                self._trailer_bytes += nl + 1
                if self._trailer_bytes > self._max_trailers:
                    raise ParseError(431, "Trailer section too large")
                if line.endswith(b"\r"):
                    line = line[:-1]
                if not line:
                    self._state = "done"
                    return b"".join(out), True
                if _FIELD.fullmatch(line) is None or _BAD_VALUE.search(line) is not None:
                    raise ParseError(400, "Malformed trailer field")
            else:
                return b"".join(out), True
        return b"".join(out), False
