"""SendMachine's shortcut for common event shapes agrees with the full validation.

``SendMachine.send`` skips ``validate_send_event`` for a few shapes it can
judge by sight (a body chunk, a WebSocket message, an SSE data event). These
tests generate events near those shapes, valid and not, and check that a
machine with the shortcut and one without it agree on every outcome: the
return value, the next state, or the exception and its message (R-ERR-1..3).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagi.spec import EventError, EventOrderError, SendMachine, states

_VALUES = st.one_of(
    st.none(),
    st.integers(100, 700),
    st.booleans(),
    st.integers(-1, 2),
    st.floats(allow_nan=False),
    st.binary(max_size=4),
    st.text(max_size=4),
    st.builds(bytearray, st.binary(max_size=4)),
    st.just([]),
)
_KEYS = st.sampled_from(
    [
        "body",
        "more",
        "text",
        "bytes",
        "data",
        "event",
        "id",
        "file",
        "more_body",
        "trailers",
        "status",
        "headers",
    ]
)
_NAMES = st.sampled_from([b"content-type", b"X-Up", b"bad name", b"", b"a\r", "str", b"ok:"])
_HEADER_VALUES = st.sampled_from([b"text/plain", b"", b"a\nb", b"\x00", b"\t ok", "str", 3])
_HEADERS = st.one_of(
    st.lists(st.tuples(_NAMES, _HEADER_VALUES), max_size=3),
    st.lists(st.lists(_NAMES, min_size=2, max_size=3), max_size=2),
    st.tuples(st.tuples(_NAMES, _HEADER_VALUES)),
    st.just(None),
)
_TYPES = st.sampled_from(
    ["http.response.body", "websocket.send", "sse.send", "http.response.start", "other"]
)
#: The states a machine of each scope type is in when those events are sent.
_SETUPS: dict[str, list[dict[str, Any]]] = {
    "http": [{"type": "http.response.start", "status": 200}],
    "websocket": [{"type": "websocket.accept"}],
    "sse": [{"type": "sse.start"}],
}


def _outcome(machine: SendMachine, event: Any) -> tuple[Any, ...]:
    try:
        result = machine.send(event)
    except (EventError, EventOrderError) as exc:
        return ("raised", type(exc).__name__, str(exc), machine.state)
    return ("ok", result, machine.state)


def _pair(scope_type: str, started: bool) -> tuple[SendMachine, SendMachine]:
    machines = (SendMachine(scope_type), SendMachine(scope_type))
    if started:
        for machine in machines:
            for event in _SETUPS[scope_type]:
                machine.send(dict(event))
    return machines


@settings(max_examples=400, deadline=None)
@given(
    scope_type=st.sampled_from(sorted(_SETUPS)),
    started=st.booleans(),
    event_type=_TYPES,
    fields=st.dictionaries(_KEYS, _VALUES, max_size=3),
    headers=_HEADERS,
    with_headers=st.booleans(),
)
def test_shortcut_agrees_with_full_validation(
    scope_type: str,
    started: bool,
    event_type: str,
    fields: dict[str, Any],
    headers: Any,
    with_headers: bool,
) -> None:
    fast, full = _pair(scope_type, started)
    event = {"type": event_type, **fields}
    if with_headers:
        event["headers"] = headers
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(states, "_plainly_valid", lambda event: False)
        expected = _outcome(full, dict(event))
    assert _outcome(fast, dict(event)) == expected


@pytest.mark.parametrize(
    ("scope_type", "event"),
    [
        ("http", {"type": "http.response.body", "body": b"x"}),
        ("http", {"type": "http.response.body", "body": b"x", "more": True}),
        ("websocket", {"type": "websocket.send", "text": "hi"}),
        ("websocket", {"type": "websocket.send", "bytes": b"hi"}),
        ("sse", {"type": "sse.send", "data": "hi"}),
        ("http", {"type": "http.response.start", "status": 200}),
        (
            "http",
            {"type": "http.response.start", "status": 404, "headers": [(b"x-a", b"1")]},
        ),
    ],
)
def test_common_shapes_take_the_shortcut(scope_type: str, event: dict[str, Any]) -> None:
    """The shapes the shortcut exists for are recognised (else it saves nothing)."""
    assert states._plainly_valid(event)
    started = event["type"] != "http.response.start"
    fast, _ = _pair(scope_type, started)
    assert fast.send(event) is True


@pytest.mark.parametrize(
    "event",
    [
        {"type": "http.response.body", "body": "text"},
        {"type": "http.response.body", "body": b"x", "more": 1.0},
        {"type": "http.response.body", "body": b"x", "more_body": True},
        {"type": "websocket.send", "text": b"bytes"},
        {"type": "websocket.send", "text": "a", "bytes": b"b"},
        {"type": "sse.send", "data": "x", "id": "1\n2"},
        {"type": "http.response.start", "status": 200, "headers": [(b"a b", b"1")]},
        {"type": "http.response.start", "status": 200, "headers": [(b"a", b"1\r\n")]},
        {"type": "http.response.start", "status": 200, "headers": [[b"a", b"1"]]},
        {"type": "http.response.start", "status": 200, "headers": ((b"a", b"1"),)},
        {"type": "http.response.start", "status": 101},
        {"type": "http.response.start", "status": True},
    ],
)
def test_doubtful_shapes_take_the_full_path(event: dict[str, Any]) -> None:
    assert not states._plainly_valid(event)
