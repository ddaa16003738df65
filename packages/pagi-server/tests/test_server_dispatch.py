"""One scope-type decision for every driver (streams/dispatch.py; R-SSE-1, RFC 6455, RFC 8441)."""

from __future__ import annotations

import pytest

from pagi.server.streams.dispatch import choose_scope_type, wants_event_stream


@pytest.mark.parametrize(
    ("method", "upgrade", "protocol", "accept", "expected"),
    [
        ("GET", b"websocket", b"", b"", "websocket"),
        ("GET", b"h2c, WebSocket", b"", b"", "websocket"),
        ("GET", b"not-websocket", b"", b"", "http"),  # a token, not a substring
        ("GET", b"websocketx", b"", b"", "http"),
        ("POST", b"websocket", b"", b"", "http"),  # RFC 6455 4.1: GET only
        ("CONNECT", b"", b"websocket", b"", "websocket"),  # RFC 8441 4
        ("CONNECT", b"", b"webtransport", b"", "http"),
        ("GET", b"", b"websocket", b"", "http"),  # :protocol only with CONNECT
        ("GET", b"", b"", b"text/event-stream", "sse"),
        ("POST", b"", b"", b"application/json, text/event-stream;q=0.5", "sse"),
        ("GET", b"", b"", b"text/event-stream;q=0", "http"),
        ("GET", b"", b"", b"*/*", "http"),  # wildcards stay http
        ("GET", b"", b"", b"text/*", "http"),
    ],
)
def test_choose_scope_type(
    method: str, upgrade: bytes, protocol: bytes, accept: bytes, expected: str
) -> None:
    assert choose_scope_type(method, upgrade=upgrade, protocol=protocol, accept=accept) == expected


def test_event_stream_media_range_with_parameters() -> None:
    assert wants_event_stream(b"text/event-stream; charset=utf-8")
    assert not wants_event_stream(b"text/event-streams")
