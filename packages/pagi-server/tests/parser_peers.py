"""Three HTTP/1.x request parsers behind one interface, for differential fuzzing.

Each adapter takes the bytes a client sent on one connection and says how
that parser frames them, as an :class:`Outcome`: the requests it saw (method,
target, body) and how the stream ended. Everything that only one parser
cares about (header names, trailers, keep-alive details) is left out, so two
outcomes can be compared field by field.

* :func:`frame_ours` drives ``HeadParser`` and the body readers exactly as
  the connection driver (``protocols/http1.py``) does, and can be fed the
  bytes in any number of reads.
* :func:`frame_h11` plays the server side of an ``h11.Connection``. h11 only
  reads the next request once a response has been sent, so after each
  request it answers with an empty 200 and starts the next cycle.
* :func:`frame_llhttp` feeds ``httptools.HttpRequestParser`` (llhttp).

"Stop" means the parser would no longer treat the rest of the connection as
HTTP requests: the connection closes after this request (``Connection:
close``, HTTP/1.0), or it becomes a tunnel (CONNECT, a protocol upgrade).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import h11
import httptools

from pagi.server.protocols.http1_parser import (
    ChunkedReader,
    HeadParser,
    LengthReader,
    ParseError,
    RequestHead,
)
from pagi.server.streams.dispatch import choose_scope_type

End = Literal["eof", "stop", "error"]

#: Limits for the fuzzed parser: far above what the generated requests need,
#: and the same 16 KiB head bound h11 applies by default.
FUZZ_LIMITS = {"max_line": 8192, "max_head": 16384, "max_fields": 100, "max_body": 0}


@dataclass(frozen=True)
class Seen:
    """One request as a parser framed it."""

    method: bytes
    target: bytes
    body: bytes
    complete: bool  # the body was read to its end (False: cut short by an error or EOF)


@dataclass(frozen=True)
class Outcome:
    """How one parser framed one connection's bytes.

    ``requests`` holds every request whose head was accepted, in order;
    ``end`` says what happened after the last of them: ``"eof"`` the bytes
    ran out (possibly in the middle of a message), ``"stop"`` the parser
    stopped reading requests on purpose, ``"error"`` it refused the bytes.
    A *rejected* outcome is an error before any request head was accepted.
    """

    requests: tuple[Seen, ...]
    end: End
    status: int | None = None  # ours only: the status of the ParseError
    reason: str = field(default="", compare=False)  # why it stopped or refused
    heads: tuple[object, ...] = ()  # ours only: the full heads, for the segmentation property

    @property
    def rejected(self) -> bool:
        return self.end == "error" and not self.requests

    @property
    def complete(self) -> int:
        """How many requests were framed to the end of their body."""
        return sum(1 for seen in self.requests if seen.complete)

    def describe(self) -> str:
        parts = [
            f"{s.method.decode('latin-1')} {s.target!r} body={s.body!r}"
            + ("" if s.complete else " (incomplete)")
            for s in self.requests
        ]
        tail = " ".join(str(x) for x in (self.end, self.status, self.reason) if x)
        return "; ".join([*parts, tail])


def _snapshot(head: RequestHead) -> tuple[object, ...]:
    return (
        head.method,
        head.target,
        head.http_version,
        tuple(head.headers),
        head.content_length,
        head.chunked,
        head.keep_alive,
        head.upgrade,
        head.connect,
    )


def stops_after(head: RequestHead) -> bool:
    """Whether the driver stops reading requests after this one (see ``H1Connection``).

    After CONNECT, after a WebSocket handshake (the connection switches, or
    closes if the handshake had a body still arriving) and when the
    connection is not kept alive, no further byte is parsed as HTTP.
    """
    scope_type = choose_scope_type(head.method, upgrade=head.upgrade, accept=head.accept)
    return head.connect or scope_type == "websocket" or not head.keep_alive


def frame_ours(reads: Iterable[bytes], limits: dict[str, int] | None = None) -> Outcome:
    """Frame the bytes, arriving as ``reads``, the way the connection driver does."""
    parser = HeadParser(**(limits or FUZZ_LIMITS))
    buf = bytearray()
    seen: list[Seen] = []
    heads: list[tuple[object, ...]] = []
    head: RequestHead | None = None
    reader: ChunkedReader | LengthReader | None = None
    body: list[bytes] = []

    def current(complete: bool) -> Seen:
        assert head is not None
        return Seen(head.method.encode(), head.target, b"".join(body), complete)

    try:
        for data in reads:
            buf += data
            while buf:
                if head is None:
                    head = parser.parse(buf)
                    if head is None:
                        break
                    heads.append(_snapshot(head))
                    body = []
                    if head.chunked:
                        reader = ChunkedReader()
                    elif head.content_length:
                        reader = LengthReader(head.content_length)
                    else:
                        reader = None
                if reader is not None:
                    chunk, finished = reader.read(buf)
                    body.append(chunk)
                    if not finished:
                        break
                seen.append(current(True))
                done, head, reader = head, None, None
                if stops_after(done):
                    return Outcome(tuple(seen), "stop", heads=tuple(heads))
    except ParseError as exc:
        if head is not None:
            seen.append(current(False))
        return Outcome(tuple(seen), "error", exc.status, exc.reason, tuple(heads))
    if head is not None:
        seen.append(current(False))
    return Outcome(tuple(seen), "eof", heads=tuple(heads))


def frame_h11(data: bytes) -> Outcome:
    """Frame the bytes as an h11 server does (``h11.RemoteProtocolError`` is a refusal)."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    seen: list[Seen] = []
    request: h11.Request | None = None
    body: list[bytes] = []

    def current(complete: bool) -> Seen:
        assert request is not None
        return Seen(bytes(request.method), bytes(request.target), b"".join(body), complete)

    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            if request is not None:
                seen.append(current(False))
            return Outcome(tuple(seen), "error", reason=str(exc))
        if event is h11.NEED_DATA or event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
            if request is not None:
                seen.append(current(False))
            return Outcome(tuple(seen), "eof")
        if isinstance(event, h11.Request):
            request, body = event, []
        elif isinstance(event, h11.Data):
            body.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            seen.append(current(True))
            request = None
            if conn.their_state not in (h11.DONE, h11.MUST_CLOSE):
                # MIGHT_SWITCH_PROTOCOL (CONNECT or Upgrade): a tunnel may follow.
                return Outcome(tuple(seen), "stop", reason="switch")
            conn.send(h11.Response(status_code=200, headers=[(b"content-length", b"0")]))
            conn.send(h11.EndOfMessage())
            if conn.our_state is h11.MUST_CLOSE:
                return Outcome(tuple(seen), "stop", reason="close")  # Connection: close, HTTP/1.0
            conn.start_next_cycle()


class _Stop(Exception):
    """Raised in a callback to leave ``feed_data`` where the parser would stop."""


class _LlhttpCallbacks:
    def __init__(self) -> None:
        self.parser: httptools.HttpRequestParser | None = None
        self.seen: list[Seen] = []
        self.in_message = False
        self.head_done = False
        self.method = b""
        self.url: list[bytes] = []
        self.body: list[bytes] = []
        self.stopped = False

    def current(self, complete: bool) -> Seen:
        return Seen(self.method, b"".join(self.url), b"".join(self.body), complete)

    def on_message_begin(self) -> None:
        self.in_message, self.head_done = True, False
        self.method, self.url, self.body = b"", [], []

    def on_url(self, url: bytes) -> None:
        self.url.append(url)

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        self.head_done = True
        self.method = self.parser.get_method()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.parser is not None
        self.seen.append(self.current(True))
        self.in_message = False
        if not self.parser.should_keep_alive() and not self.parser.should_upgrade():
            self.stopped = True
            raise _Stop  # llhttp would refuse any byte after this ("Data after Connection: close")

    def unfinished(self) -> None:
        if self.in_message and self.head_done:
            self.seen.append(self.current(False))


def frame_llhttp(data: bytes) -> Outcome:
    """Frame the bytes as llhttp (through httptools) does."""
    callbacks = _LlhttpCallbacks()
    parser = httptools.HttpRequestParser(callbacks)
    callbacks.parser = parser
    try:
        parser.feed_data(data)
    except httptools.HttpParserUpgrade:
        # CONNECT or Upgrade: httptools skips the body, the tunnel starts after the head.
        return Outcome(tuple(callbacks.seen), "stop", reason="upgrade")
    except httptools.HttpParserError as exc:
        if callbacks.stopped:
            return Outcome(tuple(callbacks.seen), "stop", reason="close")
        callbacks.unfinished()
        return Outcome(tuple(callbacks.seen), "error", reason=str(exc))
    callbacks.unfinished()
    return Outcome(tuple(callbacks.seen), "eof")


PEERS = {"h11": frame_h11, "llhttp": frame_llhttp}
