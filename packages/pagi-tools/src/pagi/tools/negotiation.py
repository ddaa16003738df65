"""Content negotiation: parse ``Accept`` and pick the best offered type.

Ranking follows RFC 9110 12.5.1: a higher ``q`` wins; on equal ``q`` the more
specific pattern wins (``text/html`` over ``text/*`` over ``*/*``); ``q=0``
means "not acceptable". A missing ``Accept`` header accepts anything.
Callers may name types by shortcut (``"json"``, ``"html"``); results are
returned in the caller's spelling.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

__all__ = [
    "SHORTCUTS",
    "AcceptItem",
    "accepts",
    "best_match",
    "normalize_type",
    "parse_accept",
    "quality",
]

#: Shortcut names understood wherever a media type is expected.
SHORTCUTS: dict[str, str] = {
    "html": "text/html",
    "text": "text/plain",
    "txt": "text/plain",
    "json": "application/json",
    "xml": "application/xml",
    "css": "text/css",
    "js": "text/javascript",
    "csv": "text/csv",
    "sse": "text/event-stream",
    "form": "application/x-www-form-urlencoded",
    "multipart": "multipart/form-data",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "svg": "image/svg+xml",
    "pdf": "application/pdf",
    "zip": "application/zip",
}


class AcceptItem(NamedTuple):
    """One media range of an ``Accept`` header."""

    media_type: str
    q: float

    @property
    def specificity(self) -> int:
        """2 for ``type/sub``, 1 for ``type/*``, 0 for ``*/*``."""
        main, _, sub = self.media_type.partition("/")
        return 0 if main == "*" else 1 if sub == "*" else 2


def normalize_type(media_type: str) -> str:
    """Expand a shortcut and lower-case; drop parameters (``; charset=...``)."""
    base = media_type.split(";", 1)[0].strip().lower()
    if "/" not in base:
        return SHORTCUTS.get(base, f"application/{base}")
    return base


def parse_accept(header: str | None) -> list[AcceptItem]:
    """Parse an ``Accept`` value into items, best first. ``None`` means ``*/*``."""
    if header is None or not header.strip():
        return [AcceptItem("*/*", 1.0)]
    items: list[AcceptItem] = []
    for part in header.split(","):
        fields = [f.strip() for f in part.split(";")]
        media_type = fields[0].lower()
        if not media_type:
            continue
        if "/" not in media_type:
            media_type = "*/*" if media_type == "*" else media_type + "/*"
        q = 1.0
        for param in fields[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        items.append(AcceptItem(media_type, q))
    # sort() is stable, so equally ranked items keep the client's order.
    items.sort(key=lambda item: (-item.q, -item.specificity))
    return items


def _matches(media_type: str, pattern: str) -> bool:
    main, _, sub = media_type.partition("/")
    p_main, _, p_sub = pattern.partition("/")
    return p_main == "*" or (p_main == main and p_sub in ("*", sub))


def quality(accept: str | Sequence[AcceptItem] | None, media_type: str) -> float:
    """The ``q`` the client gives ``media_type``: from the most specific matching range."""
    items = parse_accept(accept) if accept is None or isinstance(accept, str) else accept
    wanted = normalize_type(media_type)
    best: AcceptItem | None = None
    for item in items:
        if _matches(wanted, item.media_type) and (
            best is None or item.specificity > best.specificity
        ):
            best = item
    return best.q if best is not None else 0.0


def accepts(accept: str | None, media_type: str) -> bool:
    """True when the client accepts ``media_type`` with ``q > 0``."""
    return quality(accept, media_type) > 0


def best_match(offered: Iterable[str], accept: str | None) -> str | None:
    """The offered type the client prefers, in the caller's spelling; ``None`` if none fits.

    Ties on ``q`` go to the earlier entry of ``offered``, so list the
    server's preference first.
    """
    items = parse_accept(accept)
    best: tuple[float, int, str] | None = None
    for index, candidate in enumerate(offered):
        q = quality(items, candidate)
        if q <= 0:
            continue
        if best is None or q > best[0]:
            best = (q, index, candidate)
    return best[2] if best else None
