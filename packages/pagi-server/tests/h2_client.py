"""A raw HTTP/2 client on ``h2`` for the attack and flow-control tests.

It can do what well-behaved clients never do: open and reset streams in a
loop, flood control frames, send hand-made frames (an endless CONTINUATION
chain), leave a header block or a body unfinished, or stop reading.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
from hyperframe.frame import Frame

from pagi.server.protocols.http2 import H2Connection


def request_headers(
    path: bytes = b"/", method: bytes = b"GET", extra: tuple[tuple[bytes, bytes], ...] = ()
) -> list[tuple[bytes, bytes]]:
    return [
        (b":method", method),
        (b":path", path),
        (b":scheme", b"http"),
        (b":authority", b"example.test"),
        *extra,
    ]


class H2Client:
    """One client connection; events are collected in :attr:`seen` as they arrive."""

    def __init__(self, stream: anyio.abc.ByteStream, *, validate: bool = True) -> None:
        self.stream = stream
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=True,
                header_encoding=None,
                validate_outbound_headers=validate,
                normalize_outbound_headers=validate,
            )
        )
        self.seen: list[Any] = []
        #: The server closed the connection (EOF or reset on read).
        self.closed = False
        #: A write failed: the server is gone or going; reading may still get its GOAWAY.
        self.broken = False

    async def start(self) -> None:
        self.conn.initiate_connection()
        await self.flush()

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.broken:
            try:
                await self.stream.send(data)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                self.broken = True

    async def send_raw(self, *frames: Frame | bytes) -> None:
        """Hand-made frames, written after whatever ``h2`` has queued."""
        await self.flush()
        data = b"".join(f if isinstance(f, bytes) else f.serialize() for f in frames)
        try:
            await self.stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            self.broken = True

    async def request(
        self, headers: list[tuple[bytes, bytes]], body: bytes = b"", end: bool = True
    ) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, headers, end_stream=not body and end)
        if body:
            self.conn.send_data(sid, body, end_stream=end)
        await self.flush()
        return sid

    async def receive_once(self) -> list[Any]:
        """Read once; acknowledge DATA so responses keep flowing; [] at EOF."""
        try:
            data = await self.stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            self.closed = True
            return []
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            events = []
        for event in events:
            if isinstance(event, h2.events.DataReceived) and event.stream_id:
                try:
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                except h2.exceptions.ProtocolError:
                    pass
        self.seen.extend(events)
        await self.flush()
        return events

    async def until(self, done: Callable[[list[Any]], bool], timeout: float = 5.0) -> list[Any]:
        """Read until ``done(self.seen)`` or the connection closes; fail after ``timeout``."""
        with anyio.fail_after(timeout):
            while not done(self.seen) and not self.closed:
                await self.receive_once()
        return self.seen

    async def until_closed(self, timeout: float = 5.0) -> list[Any]:
        return await self.until(lambda seen: False, timeout)

    def goaway(self) -> h2.events.ConnectionTerminated | None:
        for event in self.seen:
            if isinstance(event, h2.events.ConnectionTerminated):
                return event
        return None

    def resets(self) -> dict[int, h2.errors.ErrorCodes]:
        return {
            e.stream_id: e.error_code for e in self.seen if isinstance(e, h2.events.StreamReset)
        }

    def statuses(self) -> dict[int, bytes]:
        out = {}
        for event in self.seen:
            if isinstance(event, h2.events.ResponseReceived):
                out[event.stream_id] = dict(event.headers)[b":status"]
        return out

    def ended(self) -> set[int]:
        return {e.stream_id for e in self.seen if isinstance(e, h2.events.StreamEnded)}


def h2_connections(running: Any) -> list[H2Connection]:
    """The live HTTP/2 connections of an in-process server."""
    ctx = running.server.ctx
    return [c for c in list(ctx.connections) if isinstance(c, H2Connection)]


def warnings_naming(caplog: Any, limit: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and limit in r.getMessage()
    ]
