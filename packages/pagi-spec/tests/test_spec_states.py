"""Send-side state machines: which event may follow which (``SendMachine``).

``send`` returns ``True`` when the server must act, ``False`` when the
specification says to drop the event silently, and raises
:class:`EventOrderError` for an event that is illegal in the current state.
Requirement and ambiguity ids are in the test names.
"""

from __future__ import annotations

import io
from typing import Any

import pytest

from pagi.spec import IGNORE, EventError, EventOrderError, SendMachine
from pagi.spec.constants import EXT_FULLFLUSH, EXT_WEBSOCKET_HTTP_RESPONSE

START = {"type": "http.response.start", "status": 200}
START_TRAILERS = {"type": "http.response.start", "status": 200, "trailers": True}
BODY_MORE = {"type": "http.response.body", "body": b"a", "more": True}
BODY_END = {"type": "http.response.body", "body": b"b"}
TRAILERS = {"type": "http.response.trailers", "headers": [(b"x-sum", b"1")]}
FLUSH = {"type": "http.fullflush"}

ACCEPT = {"type": "websocket.accept"}
WS_SEND = {"type": "websocket.send", "text": "hi"}
WS_CLOSE = {"type": "websocket.close", "code": 1000}
WS_KEEPALIVE = {"type": "websocket.keepalive", "interval": 10}
DENY_START = {"type": "websocket.http.response.start", "status": 403}
DENY_MORE = {"type": "websocket.http.response.body", "body": b"no", "more": True}
DENY_END = {"type": "websocket.http.response.body", "body": b"pe"}
WS_DENIAL_EXT = {EXT_WEBSOCKET_HTTP_RESPONSE: {}}

SSE_START = {"type": "sse.start"}
SSE_SEND = {"type": "sse.send", "data": "x"}
SSE_COMMENT = {"type": "sse.comment", "comment": "c"}
SSE_KEEPALIVE = {"type": "sse.keepalive", "interval": 15}
SSE_CLOSE = {"type": "sse.close"}
DECLINE_START = {"type": "sse.http.response.start", "status": 204}
DECLINE_MORE = {"type": "sse.http.response.body", "body": b"a", "more": True}
DECLINE_END = {"type": "sse.http.response.body"}

STARTUP_OK = {"type": "lifespan.startup.complete"}
STARTUP_FAILED = {"type": "lifespan.startup.failed", "message": "boom"}
SHUTDOWN_OK = {"type": "lifespan.shutdown.complete"}
SHUTDOWN_FAILED = {"type": "lifespan.shutdown.failed"}


def run(machine: SendMachine, *events: dict[str, Any]) -> list[bool]:
    return [machine.send(event) for event in events]


def refused(machine: SendMachine, event: dict[str, Any]) -> EventOrderError:
    before = machine.state
    with pytest.raises(EventOrderError) as info:
        machine.send(event)
    assert machine.state == before, "a refused event must not move the machine"
    assert info.value.event_type == event["type"]
    assert event["type"] in str(info.value)
    assert info.value.state == before
    return info.value


# --------------------------------------------------------------------------
# http
# --------------------------------------------------------------------------


def test_http_single_body_response() -> None:
    """R-HTTP-26, R-HTTP-41: start then a final body completes the response."""
    m = SendMachine("http")
    assert m.state == "init"
    assert run(m, START, BODY_END) == [True, True]
    assert m.state == "done"
    assert m.finished


def test_http_streaming_response() -> None:
    m = SendMachine("http")
    run(m, START, BODY_MORE, BODY_MORE)
    assert m.state == "streaming"
    assert not m.finished
    m.send(BODY_END)
    assert m.finished


def test_http_body_with_no_source_and_no_more_ends_the_response() -> None:
    """A-8: ``{"type": "http.response.body"}`` is an empty final body."""
    m = SendMachine("http")
    run(m, START, {"type": "http.response.body"})
    assert m.finished


@pytest.mark.parametrize(
    "body",
    [
        {"type": "http.response.body", "file": "/x", "more": True},
        {"type": "http.response.body", "fh": io.BytesIO(b"x"), "more": 1},
    ],
)
def test_http_file_bodies_are_final_whatever_more_says(body: dict[str, Any]) -> None:
    """R-HFILE-12."""
    m = SendMachine("http")
    run(m, START, body)
    assert m.state == "done"


def test_http_trailers_complete_the_response() -> None:
    """R-HTTP-27, R-HTTP-28, R-HTTP-52: with trailers=True the final body waits for them."""
    m = SendMachine("http")
    m.send(START_TRAILERS)
    assert m.trailers_expected
    m.send(BODY_END)
    assert m.state == "awaiting_trailers"
    assert not m.finished
    m.send(TRAILERS)
    assert m.finished


def test_http_trailers_after_file_body() -> None:
    """A-11: a file body is final; trailers may still follow when announced."""
    m = SendMachine("http")
    run(m, START_TRAILERS, {"type": "http.response.body", "file": "/x"}, TRAILERS)
    assert m.finished


@pytest.mark.parametrize(
    ("setup", "event", "hint"),
    [
        pytest.param([], BODY_END, "before http.response.start", id="A-9-body-before-start"),
        pytest.param([], TRAILERS, "before http.response.start", id="A-9-trailers-first"),
        pytest.param([START], START, "twice", id="A-9-second-start"),
        pytest.param([START, BODY_MORE], START, "twice", id="A-9-start-while-streaming"),
        pytest.param([START, BODY_END], BODY_END, "after the response", id="A-9-body-after-done"),
        pytest.param([START], TRAILERS, "R-HTTP-27", id="R-HTTP-27-undeclared-trailers"),
        pytest.param([START_TRAILERS], TRAILERS, "R-HTTP-27", id="R-HTTP-27-before-final-body"),
        pytest.param([START_TRAILERS, BODY_END], BODY_END, "not allowed", id="body-after-final"),
        pytest.param([START_TRAILERS, BODY_END, TRAILERS], TRAILERS, "not allowed", id="2nd-tr"),
    ],
)
def test_http_out_of_order_sends_raise(
    setup: list[dict[str, Any]], event: dict[str, Any], hint: str
) -> None:
    """A-9 / R-HTTP-40: out-of-order HTTP sends raise with a helpful message."""
    m = SendMachine("http")
    run(m, *setup)
    exc = refused(m, event)
    assert hint in str(exc)
    assert isinstance(exc, EventError)


def test_http_fullflush_needs_the_extension() -> None:
    """R-EXT-4, R-EXT-12: not advertised -> raise, naming the extension."""
    m = SendMachine("http")
    m.send(START)
    with pytest.raises(EventError) as info:
        m.send(FLUSH)
    assert not isinstance(info.value, EventOrderError)
    assert info.value.field == "type"
    assert "fullflush" in str(info.value)
    assert m.state == "started"


def test_http_fullflush_when_advertised() -> None:
    """R-EXT-11: legal once the response has started, any number of times."""
    m = SendMachine("http", {EXT_FULLFLUSH: {}})
    refused(m, FLUSH)
    assert run(m, START, FLUSH, BODY_MORE, FLUSH, FLUSH) == [True] * 5
    assert m.state == "streaming"


def test_http_malformed_event_does_not_move_the_machine() -> None:
    m = SendMachine("http")
    with pytest.raises(EventError) as info:
        m.send({"type": "http.response.start"})
    assert info.value.field == "status"
    assert m.state == "init"


# --------------------------------------------------------------------------
# websocket
# --------------------------------------------------------------------------


def test_websocket_accept_send_close() -> None:
    """R-WS-11, R-WS-18."""
    m = SendMachine("websocket")
    assert m.state == "handshake"
    assert run(m, ACCEPT, WS_KEEPALIVE, WS_SEND, WS_SEND, WS_CLOSE) == [True] * 5
    assert m.state == "closed"
    assert m.finished


def test_websocket_close_before_accept_rejects_the_handshake() -> None:
    """R-WS-12: the server answers 403; the machine is finished."""
    m = SendMachine("websocket")
    assert m.send(WS_CLOSE)
    assert m.finished


@pytest.mark.parametrize(
    ("setup", "event", "hint"),
    [
        pytest.param([], WS_SEND, "before websocket.accept", id="A-30-send-before-accept"),
        pytest.param([], WS_KEEPALIVE, "before websocket.accept", id="A-30-keepalive-early"),
        pytest.param([ACCEPT], ACCEPT, "twice", id="A-30-second-accept"),
    ],
)
def test_websocket_out_of_order_sends_raise(
    setup: list[dict[str, Any]], event: dict[str, Any], hint: str
) -> None:
    m = SendMachine("websocket")
    run(m, *setup)
    assert hint in str(refused(m, event))


@pytest.mark.parametrize("event", [ACCEPT, WS_SEND, WS_CLOSE, WS_KEEPALIVE])
def test_websocket_sends_after_close_are_ignored(event: dict[str, Any]) -> None:
    """R-WS-17, R-CORE-53: after the close every send is a silent no-op."""
    m = SendMachine("websocket")
    run(m, ACCEPT, WS_CLOSE)
    assert m.send(event) is False
    assert m.state == "closed"


def test_websocket_denial_needs_the_extension() -> None:
    """R-WSDENY-2: denial events without the advertised extension raise."""
    m = SendMachine("websocket")
    for event in (DENY_START, DENY_END):
        with pytest.raises(EventError) as info:
            m.send(event)
        assert "websocket.http.response" in str(info.value)
        assert info.value.field == "type"
    assert m.state == "handshake"


def test_websocket_denial_response() -> None:
    """R-WSDENY-3, R-WSDENY-4: start, body parts, final body; then finished."""
    m = SendMachine("websocket", WS_DENIAL_EXT)
    assert run(m, DENY_START, DENY_MORE, DENY_MORE) == [True] * 3
    assert m.state == "denying"
    assert not m.finished
    m.send(DENY_END)
    assert m.finished


@pytest.mark.parametrize(
    ("setup", "event"),
    [
        pytest.param([], DENY_END, id="denial-body-before-start"),
        pytest.param([DENY_START], DENY_START, id="second-denial-start"),
        pytest.param([DENY_START], ACCEPT, id="R-WSDENY-5-accept-while-denying"),
        pytest.param([DENY_START], WS_SEND, id="send-while-denying"),
    ],
)
def test_websocket_denial_order(setup: list[dict[str, Any]], event: dict[str, Any]) -> None:
    m = SendMachine("websocket", WS_DENIAL_EXT)
    run(m, *setup)
    refused(m, event)


@pytest.mark.parametrize("event", [DENY_START, DENY_MORE, DENY_END])
def test_websocket_denial_after_accept_is_ignored(event: dict[str, Any]) -> None:
    """R-WSDENY-6: ignored, not raised (contrast R-SSE-63)."""
    m = SendMachine("websocket", WS_DENIAL_EXT)
    m.send(ACCEPT)
    assert m.send(event) is False
    assert m.state == "open"
    assert m.send(WS_SEND) is True


# --------------------------------------------------------------------------
# sse
# --------------------------------------------------------------------------


def test_sse_stream_then_close() -> None:
    """R-SSE-20, R-SSE-51."""
    m = SendMachine("sse")
    assert m.state == "pending"
    assert run(m, SSE_START, SSE_SEND, SSE_COMMENT, SSE_KEEPALIVE, SSE_SEND) == [True] * 5
    assert m.state == "streaming"
    assert not m.finished
    assert m.send(SSE_CLOSE) is True
    assert m.finished


def test_sse_close_is_idempotent() -> None:
    """R-SSE-53: a repeated sse.close is ignored, not an error."""
    m = SendMachine("sse")
    run(m, SSE_START, SSE_CLOSE)
    assert m.send(SSE_CLOSE) is False
    assert m.send({"type": "sse.close", "reason": "again"}) is False
    assert m.state == "closed"


@pytest.mark.parametrize("event", [SSE_SEND, SSE_COMMENT, SSE_KEEPALIVE])
def test_sse_stream_events_after_close_raise(event: dict[str, Any]) -> None:
    """R-SSE-52."""
    m = SendMachine("sse")
    run(m, SSE_START, SSE_CLOSE)
    assert "R-SSE-52" in str(refused(m, event))


@pytest.mark.parametrize("event", [SSE_SEND, SSE_COMMENT, SSE_KEEPALIVE, SSE_CLOSE])
def test_sse_stream_events_before_start_raise(event: dict[str, Any]) -> None:
    """R-SSE-20, A-34, A-37: nothing of the stream before sse.start."""
    m = SendMachine("sse")
    assert "before sse.start" in str(refused(m, event))


def test_sse_decline() -> None:
    """R-SSE-60..62: a plain HTTP response instead of a stream."""
    m = SendMachine("sse")
    assert run(m, DECLINE_START, DECLINE_MORE) == [True, True]
    assert m.state == "declining"
    m.send(DECLINE_END)
    assert m.state == "declined"
    assert m.finished


@pytest.mark.parametrize("event", [DECLINE_START, DECLINE_MORE, DECLINE_END])
def test_sse_decline_after_start_raises(event: dict[str, Any]) -> None:
    """R-SSE-63: first send wins; sse.start came first."""
    m = SendMachine("sse")
    m.send(SSE_START)
    exc = refused(m, event)
    if event is DECLINE_START:
        assert "R-SSE-63" in str(exc)


@pytest.mark.parametrize("event", [SSE_START, SSE_SEND, SSE_COMMENT, SSE_KEEPALIVE, SSE_CLOSE])
def test_sse_stream_events_after_decline_start_raise(event: dict[str, Any]) -> None:
    """R-SSE-63: first send wins; the decline came first."""
    m = SendMachine("sse")
    m.send(DECLINE_START)
    refused(m, event)


@pytest.mark.parametrize("event", [SSE_START, SSE_SEND, SSE_CLOSE, DECLINE_START, DECLINE_END])
def test_sse_everything_after_a_finished_decline_raises(event: dict[str, Any]) -> None:
    m = SendMachine("sse")
    run(m, DECLINE_START, DECLINE_END)
    refused(m, event)


def test_sse_decline_body_before_start_raises() -> None:
    refused(SendMachine("sse"), DECLINE_END)


def test_sse_scope_refuses_fullflush_even_when_advertised() -> None:
    """A-36, R-SSE-65: an sse scope carries sse.* events only."""
    m = SendMachine("sse", {EXT_FULLFLUSH: {}})
    m.send(SSE_START)
    with pytest.raises(EventError) as info:
        m.send(FLUSH)
    assert info.value.field == "type"


# --------------------------------------------------------------------------
# lifespan
# --------------------------------------------------------------------------


def test_lifespan_happy_path() -> None:
    """R-LIFE-10, R-LIFE-14, R-LIFE-16."""
    m = SendMachine("lifespan")
    assert m.state == "startup"
    m.send(STARTUP_OK)
    assert m.state == "running"
    m.send(SHUTDOWN_OK)
    assert m.finished


def test_lifespan_shutdown_failed_finishes() -> None:
    """R-LIFE-15."""
    m = SendMachine("lifespan")
    run(m, STARTUP_OK, SHUTDOWN_FAILED)
    assert m.finished


def test_lifespan_startup_failed_finishes() -> None:
    """R-LIFE-11."""
    m = SendMachine("lifespan")
    m.send(STARTUP_FAILED)
    assert m.finished
    refused(m, SHUTDOWN_OK)


@pytest.mark.parametrize(
    ("setup", "event"),
    [
        pytest.param([], SHUTDOWN_OK, id="shutdown-reply-before-startup"),
        pytest.param([], SHUTDOWN_FAILED, id="shutdown-failed-before-startup"),
        pytest.param([STARTUP_OK], STARTUP_OK, id="second-startup-reply"),
        pytest.param([STARTUP_OK], STARTUP_FAILED, id="startup-failed-after-complete"),
        pytest.param([STARTUP_OK, SHUTDOWN_OK], SHUTDOWN_OK, id="second-shutdown-reply"),
    ],
)
def test_lifespan_out_of_order_replies_raise(
    setup: list[dict[str, Any]], event: dict[str, Any]
) -> None:
    m = SendMachine("lifespan")
    run(m, *setup)
    refused(m, event)


# --------------------------------------------------------------------------
# the machine itself
# --------------------------------------------------------------------------


def test_unknown_scope_type_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="gopher"):
        SendMachine("gopher")


def test_ignore_sentinel_is_never_a_state() -> None:
    m = SendMachine("sse")
    run(m, SSE_START, SSE_CLOSE, SSE_CLOSE)
    assert m.state != IGNORE


def test_extensions_default_to_empty() -> None:
    assert dict(SendMachine("http").extensions) == {}
    assert SendMachine("http", None).extensions == {}


def test_second_start_after_a_complete_response_says_so() -> None:
    machine = SendMachine("http")
    machine.send({"type": "http.response.start", "status": 200})
    machine.send({"type": "http.response.body", "body": b"x"})
    with pytest.raises(EventOrderError, match="sent twice"):
        machine.send({"type": "http.response.start", "status": 200})
