"""TypedDicts for every event of every scope type."""

from __future__ import annotations

__all__: list[str] = []
