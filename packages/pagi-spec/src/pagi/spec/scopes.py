"""TypedDicts for every scope type (http, websocket, sse, lifespan)."""

from __future__ import annotations

__all__: list[str] = []
