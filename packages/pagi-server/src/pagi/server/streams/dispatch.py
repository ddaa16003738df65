"""Which scope type a request head opens: ``http``, ``websocket`` or ``sse``.

One decision for every driver. HTTP/1.1 and HTTP/2 hand over what they saw
in the head (method, the ``Connection``/``Upgrade`` tokens or the HTTP/2
``:protocol`` pseudo-header, and the ``Accept`` value) and get the scope
type back; the drivers then frame the stream, they never choose it.

* **websocket**: an HTTP/1.1 ``GET`` whose ``Connection`` field lists the
  ``upgrade`` token and whose ``Upgrade`` field lists the ``websocket``
  token (RFC 6455 4.2.1), or an HTTP/2 Extended CONNECT with
  ``:protocol websocket`` (RFC 8441 4). Tokens, never substrings: an
  ``Upgrade: not-websocket`` is no WebSocket request.
* **sse**: an ``Accept`` value naming ``text/event-stream`` with a non-zero
  q-value, on any method (R-SSE-1); ``*/*`` and ``text/*`` do not count, so
  a plain browser request stays ``http`` (decision on A-3).
* **http**: everything else.

Adding a scope type means the spec, a stream class in ``streams/`` and one
rule here.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["ScopeType", "choose_scope_type", "split_tokens", "wants_event_stream"]

ScopeType = Literal["http", "websocket", "sse"]

_MEDIA_RANGE = re.compile(rb"^\s*text/event-stream\s*(;.*)?$", re.IGNORECASE)
_Q_ZERO = re.compile(rb";\s*q\s*=\s*0(\.0*)?\s*(;|$)", re.IGNORECASE)


def split_tokens(value: bytes) -> list[bytes]:
    """The lower-cased, trimmed items of a comma-separated header value."""
    return [t.strip().lower() for t in value.split(b",") if t.strip()]


def wants_event_stream(accept: bytes) -> bool:
    """True when an Accept value names ``text/event-stream`` with a non-zero q (R-SSE-1)."""
    if b"event-stream" not in accept.lower():
        return False
    for media_range in accept.split(b","):
        match = _MEDIA_RANGE.match(media_range)
        if match is not None and not _Q_ZERO.search(media_range):
            return True
    return False


def choose_scope_type(
    method: str,
    *,
    upgrade: bytes = b"",
    protocol: bytes = b"",
    accept: bytes = b"",
) -> ScopeType:
    """The scope type for a request head.

    ``upgrade`` is the HTTP/1.1 ``Upgrade`` value when ``Connection`` lists
    ``upgrade`` (else empty); ``protocol`` is the HTTP/2 ``:protocol``
    pseudo-header of an Extended CONNECT (else empty).
    """
    if method == "GET" and upgrade and b"websocket" in split_tokens(upgrade):
        return "websocket"
    if method == "CONNECT" and protocol.lower() == b"websocket":
        return "websocket"
    if accept and wants_event_stream(accept):
        return "sse"
    return "http"
