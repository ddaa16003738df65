"""WebSocket over HTTP/1.1 (placeholder until the WebSocket driver lands)."""

from __future__ import annotations

from typing import Any

from pagi.server.streams.http import HTTPStream


async def serve_websocket_over_http1(conn: Any, stream: HTTPStream, leftover: bytes) -> None:
    conn.outbox.write_nowait(b"HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
    await conn.outbox.flush()
