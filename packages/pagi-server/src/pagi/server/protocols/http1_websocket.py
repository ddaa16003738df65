"""An HTTP/1.1 connection, after its upgrade request, as a WebSocket carrier.

The HTTP/1.1 driver parses the upgrade request like any other request and
dispatches it as a ``websocket`` scope; :func:`serve_websocket_over_http1`
checks the handshake (a bad one gets its 400/426 here and the application
is never called) and runs a :class:`~pagi.server.protocols.ws_session.WebSocketSession`
on :class:`H1Carrier`: the connection's byte stream and outbound buffer,
with ``101 Switching Protocols`` as the accepting answer. From then on the
session stands in for the connection in the server's registry.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import anyio

from pagi.server.protocols.responses import simple_response, status_line
from pagi.server.protocols.ws_handshake import HandshakeError, accept_token, check_handshake
from pagi.server.protocols.ws_session import WebSocketSession
from pagi.server.streams.http import HTTPStream
from pagi.server.transport import TransportHandle
from pagi.spec import DisconnectReason

if TYPE_CHECKING:
    from pagi.server.protocols.http1 import H1Connection

__all__ = ["H1Carrier", "serve_websocket_over_http1"]


class H1Carrier:
    """The WebSocket carrier of an upgraded HTTP/1.1 connection."""

    __slots__ = ("conn", "key", "outbox", "peer")

    def __init__(self, conn: H1Connection, key: bytes) -> None:
        self.conn = conn
        self.key = key
        self.outbox = conn.outbox
        self.peer = conn.info.client

    def transport(self) -> TransportHandle:
        return self.outbox.handle()

    def attach(self, session: WebSocketSession) -> None:
        connections = self.conn.ctx.connections
        connections.discard(self.conn)  # the session is the live connection now
        connections.add(session)
        self.outbox.on_broken = session.write_failed

    def detach(self, session: WebSocketSession) -> None:
        self.conn.ctx.connections.discard(session)

    def writer(self) -> Callable[[], Coroutine[Any, Any, None]] | None:
        return self.outbox.writer()

    async def receive(self) -> tuple[bytes, str]:
        try:
            data = await self.conn.stream.receive(65536)
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return b"", DisconnectReason.CLIENT_CLOSED
        except anyio.ClosedResourceError:
            return b"", ""
        except OSError:
            return b"", DisconnectReason.READ_ERROR
        return data, ""

    def write_nowait(self, data: bytes) -> None:
        self.outbox.write_nowait(data)

    async def write(self, data: bytes) -> None:
        await self.outbox.write(data)

    def congested(self) -> bool:
        return self.outbox.buffered >= self.outbox.high

    async def flush(self) -> None:
        await self.outbox.flush()

    def open(self, fields: list[tuple[bytes, bytes]]) -> None:
        lines = [
            status_line(101),
            b"upgrade: websocket\r\n",
            b"connection: Upgrade\r\n",
            b"sec-websocket-accept: " + accept_token(self.key) + b"\r\n",
        ]
        lines.extend(name + b": " + value + b"\r\n" for name, value in fields)
        lines.append(b"\r\n")
        self.outbox.write_nowait(b"".join(lines))

    def refuse(self, status: int, fields: list[tuple[bytes, bytes]], body: bytes) -> None:
        lines = [status_line(status)]
        lines.extend(name + b": " + value + b"\r\n" for name, value in fields)
        lines.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        self.outbox.write_nowait(b"".join(lines) + body)

    async def send_eof(self) -> None:
        try:
            await self.conn.stream.send_eof()
        except (NotImplementedError, OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    def abort(self, reason: str) -> None:
        self.outbox.abort(reason)

    async def finish(self) -> None:
        await self.outbox.close()

    def check_write_timeout(self, now: float) -> None:
        self.outbox.check_write_timeout(now)


async def serve_websocket_over_http1(
    conn: H1Connection, stream: HTTPStream, leftover: bytes
) -> None:
    """Run one WebSocket session on an HTTP/1.1 connection whose upgrade head was read."""
    try:
        key = check_handshake(stream.scope)
    except HandshakeError as exc:
        ctx = conn.ctx
        conn.outbox.write_nowait(
            simple_response(exc.status, ctx, text=exc.text, headers=exc.headers)
        )
        await conn.outbox.flush()
        if ctx.access_log is not None:
            stream.scope.pop("pagi.connection", None)
            ctx.access_log.log(stream.scope, exc.status, 0, 0.0)
        return
    await WebSocketSession(conn.ctx, H1Carrier(conn, key), stream.scope, leftover).run()
