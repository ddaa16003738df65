"""Field-level event rules: ``validate_send_event`` and ``validate_receive_event``.

Every event type of every scope has at least one accepted and one refused
example below (see ``test_every_event_type_has_examples``). Refusals must be
an :class:`EventError` whose ``field`` and message name the offending key.
Requirement ids are in the test names or parameter ids.
"""

from __future__ import annotations

import io
import math
import pathlib
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import pytest

from pagi.spec import (
    EventError,
    receive_event_types,
    send_event_types,
    validate_header_name,
    validate_header_value,
    validate_headers,
    validate_receive_event,
    validate_send_event,
)
from pagi.spec.constants import MAX_INT64, MIN_INT64, SCOPE_TYPES

HDRS = [(b"content-type", b"text/plain"), [b"x-list-pair", b"ok"]]


def _closed_file() -> io.BytesIO:
    fh = io.BytesIO(b"x")
    fh.close()
    return fh


# --------------------------------------------------------------------------
# Accepted events: (scope type, event), at least one per event type.
# --------------------------------------------------------------------------

VALID_SEND: list[tuple[str, dict[str, Any]]] = [
    ("http", {"type": "http.response.start", "status": 200}),
    (
        "http",
        {"type": "http.response.start", "status": 404, "headers": HDRS, "trailers": True},
    ),
    ("http", {"type": "http.response.start", "status": HTTPStatus.NO_CONTENT}),
    ("http", {"type": "http.response.start", "status": 599, "headers": (), "trailers": 0}),
    ("http", {"type": "http.response.body"}),
    ("http", {"type": "http.response.body", "body": b"hi", "more": True}),
    ("http", {"type": "http.response.body", "body": bytearray(b"hi"), "more": 1}),
    ("http", {"type": "http.response.body", "body": memoryview(b"hi"), "more": False}),
    ("http", {"type": "http.response.body", "file": "/etc/hostname"}),
    ("http", {"type": "http.response.body", "file": pathlib.Path("/x"), "offset": 0, "length": 5}),
    ("http", {"type": "http.response.body", "fh": io.BytesIO(b"x"), "offset": 1, "length": None}),
    ("http", {"type": "http.response.body", "body": None, "fh": io.BytesIO(b"x")}),
    ("http", {"type": "http.response.trailers"}),
    ("http", {"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")]}),
    ("http", {"type": "http.fullflush"}),
    ("websocket", {"type": "websocket.accept"}),
    ("websocket", {"type": "websocket.accept", "subprotocol": "chat.v2", "headers": HDRS}),
    ("websocket", {"type": "websocket.accept", "subprotocol": None}),
    ("websocket", {"type": "websocket.send", "text": "hello"}),
    ("websocket", {"type": "websocket.send", "bytes": b"\x00\x01"}),
    ("websocket", {"type": "websocket.send", "text": "", "bytes": None}),
    ("websocket", {"type": "websocket.close"}),
    ("websocket", {"type": "websocket.close", "code": 4000, "reason": "bye"}),
    ("websocket", {"type": "websocket.close", "code": 1000, "reason": "é" * 61}),
    ("websocket", {"type": "websocket.keepalive", "interval": 30}),
    ("websocket", {"type": "websocket.keepalive", "interval": 0.5, "timeout": 10}),
    ("websocket", {"type": "websocket.keepalive", "interval": 0}),
    ("websocket", {"type": "websocket.http.response.start", "status": 401}),
    ("websocket", {"type": "websocket.http.response.start", "status": 403, "headers": HDRS}),
    ("websocket", {"type": "websocket.http.response.body"}),
    ("websocket", {"type": "websocket.http.response.body", "body": b"no", "more": 0}),
    ("sse", {"type": "sse.start"}),
    ("sse", {"type": "sse.start", "status": 200, "headers": HDRS}),
    ("sse", {"type": "sse.send", "data": "line one\nline two"}),
    ("sse", {"type": "sse.send", "data": "", "event": "tick", "id": "42", "retry": 3000}),
    ("sse", {"type": "sse.send", "data": "x", "event": None, "id": None, "retry": None}),
    ("sse", {"type": "sse.comment", "comment": "ping"}),
    ("sse", {"type": "sse.comment", "comment": "two\nlines"}),
    ("sse", {"type": "sse.comment"}),
    ("sse", {"type": "sse.keepalive", "interval": 15}),
    ("sse", {"type": "sse.keepalive", "interval": 0, "comment": "ka"}),
    ("sse", {"type": "sse.close"}),
    ("sse", {"type": "sse.close", "reason": "done"}),
    ("sse", {"type": "sse.http.response.start", "status": 204}),
    ("sse", {"type": "sse.http.response.start", "status": 404, "headers": HDRS}),
    ("sse", {"type": "sse.http.response.body"}),
    ("sse", {"type": "sse.http.response.body", "body": b"gone", "more": False}),
    ("lifespan", {"type": "lifespan.startup.complete"}),
    ("lifespan", {"type": "lifespan.startup.failed"}),
    ("lifespan", {"type": "lifespan.startup.failed", "message": "no database"}),
    ("lifespan", {"type": "lifespan.shutdown.complete"}),
    ("lifespan", {"type": "lifespan.shutdown.failed", "message": "flush failed"}),
]

VALID_RECEIVE: list[tuple[str, dict[str, Any]]] = [
    ("http", {"type": "http.request"}),
    ("http", {"type": "http.request", "body": b"abc", "more": True}),
    ("http", {"type": "http.disconnect"}),
    ("websocket", {"type": "websocket.connect"}),
    ("websocket", {"type": "websocket.receive", "text": "hi"}),
    ("websocket", {"type": "websocket.receive", "bytes": b"hi", "text": None}),
    ("websocket", {"type": "websocket.disconnect", "code": 1000}),
    ("websocket", {"type": "websocket.disconnect", "code": 1005, "reason": ""}),
    ("websocket", {"type": "websocket.disconnect", "code": 1006, "reason": "client_closed"}),
    ("sse", {"type": "sse.request", "body": b"", "more": False}),
    ("sse", {"type": "sse.disconnect", "reason": "client_closed"}),
    ("lifespan", {"type": "lifespan.startup"}),
    ("lifespan", {"type": "lifespan.shutdown"}),
]


# --------------------------------------------------------------------------
# Refused events: (scope type, event, field the error must name).
# --------------------------------------------------------------------------

INVALID_SEND: list[Any] = [
    # http.response.start
    pytest.param("http", {"type": "http.response.start"}, "status", id="R-HTTP-20-missing-status"),
    pytest.param(
        "http", {"type": "http.response.start", "status": "200"}, "status", id="R-HTTP-20-str"
    ),
    pytest.param(
        "http", {"type": "http.response.start", "status": 200.0}, "status", id="R-HTTP-20-float"
    ),
    pytest.param(
        "http", {"type": "http.response.start", "status": True}, "status", id="R-HTTP-20-bool"
    ),
    pytest.param("http", {"type": "http.response.start", "status": 101}, "status", id="status-1xx"),
    pytest.param("http", {"type": "http.response.start", "status": 600}, "status", id="status-600"),
    pytest.param(
        "http",
        {"type": "http.response.start", "status": 200, "headers": {b"a": b"b"}},
        "headers",
        id="R-HDR-1-dict",
    ),
    pytest.param(
        "http",
        {"type": "http.response.start", "status": 200, "trailers": 2},
        "trailers",
        id="R-DATA-5-flag-2",
    ),
    pytest.param(
        "http",
        {"type": "http.response.start", "status": 200, "trailers": "yes"},
        "trailers",
        id="R-DATA-5-flag-str",
    ),
    # http.response.body
    pytest.param(
        "http", {"type": "http.response.body", "body": "text"}, "body", id="R-DATA-8-str-body"
    ),
    pytest.param(
        "http", {"type": "http.response.body", "more": 1.0}, "more", id="R-DATA-5-float-flag"
    ),
    pytest.param(
        "http", {"type": "http.response.body", "file": b"/etc/x"}, "file", id="file-bytes"
    ),
    pytest.param("http", {"type": "http.response.body", "fh": "not a file"}, "fh", id="fh-str"),
    pytest.param(
        "http", {"type": "http.response.body", "fh": _closed_file()}, "fh", id="R-HFILE-7-closed"
    ),
    pytest.param(
        "http", {"type": "http.response.body", "fh": io.StringIO("t")}, "fh", id="fh-text-mode"
    ),
    pytest.param(
        "http",
        {"type": "http.response.body", "file": "/x", "offset": -1},
        "offset",
        id="R-HFILE-9-offset",
    ),
    pytest.param(
        "http",
        {"type": "http.response.body", "file": "/x", "length": -5},
        "length",
        id="R-HFILE-9-length",
    ),
    pytest.param(
        "http",
        {"type": "http.response.body", "file": "/x", "offset": "0"},
        "offset",
        id="R-ERR-2-offset-str",
    ),
    pytest.param(
        "http",
        {"type": "http.response.body", "body": b"", "file": "/x"},
        "file",
        id="R-HTTP-25-body-file",
    ),
    pytest.param(
        "http",
        {"type": "http.response.body", "body": b"a", "fh": io.BytesIO()},
        "fh",
        id="R-HTTP-25-body-fh",
    ),
    pytest.param(
        "http",
        {"type": "http.response.body", "file": "/x", "fh": io.BytesIO()},
        "fh",
        id="R-HTTP-25-file-fh",
    ),
    # http.response.trailers
    pytest.param(
        "http",
        {"type": "http.response.trailers", "headers": [(b"x", b"a\r\nb")]},
        "headers",
        id="R-HTTP-34-trailer-crlf",
    ),
    pytest.param(
        "http",
        {"type": "http.response.trailers", "headers": "x: y"},
        "headers",
        id="R-HDR-1-str",
    ),
    # http.fullflush / unknown types
    pytest.param("http", {"type": 7}, "type", id="R-CORE-30-type-int"),
    pytest.param("http", {"type": "http.response.begin"}, "type", id="R-ERR-3-unknown"),
    pytest.param("http", {"type": "sse.send", "data": "x"}, "type", id="R-ERR-3-other-scope"),
    pytest.param("http", {"status": 200}, "type", id="R-CORE-30-no-type"),
    pytest.param("sse", {"type": "http.fullflush"}, "type", id="A-36-fullflush-in-sse"),
    # websocket.accept
    pytest.param(
        "websocket",
        {"type": "websocket.accept", "subprotocol": 5},
        "subprotocol",
        id="R-ERR-2-subprotocol",
    ),
    pytest.param(
        "websocket",
        {"type": "websocket.accept", "subprotocol": "chat\r\nx-evil: 1"},
        "subprotocol",
        id="R-HTTP-34-subprotocol-crlf",
    ),
    pytest.param(
        "websocket",
        {"type": "websocket.accept", "subprotocol": "two words"},
        "subprotocol",
        id="subprotocol-not-token",
    ),
    pytest.param(
        "websocket",
        {"type": "websocket.accept", "headers": [(b"x-a", b"1\x00")]},
        "headers",
        id="R-HTTP-34-accept-nul",
    ),
    # websocket.send
    pytest.param("websocket", {"type": "websocket.send"}, "text", id="R-WS-14-neither"),
    pytest.param(
        "websocket",
        {"type": "websocket.send", "bytes": b"a", "text": "a"},
        "bytes",
        id="R-WS-14-both",
    ),
    pytest.param(
        "websocket",
        {"type": "websocket.send", "bytes": None, "text": None},
        "text",
        id="R-WS-14-both-none",
    ),
    pytest.param(
        "websocket", {"type": "websocket.send", "text": b"x"}, "text", id="R-WS-14-text-bytes"
    ),
    pytest.param(
        "websocket", {"type": "websocket.send", "bytes": "x"}, "bytes", id="R-WS-14-bytes-str"
    ),
    # websocket.close
    pytest.param(
        "websocket", {"type": "websocket.close", "code": "1000"}, "code", id="R-ERR-2-code-str"
    ),
    pytest.param(
        "websocket", {"type": "websocket.close", "reason": 5}, "reason", id="R-ERR-2-reason"
    ),
    pytest.param(
        "websocket",
        {"type": "websocket.close", "reason": "x" * 124},
        "reason",
        id="close-reason-too-long",
    ),
    # websocket.keepalive
    pytest.param("websocket", {"type": "websocket.keepalive"}, "interval", id="R-ERR-1-interval"),
    pytest.param(
        "websocket",
        {"type": "websocket.keepalive", "interval": "30"},
        "interval",
        id="R-ERR-2-interval",
    ),
    pytest.param(
        "websocket",
        {"type": "websocket.keepalive", "interval": -1},
        "interval",
        id="interval-negative",
    ),
    pytest.param(
        "websocket",
        {"type": "websocket.keepalive", "interval": True},
        "interval",
        id="interval-bool",
    ),
    pytest.param(
        "websocket",
        {"type": "websocket.keepalive", "interval": 5, "timeout": -0.1},
        "timeout",
        id="timeout-negative",
    ),
    # websocket.http.response.*
    pytest.param(
        "websocket",
        {"type": "websocket.http.response.start"},
        "status",
        id="R-WSDENY-3-missing-status",
    ),
    pytest.param(
        "websocket",
        {"type": "websocket.http.response.start", "status": 403, "headers": [(b"a b", b"c")]},
        "headers",
        id="R-HTTP-34-denial-header",
    ),
    pytest.param(
        "websocket",
        {"type": "websocket.http.response.body", "body": "text"},
        "body",
        id="R-WSDENY-3-str-body",
    ),
    pytest.param(
        "websocket",
        {"type": "websocket.http.response.body", "more": -1},
        "more",
        id="R-WSDENY-3-more",
    ),
    # sse.start
    pytest.param("sse", {"type": "sse.start", "status": "200"}, "status", id="sse-start-status"),
    pytest.param(
        "sse",
        {"type": "sse.start", "headers": [(b"x", b"a\nb")]},
        "headers",
        id="R-HTTP-34-sse-start-lf",
    ),
    # sse.send
    pytest.param("sse", {"type": "sse.send"}, "data", id="R-SSE-35-missing-data"),
    pytest.param("sse", {"type": "sse.send", "data": None}, "data", id="R-SSE-35-data-none"),
    pytest.param("sse", {"type": "sse.send", "data": b"x"}, "data", id="R-SSE-30-data-bytes"),
    pytest.param(
        "sse", {"type": "sse.send", "data": "x", "retry": -1}, "retry", id="R-SSE-32-negative"
    ),
    pytest.param(
        "sse", {"type": "sse.send", "data": "x", "retry": 1.5}, "retry", id="R-SSE-32-float"
    ),
    pytest.param(
        "sse", {"type": "sse.send", "data": "x", "event": 3}, "event", id="R-ERR-2-event-int"
    ),
    # sse.comment / keepalive / close
    pytest.param("sse", {"type": "sse.comment", "comment": b"x"}, "comment", id="comment-bytes"),
    pytest.param("sse", {"type": "sse.keepalive"}, "interval", id="R-ERR-1-sse-interval"),
    pytest.param(
        "sse",
        {"type": "sse.keepalive", "interval": 5, "comment": 1},
        "comment",
        id="sse-keepalive-comment",
    ),
    pytest.param("sse", {"type": "sse.close", "reason": ["x"]}, "reason", id="sse-close-reason"),
    # sse.http.response.*
    pytest.param("sse", {"type": "sse.http.response.start"}, "status", id="R-SSE-61-no-status"),
    pytest.param(
        "sse",
        {"type": "sse.http.response.start", "status": 404, "headers": [(b"x", "str")]},
        "headers",
        id="R-HDR-3-str-value",
    ),
    pytest.param(
        "sse", {"type": "sse.http.response.body", "body": 1}, "body", id="R-SSE-61-body-int"
    ),
    # lifespan
    pytest.param(
        "lifespan",
        {"type": "lifespan.startup.failed", "message": b"x"},
        "message",
        id="R-LIFE-11-message-bytes",
    ),
    pytest.param(
        "lifespan",
        {"type": "lifespan.shutdown.failed", "message": 1},
        "message",
        id="R-LIFE-15-message-int",
    ),
    pytest.param("lifespan", {"type": "lifespan.startup"}, "type", id="R-ERR-3-receive-type-sent"),
    pytest.param(
        "lifespan", {"type": "lifespan.startup.complet"}, "type", id="R-ERR-3-startup-typo"
    ),
    pytest.param(
        "lifespan", {"type": "lifespan.shutdown.done"}, "type", id="R-ERR-3-shutdown-typo"
    ),
    pytest.param("http", {"type": None}, "type", id="R-CORE-30-type-none"),
]

INVALID_RECEIVE: list[Any] = [
    pytest.param("http", {"type": "http.request", "body": "x"}, "body", id="R-DATA-8-body"),
    pytest.param("http", {"type": "http.request", "more": 5}, "more", id="R-DATA-5-more"),
    pytest.param("http", {"type": "http.disconnected"}, "type", id="R-ERR-3-disconnected"),
    pytest.param("websocket", {"type": "websocket.connected"}, "type", id="R-ERR-3-connected"),
    pytest.param("websocket", {"type": "websocket.receive"}, "text", id="R-WS-13-neither"),
    pytest.param(
        "websocket",
        {"type": "websocket.receive", "bytes": b"a", "text": "a"},
        "bytes",
        id="R-WS-13-both",
    ),
    pytest.param("websocket", {"type": "websocket.disconnect"}, "code", id="R-WS-30-missing-code"),
    pytest.param(
        "websocket", {"type": "websocket.disconnect", "code": 999}, "code", id="R-WS-30-999"
    ),
    pytest.param(
        "websocket", {"type": "websocket.disconnect", "code": 5000}, "code", id="R-WS-30-5000"
    ),
    pytest.param(
        "websocket",
        {"type": "websocket.disconnect", "code": 1000, "reason": 1},
        "reason",
        id="R-WS-31-reason-int",
    ),
    pytest.param("sse", {"type": "sse.request", "body": 1}, "body", id="R-SSE-10-body"),
    pytest.param("sse", {"type": "sse.disconnect"}, "reason", id="R-SSE-11-reason-required"),
    pytest.param("lifespan", {"type": "lifespan.startup.complete"}, "type", id="R-ERR-3-send-type"),
    pytest.param("lifespan", {"type": b"lifespan.shutdown"}, "type", id="R-CORE-30-type-bytes"),
]


def _field_named(exc: EventError, field: str) -> None:
    assert exc.field == field
    assert repr(field) in str(exc), str(exc)


@pytest.mark.parametrize(("scope_type", "event"), VALID_SEND)
def test_valid_send_event_is_accepted(scope_type: str, event: dict[str, Any]) -> None:
    assert validate_send_event(scope_type, event) == event["type"]


@pytest.mark.parametrize(("scope_type", "event"), VALID_RECEIVE)
def test_valid_receive_event_is_accepted(scope_type: str, event: dict[str, Any]) -> None:
    assert validate_receive_event(scope_type, event) == event["type"]


@pytest.mark.parametrize(("scope_type", "event", "field"), INVALID_SEND)
def test_invalid_send_event_raises_naming_the_field(
    scope_type: str, event: dict[str, Any], field: str
) -> None:
    """R-ERR-1, R-ERR-2, R-ERR-3: ``send`` raises, and says which field is wrong."""
    with pytest.raises(EventError) as info:
        validate_send_event(scope_type, event)
    _field_named(info.value, field)


@pytest.mark.parametrize(("scope_type", "event", "field"), INVALID_RECEIVE)
def test_invalid_receive_event_raises_naming_the_field(
    scope_type: str, event: dict[str, Any], field: str
) -> None:
    """R-ERR-4: malformed events from a server are detectable."""
    with pytest.raises(EventError) as info:
        validate_receive_event(scope_type, event)
    _field_named(info.value, field)


def _types_of(cases: list[Any], position: int = 1) -> set[tuple[str, str]]:
    seen = set()
    for case in cases:
        values = case.values if hasattr(case, "values") else case
        event = values[position]
        if isinstance(event.get("type"), str):
            seen.add((values[0], event["type"]))
    return seen


@pytest.mark.parametrize("scope_type", sorted(SCOPE_TYPES))
def test_every_event_type_has_examples(scope_type: str) -> None:
    """Each send and receive type has an accepted and a refused example here."""
    sends = {(scope_type, t) for t in send_event_types(scope_type)}
    receives = {(scope_type, t) for t in receive_event_types(scope_type)}
    assert sends <= _types_of(VALID_SEND)
    assert receives <= _types_of(VALID_RECEIVE)
    refused_send = _types_of(INVALID_SEND)
    refused_receive = _types_of(INVALID_RECEIVE)
    # http.fullflush and the bare lifespan replies have no fields to get
    # wrong; their refused counterparts are the mistyped names above.
    fieldless = {
        ("http", "http.fullflush"),
        ("lifespan", "lifespan.startup.complete"),
        ("lifespan", "lifespan.shutdown.complete"),
        ("http", "http.disconnect"),
        ("websocket", "websocket.connect"),
        ("lifespan", "lifespan.startup"),
        ("lifespan", "lifespan.shutdown"),
    }
    assert sends - fieldless <= refused_send
    assert receives - fieldless <= refused_receive


@pytest.mark.parametrize(
    ("scope_type", "event_type"),
    [
        ("http", "http.fullflush"),
        ("lifespan", "lifespan.startup.complete"),
        ("lifespan", "lifespan.shutdown.complete"),
    ],
)
def test_fieldless_send_events_refuse_a_non_dict(scope_type: str, event_type: str) -> None:
    """The events without fields still fail when the event is not a mapping."""
    assert validate_send_event(scope_type, {"type": event_type}) == event_type
    with pytest.raises(EventError) as info:
        validate_send_event(scope_type, [("type", event_type)])
    assert "must be a dict" in str(info.value)


@pytest.mark.parametrize(("scope_type", "event"), VALID_SEND)
def test_unknown_extra_keys_never_fail_send(scope_type: str, event: dict[str, Any]) -> None:
    """R-ERR-5: extra keys, whatever their value, are ignored."""
    extended = {**event, "x-future": object(), "myapp.trace": float("nan"), "timeout": 5}
    assert validate_send_event(scope_type, extended) == event["type"]


@pytest.mark.parametrize(("scope_type", "event"), VALID_RECEIVE)
def test_unknown_extra_keys_never_fail_receive(scope_type: str, event: dict[str, Any]) -> None:
    """R-ERR-5 applies to applications reading events as well."""
    assert validate_receive_event(scope_type, {**event, "x-new": [1, 2]}) == event["type"]


def test_event_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(EventError) as info:
        validate_send_event("http", "http.response.start")
    assert info.value.field is None
    assert "must be a dict" in str(info.value)


def test_any_mapping_is_accepted_as_an_event() -> None:
    class ReadOnly(Mapping[str, Any]):
        def __init__(self, data: dict[str, Any]) -> None:
            self._data = data

        def __getitem__(self, key: str) -> Any:
            return self._data[key]

        def __iter__(self) -> Any:
            return iter(self._data)

        def __len__(self) -> int:
            return len(self._data)

    event = ReadOnly({"type": "http.response.start", "status": 200})
    assert validate_send_event("http", event) == "http.response.start"


def test_unknown_scope_type_is_refused() -> None:
    with pytest.raises(EventError) as info:
        validate_send_event("gopher", {"type": "gopher.send"})
    assert info.value.event_type == "gopher.send"
    assert "gopher" in str(info.value)


def test_unknown_type_message_names_the_scope() -> None:
    """R-ERR-3: the message says which scope refused the type."""
    with pytest.raises(EventError) as info:
        validate_send_event("websocket", {"type": "websocket.message"})
    assert info.value.event_type == "websocket.message"
    assert "websocket application can send" in str(info.value)


def test_none_counts_as_absent_for_optional_fields() -> None:
    event = {"type": "http.response.start", "status": 200, "headers": None, "trailers": None}
    assert validate_send_event("http", event) == "http.response.start"


# --------------------------------------------------------------------------
# Flags, integers and floats (R-DATA-4..6, A-40)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("flag", [True, False, 0, 1])
def test_flags_accept_bool_and_0_1(flag: object) -> None:
    """R-DATA-5 / A-40: bool and the ints 0 and 1 are all valid flags."""
    validate_send_event("http", {"type": "http.response.body", "more": flag})
    validate_send_event("http", {"type": "http.response.start", "status": 200, "trailers": flag})
    validate_receive_event("http", {"type": "http.request", "more": flag})
    validate_send_event("sse", {"type": "sse.http.response.body", "more": flag})


@pytest.mark.parametrize("flag", [2, -1, "1", 1.0, b"\x01", [1]])
def test_flags_refuse_anything_else(flag: object) -> None:
    with pytest.raises(EventError) as info:
        validate_send_event("http", {"type": "http.response.body", "more": flag})
    _field_named(info.value, "more")


@pytest.mark.parametrize("value", [MAX_INT64 + 1, MIN_INT64 - 1, 2**100])
def test_integers_outside_signed_64_bit_are_refused(value: int) -> None:
    """R-DATA-4."""
    cases = [
        ("http", {"type": "http.response.body", "file": "/x", "offset": value}, "offset"),
        ("http", {"type": "http.response.body", "file": "/x", "length": value}, "length"),
        ("sse", {"type": "sse.send", "data": "x", "retry": value}, "retry"),
        ("websocket", {"type": "websocket.keepalive", "interval": value}, "interval"),
        ("sse", {"type": "sse.keepalive", "interval": value}, "interval"),
    ]
    for scope_type, event, field in cases:
        with pytest.raises(EventError) as info:
            validate_send_event(scope_type, event)
        _field_named(info.value, field)
        if value > 0:
            assert "64-bit" in str(info.value) or "range" in str(info.value)


def test_largest_signed_64_bit_integer_is_accepted() -> None:
    validate_send_event("http", {"type": "http.response.body", "file": "/x", "offset": MAX_INT64})
    validate_send_event("sse", {"type": "sse.send", "data": "x", "retry": MAX_INT64})


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinities_are_refused(value: float) -> None:
    """R-DATA-6."""
    cases = [
        ("websocket", {"type": "websocket.keepalive", "interval": value}, "interval"),
        ("websocket", {"type": "websocket.keepalive", "interval": 1, "timeout": value}, "timeout"),
        ("sse", {"type": "sse.keepalive", "interval": value}, "interval"),
    ]
    for scope_type, event, field in cases:
        with pytest.raises(EventError) as info:
            validate_send_event(scope_type, event)
        _field_named(info.value, field)


def test_int_subclasses_count_as_ints() -> None:
    """``http.HTTPStatus`` is an int and may be sent as a status."""
    validate_send_event("http", {"type": "http.response.start", "status": HTTPStatus.OK})
    validate_send_event("sse", {"type": "sse.http.response.start", "status": HTTPStatus.GONE})


# --------------------------------------------------------------------------
# Status codes and close codes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 204, 304, 418, 599])
def test_final_status_codes_are_accepted(status: int) -> None:
    for scope_type, event_type in [
        ("http", "http.response.start"),
        ("websocket", "websocket.http.response.start"),
        ("sse", "sse.http.response.start"),
        ("sse", "sse.start"),
    ]:
        validate_send_event(scope_type, {"type": event_type, "status": status})


@pytest.mark.parametrize("status", [0, 99, 100, 101, 103, 199, 600, 999, -200])
def test_informational_and_out_of_range_statuses_are_refused(status: int) -> None:
    """1xx interim responses are not sent through ``*.response.start``."""
    with pytest.raises(EventError) as info:
        validate_send_event("http", {"type": "http.response.start", "status": status})
    _field_named(info.value, "status")
    assert "200-599" in str(info.value)


@pytest.mark.parametrize(
    "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]
)
def test_sendable_close_codes_are_accepted(code: int) -> None:
    validate_send_event("websocket", {"type": "websocket.close", "code": code})


@pytest.mark.parametrize(
    "code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535, -1000]
)
def test_reserved_and_undefined_close_codes_are_refused(code: int) -> None:
    """RFC 6455 section 7.4: 1004-1006 and 1015 are never sent; 1016-2999 are reserved."""
    with pytest.raises(EventError) as info:
        validate_send_event("websocket", {"type": "websocket.close", "code": code})
    _field_named(info.value, "code")
    assert str(code) in str(info.value)


@pytest.mark.parametrize("code", [1000, 1002, 1005, 1006, 1007, 1008, 1015, 3000, 4999])
def test_disconnect_codes_cover_the_report_only_ones(code: int) -> None:
    """R-WS-30..32: 1005 and 1006 are reported, never sent."""
    validate_receive_event("websocket", {"type": "websocket.disconnect", "code": code})


def test_close_reason_limit_counts_utf8_bytes() -> None:
    validate_send_event("websocket", {"type": "websocket.close", "reason": "x" * 123})
    with pytest.raises(EventError) as info:
        validate_send_event("websocket", {"type": "websocket.close", "reason": "é" * 62})
    _field_named(info.value, "reason")


# --------------------------------------------------------------------------
# Header byte safety (R-HDR-1..5, R-HTTP-30..34)
# --------------------------------------------------------------------------

HEADER_EVENTS = [
    ("http", {"type": "http.response.start", "status": 200}),
    ("http", {"type": "http.response.trailers"}),
    ("websocket", {"type": "websocket.accept"}),
    ("websocket", {"type": "websocket.http.response.start", "status": 403}),
    ("sse", {"type": "sse.start"}),
    ("sse", {"type": "sse.http.response.start", "status": 404}),
]

BAD_NAMES = [
    pytest.param(b"x-a\r", id="CR"),
    pytest.param(b"x-a\nb", id="LF"),
    pytest.param(b"x\x00a", id="NUL"),
    pytest.param(b"x\x01a", id="SOH"),
    pytest.param(b"x\x1fa", id="US"),
    pytest.param(b"x\x7fa", id="DEL"),
    pytest.param(b"x\ta", id="HTAB"),
    pytest.param(b"x a", id="space"),
    pytest.param(b"x:a", id="colon"),
    pytest.param(b"", id="empty"),
    pytest.param(b"caf\xc3\xa9", id="non-ascii"),
]

BAD_VALUES = [
    pytest.param(b"a\rb", id="CR"),
    pytest.param(b"a\nb", id="LF"),
    pytest.param(b"a\r\nx-injected: 1", id="CRLF"),
    pytest.param(b"a\x00", id="NUL"),
    pytest.param(b"\x0bvt", id="VT"),
    pytest.param(b"\x0cff", id="FF"),
    pytest.param(b"a\x1bb", id="ESC"),
    pytest.param(b"a\x7f", id="DEL"),
]


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize(("scope_type", "base"), HEADER_EVENTS)
def test_unsafe_header_names_are_refused_on_every_header_event(
    scope_type: str, base: dict[str, Any], name: bytes
) -> None:
    """R-HTTP-30, R-HTTP-31, R-HTTP-32, R-HTTP-34."""
    with pytest.raises(EventError) as info:
        validate_send_event(scope_type, {**base, "headers": [(name, b"v")]})
    _field_named(info.value, "headers")
    assert info.value.event_type == base["type"]


@pytest.mark.parametrize("value", BAD_VALUES)
@pytest.mark.parametrize(("scope_type", "base"), HEADER_EVENTS)
def test_unsafe_header_values_are_refused_on_every_header_event(
    scope_type: str, base: dict[str, Any], value: bytes
) -> None:
    """R-HTTP-30, R-HTTP-32, R-HTTP-34: refused, never stripped."""
    with pytest.raises(EventError) as info:
        validate_send_event(scope_type, {**base, "headers": [(b"x-ok", value)]})
    _field_named(info.value, "headers")
    assert "R-HTTP-30" in str(info.value)


@pytest.mark.parametrize(
    "value", [b"", b"plain", b"tab\there", b"obs-text \x80\xff", b"quoted \"x\", 'y'"]
)
def test_safe_header_values_pass(value: bytes) -> None:
    """R-HDR-3: values are opaque bytes; only control bytes are refused."""
    assert validate_header_value(value, "http.response.start") == value


def test_uppercase_header_names_pass_validation() -> None:
    """R-HDR-2 / A-44: the server lower-cases them; they are not an error."""
    assert validate_header_name(b"Content-Type", "http.response.start") == b"Content-Type"


@pytest.mark.parametrize(
    "pair",
    [
        pytest.param((b"a",), id="one-item"),
        pytest.param((b"a", b"b", b"c"), id="three-items"),
        pytest.param(b"ab", id="bytes-not-pair"),
        pytest.param("ab", id="str-not-pair"),
        pytest.param(None, id="none"),
    ],
)
def test_header_pairs_must_have_two_items(pair: object) -> None:
    """R-HDR-4."""
    with pytest.raises(EventError) as info:
        validate_headers([pair], "http.response.start")
    _field_named(info.value, "headers")


@pytest.mark.parametrize(
    "pair",
    [
        pytest.param(("content-type", b"x"), id="str-name"),
        pytest.param((b"content-type", "x"), id="str-value"),
        pytest.param((bytearray(b"a"), b"x"), id="bytearray-name"),
    ],
)
def test_header_names_and_values_must_be_bytes(pair: tuple[object, object]) -> None:
    """R-HDR-2, R-HDR-3."""
    with pytest.raises(EventError) as info:
        validate_headers([pair], "sse.start")
    _field_named(info.value, "headers")
    assert "must be bytes" in str(info.value)


def test_duplicate_header_names_are_allowed() -> None:
    """R-HDR-5, R-CK-4: several set-cookie fields stay separate."""
    validate_headers([(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")], "http.response.start")


def test_header_helpers_use_the_given_field_name() -> None:
    with pytest.raises(EventError) as info:
        validate_header_value(b"\n", "websocket.accept", "subprotocol")
    _field_named(info.value, "subprotocol")
    with pytest.raises(EventError) as info:
        validate_header_name(b"", "sse.start")
    assert "empty" in str(info.value)


# --------------------------------------------------------------------------
# SSE field validation (R-SSE-31)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["event", "id"])
@pytest.mark.parametrize("text", ["a\nb", "a\rb", "a\r\nb", "\n", "a\x00b"])
def test_sse_event_and_id_refuse_line_breaks(field: str, text: str) -> None:
    """R-SSE-31: a newline would end the field and start another one."""
    with pytest.raises(EventError) as info:
        validate_send_event("sse", {"type": "sse.send", "data": "x", field: text})
    _field_named(info.value, field)
    assert "R-SSE-31" in str(info.value)


def test_sse_data_may_span_lines() -> None:
    """R-SSE-33: ``data`` is split into ``data:`` lines by the server, not refused."""
    validate_send_event("sse", {"type": "sse.send", "data": "a\r\nb\rc\nd"})


# --------------------------------------------------------------------------
# Body sources (R-HTTP-25, R-HFILE-*)
# --------------------------------------------------------------------------


def test_a_body_event_with_no_source_is_an_empty_body() -> None:
    """A-8: none of body/file/fh is allowed and means ``b""``."""
    validate_send_event("http", {"type": "http.response.body", "more": False})


def test_two_body_sources_name_both_in_the_message() -> None:
    with pytest.raises(EventError) as info:
        validate_send_event("http", {"type": "http.response.body", "body": b"a", "file": "/x"})
    assert "'body'" in str(info.value)
    assert "'file'" in str(info.value)


def test_fh_may_be_any_binary_file_object(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"123")
    with path.open("rb") as fh:
        validate_send_event("http", {"type": "http.response.body", "fh": fh})
    with path.open("rb", buffering=0) as raw:
        validate_send_event("http", {"type": "http.response.body", "fh": raw})
    with path.open("r") as text, pytest.raises(EventError) as info:
        validate_send_event("http", {"type": "http.response.body", "fh": text})
    assert "binary" in str(info.value)


def test_error_carries_event_type_field_and_problem() -> None:
    with pytest.raises(EventError) as info:
        validate_send_event("http", {"type": "http.response.start", "status": "ok"})
    exc = info.value
    assert isinstance(exc, ValueError)
    assert exc.event_type == "http.response.start"
    assert exc.field == "status"
    assert "must be an int" in exc.problem
    assert str(exc).startswith("http.response.start: 'status'")
