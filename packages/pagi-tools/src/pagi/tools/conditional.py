"""Conditional requests and byte ranges for static representations (RFC 9110 13, 14).

Pure functions over header values and a file's size and validators; the
file response and the file apps use them, and tests can check them alone.
Order of evaluation follows RFC 9110 13.2.2: ``If-Match``, then
``If-Unmodified-Since`` (412), then ``If-None-Match``, then
``If-Modified-Since`` (304 for GET/HEAD), then ``Range`` gated by
``If-Range``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import format_datetime, parsedate_to_datetime

__all__ = [
    "MAX_RANGES",
    "NOT_MODIFIED_HEADERS",
    "Unsatisfiable",
    "etag_for",
    "evaluate_preconditions",
    "http_date",
    "parse_http_date",
    "parse_range",
    "range_applies",
]

#: More ranges than this in one request are ignored (full response): many tiny
#: overlapping ranges are a known amplification trick.
MAX_RANGES = 16


class Unsatisfiable(Exception):
    """No requested range overlaps the representation: answer 416."""


def etag_for(size: int, mtime_ns: int) -> str:
    """A strong validator from size and modification time (quoted)."""
    return f'"{size:x}-{mtime_ns:x}"'


def http_date(timestamp: float) -> str:
    """An IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``)."""
    return format_datetime(datetime.fromtimestamp(int(timestamp), timezone.utc), usegmt=True)


def parse_http_date(value: str | None) -> float | None:
    """Seconds since the epoch, or ``None`` for a missing or malformed date."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _tags(header: str) -> list[str]:
    return [t.strip() for t in header.split(",") if t.strip()]


def _weak_equal(a: str, b: str) -> bool:
    return a.removeprefix("W/") == b.removeprefix("W/")


def evaluate_preconditions(
    method: str, headers: dict[str, str], etag: str | None, mtime: float | None
) -> int | None:
    """Return 412 or 304 when a precondition decides the answer, else ``None``.

    ``headers`` maps lower-case request header names to values; ``etag``
    and ``mtime`` describe the selected representation (``None`` when it
    has no such validator, as a dynamic response may not). ``If-Match``
    compares strongly, ``If-None-Match`` weakly (RFC 9110 13.1.1, 13.1.2);
    the date conditions are skipped without an ``mtime``.
    """
    if_match = headers.get("if-match")
    if if_match is not None:
        tags = _tags(if_match)
        strong = etag is not None and not etag.startswith("W/")
        if "*" not in tags and not (strong and etag in tags):
            return 412
    elif mtime is not None:
        since = parse_http_date(headers.get("if-unmodified-since"))
        if since is not None and int(mtime) > since:
            return 412
    safe = method in ("GET", "HEAD")
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        tags = _tags(if_none_match)
        if "*" in tags or (etag is not None and any(_weak_equal(t, etag) for t in tags)):
            return 304 if safe else 412
        return None
    if safe and mtime is not None:
        since = parse_http_date(headers.get("if-modified-since"))
        if since is not None and int(mtime) <= since:
            return 304
    return None


#: Headers a 304 keeps (RFC 9110 15.4.5): the validators and what caches need.
NOT_MODIFIED_HEADERS = frozenset(
    {"cache-control", "content-location", "date", "etag", "expires", "last-modified", "vary"}
)


def range_applies(headers: dict[str, str], etag: str, mtime: float) -> bool:
    """False when ``If-Range`` says the client's copy is stale (send it all)."""
    if_range = headers.get("if-range")
    if if_range is None:
        return True
    if_range = if_range.strip()
    if if_range.startswith(('"', "W/")):
        # If-Range needs a strong match (RFC 9110 13.1.5).
        return if_range == etag and not etag.startswith("W/")
    when = parse_http_date(if_range)
    return when is not None and int(mtime) == int(when)


def parse_range(header: str | None, size: int) -> list[tuple[int, int]] | None:
    """Parse ``Range: bytes=...`` into sorted, merged ``(start, stop)`` pairs (stop exclusive).

    ``None`` means "ignore the header and send everything" (absent,
    malformed, not ``bytes``, or more than :data:`MAX_RANGES` ranges).
    Raises :class:`Unsatisfiable` when the header is valid but no range
    overlaps the ``size`` bytes available.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        return None
    specs = [s.strip() for s in spec.split(",") if s.strip()]
    if len(specs) > MAX_RANGES:
        return None
    ranges: list[tuple[int, int]] = []
    for item in specs:
        first, dash, last = item.partition("-")
        if not dash:
            return None
        first, last = first.strip(), last.strip()
        if not first:
            if not last.isdigit():
                return None
            suffix = int(last)  # bytes=-N: the final N bytes
            if suffix > 0 and size > 0:
                ranges.append((max(0, size - suffix), size))
            continue
        if not first.isdigit() or (last and not last.isdigit()):
            return None
        start = int(first)
        stop = size if not last else int(last) + 1
        if last and stop <= start:
            return None  # a-b with b < a is invalid syntax: ignore the header
        if start < size:
            ranges.append((start, min(stop, size)))
    if not ranges:
        raise Unsatisfiable(f"no range of {header!r} overlaps {size} bytes")
    ranges.sort()
    merged = [ranges[0]]
    for start, stop in ranges[1:]:
        last_start, last_stop = merged[-1]
        if start <= last_stop:
            merged[-1] = (last_start, max(last_stop, stop))
        else:
            merged.append((start, stop))
    return merged
