"""A strict, sans-IO HTTP/1.x request parser: heads and body framing.

Theory of operation
-------------------
The server reads into one ``bytearray``; the parser looks at it and consumes
what it uses, so pipelined requests simply stay in the buffer.

* :class:`HeadParser` finds the end of a request head, validates it against
  RFC 9112 and the configured limits, and returns a :class:`RequestHead`
  (or ``None`` when the head is not complete yet). It remembers how far it
  has looked, so a head that trickles in byte by byte costs the same as one
  that arrives at once: every byte is scanned a bounded number of times.
  Limits are checked on the *partial* head too: a request line that grows
  past its limit is a 414 and a head past its limit a 431 as soon as the
  bytes arrive, not after a terminator that may never come.
* :class:`ChunkedReader` and :class:`LengthReader` take body bytes off the
  buffer; the chunked one is a small state machine that checks every line
  ending and reads (and bounds) trailer fields, so no byte of a body can be
  mistaken for the next request.

Every rejection is a :class:`ParseError` carrying the status the client
gets (400, 413, 414, 431, 501, 505) and a short reason.

One grammar, however the bytes arrive
-------------------------------------
Request smuggling lives in the places where two parsers disagree about
where a message ends. The rules below are chosen so that there is exactly
one answer, and so that it never depends on how the bytes were split into
reads:

* Every line of a head, a chunk-size line, the last-chunk line and every
  trailer line ends in CRLF. A bare LF is refused (RFC 9112 section 2.2
  lets a server accept it, but a front end that does not would see a
  different message boundary), and so is a bare CR anywhere (section 2.2
  again). The head ends at the first empty line, CRLF CRLF.
* ``Transfer-Encoding`` is accepted only as exactly one ``chunked`` coding
  (case-insensitive) across all its fields; empty list members, repeats and
  other codings are refused. ``Content-Length`` must be one field of plain
  digits, never alongside ``Transfer-Encoding`` (section 6.3).
* Framing and routing fields in trailers (``Content-Length``,
  ``Transfer-Encoding``, ``Host`` and the other fields RFC 9110 section
  6.5.1 forbids there) are never honoured: framing fields refuse the
  request, the others are dropped.
* The version is exactly ``HTTP/1.0`` or ``HTTP/1.1`` (anything else that
  looks like a version is a 505), targets are visible ASCII, and
  ``CONNECT`` takes an authority-form target and no body.

Why not h11? h11 is an excellent general parser, but a server needs a few
things it does not do (reject ``Content-Length`` together with
``Transfer-Encoding``, reject duplicate identical ``Content-Length``,
reject obs-fold, tell 414 from 431 while bytes arrive), and those meant
scanning every head a second time. Parsing once, here, is both stricter and
about three times cheaper per request. The parser is differentially fuzzed
against h11 and llhttp (tests/test_server_parser_fuzz.py); the differences
we keep on purpose are listed in the package README.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from pagi.server.streams.dispatch import split_tokens

__all__ = [
    "H2_PREFACE",
    "ChunkedReader",
    "HeadParser",
    "LengthReader",
    "ParseError",
    "RequestHead",
    "split_tokens",
]

_TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_REQUEST_LINE = re.compile(rb"(" + _TCHAR + rb"+) ([\x21-\x7e]+) HTTP/1\.([01])")
_VERSION_SHAPE = re.compile(_TCHAR + rb"+ [\x21-\x7e]+ HTTP/[0-9]\.[0-9]")
_FIELD = re.compile(rb"(" + _TCHAR + rb"+):[ \t]*(.*?)[ \t]*")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
#: A whole field line in a block of them: the same grammar as ``_FIELD`` plus its CRLF.
#: The value's trailing whitespace is stripped afterwards (a lazy match costs more).
_FIELD_LINE = re.compile(rb"(?m)^(" + _TCHAR + rb"+):[ \t]*([^\r\n]*)\r\n")
#: A control character in a field block other than the CR LF that end lines.
_BAD_IN_BLOCK = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: The request fields the parser acts on; the rest are only passed along.
_SPECIAL_FIELDS = frozenset(
    (
        b"content-length",
        b"transfer-encoding",
        b"host",
        b"connection",
        b"upgrade",
        b"expect",
        b"accept",
    )
)
_DIGITS = re.compile(rb"[0-9]{1,18}")
_HOST = re.compile(rb"[A-Za-z0-9\-._~%!$&'()*+,;=]*(:[0-9]*)?|\[[0-9A-Fa-f:.]+\](:[0-9]*)?")
_AUTHORITY = re.compile(rb"([A-Za-z0-9\-._~%!$&'()*+,;=]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}")
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
# chunk = chunk-size *( ";" name [ "=" ( token / quoted-string ) ] ). RFC 9112
# 7.1.1 allows whitespace (BWS) around ";" and "=", but h11 and llhttp both
# refuse any whitespace after the size; accepting what every common front
# end refuses buys nothing and is one more place to disagree, so we refuse too.
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})(?:;" + _TCHAR + rb"+(?:=(?:" + _TCHAR + rb"+|" + _QUOTED + rb"))?)*"
)

#: Trailer fields that would change how the message is framed: their presence refuses it.
_FRAMING_TRAILERS = frozenset({b"content-length", b"transfer-encoding"})
#: Fields RFC 9110 section 6.5.1 keeps out of trailers; dropped, never acted on.
_FORBIDDEN_TRAILERS = frozenset(
    {
        b"host",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"upgrade",
        b"expect",
        b"max-forwards",
        b"range",
        b"if-match",
        b"if-none-match",
        b"if-modified-since",
        b"if-unmodified-since",
        b"if-range",
        b"cache-control",
        b"authorization",
        b"proxy-authorization",
        b"cookie",
        b"set-cookie",
        b"content-type",
        b"content-encoding",
        b"content-range",
    }
)


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
    connect: bool = False  # a CONNECT request: nothing after it is parsed as HTTP


_LONE_CR_OR_LF = re.compile(rb"\r(?!\n)|(?<!\r)\n")


def _first_lone(buf: bytearray, start: int, stop: int, decided: int) -> tuple[int, str] | None:
    """The first lone CR or LF in ``buf[start:stop]``, as (decision position, reason).

    A lone LF is known at its own position, a lone CR once the byte after it
    is there (``decided`` is the first position not yet received). Counting
    with the C string routines settles the common case (every CR and every
    LF belongs to one CRLF) without a per-byte loop; only a head that has a
    lone one is searched for where it is.
    """
    pairs_after = buf.count(b"\r\n", start, stop + 1)
    pairs_before = buf.count(b"\r\n", max(0, start - 1), stop)
    if buf.count(b"\r", start, stop) == pairs_after and buf.count(b"\n", start, stop) == (
        pairs_before
    ):
        return None
    for match in _LONE_CR_OR_LF.finditer(buf, start, stop):
        pos = match.start()
        if buf[pos] == 13:  # CR
            if pos + 1 >= decided:
                continue  # its LF may still come
            return pos + 1, "Bare CR in request head"
        return pos, "Bare LF in request head"
    return None


class HeadParser:
    """Parses request heads off a connection's buffer, one after another.

    One instance serves a whole connection. While a head arrives it keeps
    how far it has checked, so each byte is looked at a bounded number of
    times however the head is split into reads; it forgets that when the head
    is complete, so the next pipelined head starts afresh.

    Errors are found in the order of the byte that decides them, on a
    partial head and on a complete one alike, so the same bytes get the same
    answer however they arrive: a lone CR or LF at its position, a request
    line with no CRLF by ``max_line`` as 414, a head with no end by
    ``max_head`` as 431.
    """

    __slots__ = (
        "_lf_from",
        "_line_end",
        "_scanned",
        "_trip",
        "max_body",
        "max_fields",
        "max_head",
        "max_line",
    )

    def __init__(self, *, max_line: int, max_head: int, max_fields: int, max_body: int) -> None:
        self.max_line = max_line
        self.max_head = max_head
        self.max_fields = max_fields
        self.max_body = max_body
        self._scanned = 0  # bytes of the pending head already checked
        self._line_end = -1  # where the pending head's request line ends, once known
        self._lf_from = 0  # where to look for the next LF
        self._trip = min(max_line + 1, max_head + 3)  # past this size a limit is decided

    def parse(self, buf: bytearray) -> RequestHead | None:
        """Parse and consume one request head from ``buf``; ``None`` if incomplete."""
        size = len(buf)
        start = self._lf_from
        if size <= self._trip:
            # Nothing new can be decided unless an LF arrived (a head, and
            # every line in it, ends in one) or a CR got a byte after it that
            # could make it a lone one, or a limit was crossed. Skipping the
            # checks then keeps a trickled head cheap and changes no answer.
            if size - start == 1:  # one new byte: the common trickle, no scan
                if buf[start] != 10 and (not start or buf[start - 1] != 13):
                    self._lf_from = size
                    return None
            elif buf.find(b"\n", start) < 0 and buf.find(b"\r", max(0, start - 1), size - 1) < 0:
                self._lf_from = size
                return None
        if not self._scanned:
            # RFC 9112 2.2: empty lines (CRLF) before a request line are ignored.
            while buf[:2] == b"\r\n":
                del buf[:2]
        start = self._scanned
        end = buf.find(b"\r\n\r\n", max(0, start - 3))
        # Bytes whose line endings can be judged now: up to the CRLF that ends
        # the last field line, or all that arrived.
        stop = len(buf) if end < 0 else end + 2
        error = self._first_error(buf, start, stop, end)
        if error is not None:
            self._reset()
            raise ParseError(*error)
        if end < 0:
            self._scanned = max(0, stop - 1)  # a trailing CR is judged next time
            self._lf_from = len(buf)
            if self._line_end >= 0:
                self._trip = self.max_head + 3
            return None
        self._reset()
        raw = bytes(buf[:end])
        del buf[: end + 4]
        return self._parse_head(raw)

    def _reset(self) -> None:
        self._scanned = 0
        self._line_end = -1
        self._lf_from = 0
        self._trip = min(self.max_line + 1, self.max_head + 3)

    def _first_error(
        self, buf: bytearray, start: int, stop: int, end: int
    ) -> tuple[int, str] | None:
        found: list[tuple[int, int, str]] = []  # (deciding position, status, reason)
        lone = _first_lone(buf, start, stop, len(buf) if end < 0 else stop)
        if lone is not None:
            found.append((lone[0], 400, lone[1]))
        if self._line_end < 0:
            crlf = buf.find(b"\r\n", max(0, start - 1), stop)
            if crlf >= 0:
                self._line_end = crlf
            elif len(buf) > self.max_line + 1:
                crlf = len(buf)  # no end of line yet, and already too long
            if crlf > self.max_line:
                found.append((self.max_line + 1, 414, "Request line too long"))
        if (end < 0 and len(buf) > self.max_head + 3) or end > self.max_head:
            found.append((self.max_head + 3, 431, "Request header fields too large"))
        if not found:
            return None
        _, status, reason = min(found)
        return status, reason

    def _parse_head(self, raw: bytes) -> RequestHead:
        """Parse a complete head (without its final CRLF CRLF), whose line endings are checked."""
        line_end = raw.find(b"\r\n")
        if line_end < 0:
            return self._parse_lines(raw, [], b"")
        block = raw[line_end + 2 :] + b"\r\n"
        # One regex pass over all field lines; it must account for every line
        # and the block must hold no control character, else the per-line path
        # decides (and words the error). Both accept exactly the same fields.
        found: list[tuple[bytes, bytes]] = _FIELD_LINE.findall(block)
        if len(found) == block.count(b"\r\n") and _BAD_IN_BLOCK.search(block) is None:
            fields = [(name.lower(), value.rstrip(b" \t")) for name, value in found]
            return self._parse_lines(raw[:line_end], fields, block)
        return self._parse_lines(raw[:line_end], None, block)

    def _parse_lines(
        self, request_line: bytes, fields: list[tuple[bytes, bytes]] | None, block: bytes
    ) -> RequestHead:
        match = _REQUEST_LINE.fullmatch(request_line)
        if match is None:
            if _VERSION_SHAPE.fullmatch(request_line) is not None:
                raise ParseError(505, "HTTP version not supported")
            raise ParseError(400, "Malformed request line")
        method_b, target, minor = match.groups()
        version = "1.0" if minor == b"0" else "1.1"
        if fields is None:
            lines = block[:-2].split(b"\r\n")
            if len(lines) > self.max_fields:
                raise ParseError(431, "Too many header fields")
            fields = _fields_line_by_line(lines)
        elif len(fields) > self.max_fields:
            raise ParseError(431, "Too many header fields")

        headers = fields
        content_length: int | None = None
        transfer_encoding: list[bytes] | None = None
        host: bytes | None = None
        hosts = 0
        connection: list[bytes] = []
        upgrade = b""
        expect = b""
        accept = b""
        for name, value in headers:
            if name not in _SPECIAL_FIELDS:
                continue
            if name == b"content-length":
                if content_length is not None:
                    raise ParseError(400, "Duplicate Content-Length")
                if _DIGITS.fullmatch(value) is None:
                    if value.isdigit():
                        raise ParseError(413, "Content-Length too large")
                    raise ParseError(400, "Invalid Content-Length")
                content_length = int(value)
            elif name == b"transfer-encoding":
                if transfer_encoding is None:
                    transfer_encoding = []
                transfer_encoding.append(value)
            elif name == b"host":
                hosts += 1
                host = value
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
        if host is None:
            if version == "1.1":
                raise ParseError(400, "Missing Host header")
        elif _HOST.fullmatch(host) is None:
            raise ParseError(400, "Invalid Host header")
        chunked = False
        if transfer_encoding is not None:
            chunked = _check_transfer_encoding(transfer_encoding)
            if content_length is not None:
                raise ParseError(400, "Both Content-Length and Transfer-Encoding")
            if version == "1.0":
                raise ParseError(400, "Transfer-Encoding in an HTTP/1.0 request")
        if content_length is not None and self.max_body and content_length > self.max_body:
            raise ParseError(413, "Request body too large")
        method = method_b.decode("ascii")
        connect = method == "CONNECT"
        if connect:
            # RFC 9112 3.2.3: authority-form, and only for CONNECT. A body on
            # CONNECT has no defined meaning (RFC 9110 9.3.6); peers treat the
            # bytes after the head as a tunnel, so we refuse rather than guess.
            if _AUTHORITY.fullmatch(target) is None:
                raise ParseError(400, "CONNECT needs an authority-form target")
            if chunked or content_length:
                raise ParseError(400, "CONNECT request with a body")
        elif not (
            target[:1] == b"/"
            or (target == b"*" and method == "OPTIONS")
            or target[:7].lower() == b"http://"
            or target[:8].lower() == b"https://"
        ):
            raise ParseError(400, "Invalid request target")
        if connect:
            keep_alive = False
        elif version == "1.1":
            keep_alive = b"close" not in connection
        else:
            keep_alive = b"keep-alive" in connection and b"close" not in connection
        return RequestHead(
            method=method,
            target=target,
            http_version=version,
            headers=headers,
            content_length=content_length,
            chunked=chunked,
            keep_alive=keep_alive,
            expect_continue=version == "1.1" and expect.lower() == b"100-continue",
            upgrade=upgrade if b"upgrade" in connection else b"",
            accept=accept,
            connect=connect,
        )


def _fields_line_by_line(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    """The field lines one at a time (names lower-cased): the path that words the errors."""
    fields = []
    for line in lines:
        field = _FIELD.fullmatch(line)
        if field is None:
            if line[:1] in (b" ", b"\t"):
                raise ParseError(400, "Obsolete line folding is not accepted")
            raise ParseError(400, "Malformed header field")
        value = field.group(2)
        if _BAD_VALUE.search(value) is not None:
            raise ParseError(400, "Control character in a header value")
        fields.append((field.group(1).lower(), value))
    return fields


def _check_transfer_encoding(values: list[bytes]) -> bool:
    """Accept exactly one ``chunked`` coding across all Transfer-Encoding fields.

    RFC 9112 6.1: chunked must be the final coding, and we decode no other,
    so the only framing we can agree on with every other parser is the
    plain one. Anything with an empty member (``chunked,``, an empty field)
    or a repeat is malformed (400); an unknown coding is 501.
    """
    members = [m.strip(b" \t").lower() for m in b",".join(values).split(b",")]
    if any(m != b"chunked" for m in members if m):
        raise ParseError(501, "Unsupported Transfer-Encoding")
    if len(members) != 1 or not members[0]:
        raise ParseError(400, "Invalid Transfer-Encoding")
    return True


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


class _Chunk(enum.Enum):
    SIZE = "size"  # a chunk-size line (or the last-chunk line)
    DATA = "data"  # chunk data
    DATA_END = "data_end"  # the CRLF after chunk data
    TRAILERS = "trailers"  # trailer field lines up to an empty line
    DONE = "done"


class ChunkedReader:
    """A chunked body (RFC 9112 section 7.1), strictly framed.

    Every line (chunk size, last chunk, trailer field, the final empty line)
    must end in CRLF and nothing else; a line that is still arriving is
    bounded (``max_line`` for a size line, ``max_trailers`` for the trailer
    section) and is searched only where new bytes arrived.

    Trailer fields that would reframe the message (``Content-Length``,
    ``Transfer-Encoding``) refuse it with 400; the other fields RFC 9110
    section 6.5.1 keeps out of trailers are dropped. What is left is in
    :attr:`trailers`.
    """

    __slots__ = (
        "_max_line",
        "_max_trailers",
        "_remaining",
        "_scanned",
        "_state",
        "_trailer_bytes",
        "trailers",
    )

    def __init__(self, *, max_line: int = 4096, max_trailers: int = 16384) -> None:
        self._state = _Chunk.SIZE
        self._remaining = 0
        self._max_line = max_line
        self._max_trailers = max_trailers
        self._trailer_bytes = 0
        self._scanned = 0  # bytes of the pending line already searched for its end
        self.trailers: list[tuple[bytes, bytes]] = []

    def _take_line(self, buf: bytearray, limit: int, what: str) -> bytes | None:
        """The next CRLF-ended line off ``buf`` (without its CRLF), or ``None`` yet."""
        nl = buf.find(b"\n", self._scanned)
        if nl < 0:
            if len(buf) > limit + 1:
                raise ParseError(431 if self._state is _Chunk.TRAILERS else 400, f"{what} too long")
            self._scanned = len(buf)
            return None
        self._scanned = 0
        if nl == 0 or buf[nl - 1] != 13:
            raise ParseError(400, f"{what} not ended by CRLF")
        if nl - 1 > limit:
            raise ParseError(431 if self._state is _Chunk.TRAILERS else 400, f"{what} too long")
        line = bytes(buf[: nl - 1])
        del buf[: nl + 1]
        if b"\r" in line:
            raise ParseError(400, f"Bare CR in {what.lower()}")
        return line

    def read(self, buf: bytearray) -> tuple[bytes, bool]:
        """Take what is available off ``buf``; return ``(data, finished)``."""
        out: list[bytes] = []
        while True:
            state = self._state
            if state is _Chunk.DATA:
                take = min(self._remaining, len(buf))
                if take:
                    out.append(bytes(buf[:take]))
                    del buf[:take]
                    self._remaining -= take
                if self._remaining:
                    break
                self._state = _Chunk.DATA_END
            elif state is _Chunk.DATA_END:
                if len(buf) < 2:
                    if buf and buf[0] != 13:  # a lone CR may still get its LF
                        raise ParseError(400, "Malformed chunk: missing CRLF after data")
                    break
                if buf[:2] != b"\r\n":
                    raise ParseError(400, "Malformed chunk: missing CRLF after data")
                del buf[:2]
                self._state = _Chunk.SIZE
            elif state is _Chunk.SIZE:
                line = self._take_line(buf, self._max_line, "Chunk size line")
                if line is None:
                    break
                match = _CHUNK_LINE.fullmatch(line)
                if match is None:
                    raise ParseError(400, "Malformed chunk size line")
                size = int(match.group(1), 16)
                if size == 0:
                    self._state = _Chunk.TRAILERS
                else:
                    self._remaining = size
                    self._state = _Chunk.DATA
            elif state is _Chunk.TRAILERS:
                room = self._max_trailers - self._trailer_bytes
                line = self._take_line(buf, room, "Trailer section")
                if line is None:
                    break
                self._trailer_bytes += len(line) + 2
                if not line:
                    self._state = _Chunk.DONE
                    return b"".join(out), True
                self._add_trailer(line)
            else:
                return b"".join(out), True
        return b"".join(out), False

    def _add_trailer(self, line: bytes) -> None:
        field = _FIELD.fullmatch(line)
        if field is None or _BAD_VALUE.search(field.group(2)) is not None:
            raise ParseError(400, "Malformed trailer field")
        name = field.group(1).lower()
        if name in _FRAMING_TRAILERS:
            raise ParseError(400, "Framing field in trailers")
        if name not in _FORBIDDEN_TRAILERS:
            self.trailers.append((name, field.group(2)))
