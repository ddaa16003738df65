"""The ``sse`` scope (placeholder until the SSE stream lands)."""

from __future__ import annotations

from typing import Any

from pagi.server.streams.http import HTTPStream


async def serve_sse_over_http(conn: Any, stream: HTTPStream) -> None:
    conn.outbox.write_nowait(b"HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
    await conn.outbox.flush()
