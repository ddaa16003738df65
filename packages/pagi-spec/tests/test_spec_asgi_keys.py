"""ASGI applications run as PAGI by mistake: their ASGI-only keys make send raise.

PAGI calls ASGI's ``more_body`` ``more``. Without this check a Starlette
``StreamingResponse`` run directly on a PAGI server would send its first
chunk as a complete response and the client would see a normal 200.
"""

from __future__ import annotations

from typing import Any

import pytest

from pagi.spec import (
    ASGI_EVENT_TYPES,
    ASGI_RENAMED_KEYS,
    EventError,
    SendMachine,
    validate_receive_event,
    validate_send_event,
)

CASES = [
    ("http", {"type": "http.response.body", "body": b"x", "more_body": True}, "more_body"),
    ("http", {"type": "http.response.body", "body": b"x", "more_body": False}, "more_body"),
    ("http", {"type": "http.response.trailers", "headers": [], "more_trailers": False},
     "more_trailers"),
    ("websocket", {"type": "websocket.http.response.body", "body": b"", "more_body": True},
     "more_body"),
    ("sse", {"type": "sse.http.response.body", "body": b"", "more_body": False}, "more_body"),
]  # fmt: skip


@pytest.mark.parametrize(("scope_type", "event", "key"), CASES)
def test_asgi_key_raises_naming_key_pagi_spelling_and_interface(
    scope_type: str, event: dict[str, Any], key: str
) -> None:
    with pytest.raises(EventError) as info:
        validate_send_event(scope_type, event)
    assert info.value.field == key
    assert info.value.event_type == event["type"]
    message = str(info.value)
    assert repr(key) in message
    assert "--interface asgi" in message
    if key == "more_body":
        assert "PAGI uses 'more'" in message
    else:
        assert "http.response.trailers" in message


def test_every_renamed_key_is_covered() -> None:
    assert {key for _, _, key in CASES} == set(ASGI_RENAMED_KEYS)


def test_send_machine_refuses_a_streamed_asgi_body_before_advancing() -> None:
    machine = SendMachine("http")
    machine.send({"type": "http.response.start", "status": 200, "headers": []})
    with pytest.raises(EventError, match="more_body"):
        machine.send({"type": "http.response.body", "body": b"chunk", "more_body": True})
    assert machine.state == "started"  # nothing was taken as a final body
    machine.send({"type": "http.response.body", "body": b"chunk", "more": True})
    assert machine.state == "streaming"


def test_pagi_spelling_alone_passes() -> None:
    event = {"type": "http.response.body", "body": b"x", "more": True}
    assert validate_send_event("http", event) == "http.response.body"


@pytest.mark.parametrize("event_type", sorted(ASGI_EVENT_TYPES))
def test_asgi_only_event_types_name_the_pagi_event(event_type: str) -> None:
    with pytest.raises(EventError) as info:
        validate_send_event("http", {"type": event_type, "path": "/etc/hosts"})
    message = str(info.value)
    assert "ASGI event" in message
    assert "http.response.body with" in message
    assert "--interface asgi" in message


def test_other_unknown_types_get_no_asgi_hint() -> None:
    with pytest.raises(EventError) as info:
        validate_send_event("http", {"type": "http.response.banana"})
    assert "ASGI" not in str(info.value)


def test_receive_side_is_not_checked_for_asgi_keys() -> None:
    """A bridge or test client may hand events through; only what an app sends is judged."""
    event = {"type": "http.request", "body": b"", "more_body": False}
    assert validate_receive_event("http", event) == "http.request"
