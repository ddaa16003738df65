"""Unit tests of the stream classes (``streams/http.py``, ``sse.py``, ``websocket.py``).

A stream never sees a socket: it talks to its driver through a wire
interface (``ResponseWire``, ``WebSocketWire``). These tests give it a
recording wire and drive both of its sides by hand, so event order,
validation, disconnect reporting and the queue bounds are checked without
any network or timing. The socket-level behaviour is in test_server_http.py,
test_server_sse.py and test_server_websocket.py.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from pagi.server.streams.http import HTTPStream
from pagi.server.streams.sse import SSEStream
from pagi.server.streams.websocket import WebSocketStream
from pagi.spec import EventError

pytestmark = pytest.mark.anyio


class RecordingWire:
    """A ``ResponseWire`` that records what the stream asks of it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.head_written = False

    def start(self, status: int, headers: list[tuple[bytes, bytes]], trailers: bool) -> None:
        self.calls.append(("start", status, headers, trailers))

    async def body(self, data: bytes, final: bool) -> None:
        self.head_written = True
        self.calls.append(("body", bytes(data), final))

    async def trailers(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.calls.append(("trailers", headers))

    async def flush(self) -> None:
        self.head_written = True
        self.calls.append(("flush",))

    async def send_continue(self) -> None:
        self.calls.append(("continue",))

    def error_response(self, status: int) -> None:
        self.head_written = True
        self.calls.append(("error_response", status))

    def abort(self) -> None:
        self.calls.append(("abort",))


def http_stream(
    method: str = "GET", *, has_body: bool = True, expect_continue: bool = False
) -> tuple[HTTPStream, RecordingWire]:
    wire = RecordingWire()
    scope: dict[str, Any] = {"type": "http", "method": method, "headers": [], "extensions": {}}
    stream = HTTPStream(
        scope, wire, transport=None, has_body=has_body, expect_continue=expect_continue
    )
    return stream, wire


# --- HTTPStream: receive -------------------------------------------------------------------


async def test_http_body_events_coalesce_and_end_with_more_false_R_HTTP_11() -> None:
    stream, _ = http_stream("POST")
    stream.feed(b"ab")
    stream.feed(b"cd")
    assert await stream.receive() == {"type": "http.request", "body": b"abcd", "more": True}
    stream.feed(b"e")
    stream.end_body()
    assert await stream.receive() == {"type": "http.request", "body": b"e", "more": False}


async def test_http_request_without_body_is_one_empty_event_R_HTTP_11() -> None:
    stream, _ = http_stream(has_body=False)
    assert await stream.receive() == {"type": "http.request", "body": b"", "more": False}


async def test_http_receive_waits_for_the_body_as_it_arrives() -> None:
    stream, _ = http_stream("POST")
    got: list[dict[str, Any]] = []

    async def reader() -> None:
        got.append(await stream.receive())

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        await anyio.wait_all_tasks_blocked()
        assert got == []
        stream.feed(b"late")
    assert got == [{"type": "http.request", "body": b"late", "more": True}]


async def test_http_receive_after_body_pends_until_response_then_disconnect_R_HTTP_13_14() -> None:
    stream, _ = http_stream(has_body=False)
    await stream.receive()
    got: list[dict[str, Any]] = []

    async def reader() -> None:
        got.append(await stream.receive())

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        await anyio.wait_all_tasks_blocked()
        assert got == []  # pending while the response is under way (R-HTTP-14)
        await stream.send({"type": "http.response.start", "status": 200})
        await anyio.wait_all_tasks_blocked()
        assert got == []
        await stream.send({"type": "http.response.body", "body": b"done"})
    assert got == [{"type": "http.disconnect"}]
    assert await stream.receive() == {"type": "http.disconnect"}  # and at once afterwards


async def test_http_100_continue_is_sent_once_when_the_app_asks_for_the_body() -> None:
    stream, wire = http_stream("POST", expect_continue=True)
    assert wire.calls == []  # not before the app wants the body
    async with anyio.create_task_group() as tg:
        tg.start_soon(stream.receive)
        await anyio.wait_all_tasks_blocked()
        stream.feed(b"x")
    assert wire.calls == [("continue",)]
    stream.end_body()
    await stream.receive()
    assert wire.calls == [("continue",)]


# --- HTTPStream: disconnect ----------------------------------------------------------------


async def test_http_disconnect_updates_connection_then_wakes_receive_R_HTTP_15_R_CONN_40() -> None:
    stream, _ = http_stream("POST")
    connection = stream.scope["pagi.connection"]
    seen: list[tuple[bool, str | None]] = []
    connection.on_disconnect(lambda reason: seen.append((connection.is_connected(), reason)))
    got: list[dict[str, Any]] = []

    async def reader() -> None:
        got.append(await stream.receive())

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        await anyio.wait_all_tasks_blocked()
        stream.disconnect("client_closed")
        assert seen == [(False, "client_closed")]  # state first, callbacks next...
        assert got == []  # ...then the event
    assert got == [{"type": "http.disconnect"}]
    assert connection.disconnect_reason() == "client_closed"


async def test_http_sends_after_disconnect_are_silent_no_ops_R_HTTP_61() -> None:
    stream, wire = http_stream()
    stream.disconnect("client_closed")
    await stream.send({"type": "http.response.start", "status": 200})
    await stream.send({"type": "http.response.body", "body": b"nobody hears this"})
    assert wire.calls == []


# --- HTTPStream: send validation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"type": "http.response.start"}, "status"),  # missing (R-ERR-1)
        ({"type": "http.response.start", "status": "200"}, "status"),  # wrong type (R-ERR-2)
        ({"type": "http.response.start", "status": 200, "headers": [(b"x", b"a\r\nb")]}, "headers"),
        (
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"x")]},
            "headers",
        ),
    ],
)
async def test_http_bad_start_raises_naming_the_field_and_writes_nothing_R_ERR_1_2_R_HTTP_32(
    event: dict[str, Any], field: str
) -> None:
    stream, wire = http_stream()
    with pytest.raises(EventError) as info:
        await stream.send(event)
    assert info.value.field == field
    assert field in str(info.value)
    assert wire.calls == []
    await stream.send({"type": "http.response.start", "status": 204})  # the app may correct it
    assert wire.calls == [("start", 204, [], False)]


async def test_http_unknown_event_and_body_before_start_raise_R_ERR_3() -> None:
    stream, wire = http_stream()
    with pytest.raises(EventError, match=r"http\.response\.nope"):
        await stream.send({"type": "http.response.nope"})
    with pytest.raises(EventError, match=r"before http\.response\.start"):
        await stream.send({"type": "http.response.body", "body": b"x"})
    assert wire.calls == []


async def test_http_body_over_content_length_raises_and_may_be_corrected() -> None:
    stream, wire = http_stream()
    headers = [(b"content-length", b"3")]
    await stream.send({"type": "http.response.start", "status": 200, "headers": headers})
    with pytest.raises(EventError) as info:
        await stream.send({"type": "http.response.body", "body": b"abcd"})
    assert info.value.field == "body" and "1 bytes longer" in str(info.value)
    assert [c[0] for c in wire.calls] == ["start"]  # nothing written
    await stream.send({"type": "http.response.body", "body": b"abc"})
    assert wire.calls[-1] == ("body", b"abc", True)
    assert stream.connection.response_complete()


async def test_http_body_short_of_content_length_aborts_after_the_bytes() -> None:
    stream, wire = http_stream()
    headers = [(b"content-length", b"5")]
    await stream.send({"type": "http.response.start", "status": 200, "headers": headers})
    await stream.send({"type": "http.response.body", "body": b"abc"})
    assert wire.calls[-2:] == [("abort",), ("body", b"abc", True)]


@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304)])
async def test_http_bodiless_responses_keep_content_length_unchecked(
    method: str, status: int
) -> None:
    stream, wire = http_stream(method)
    headers = [(b"content-length", b"10")]
    await stream.send({"type": "http.response.start", "status": status, "headers": headers})
    await stream.send({"type": "http.response.body", "body": b""})
    assert ("abort",) not in wire.calls  # no short-body abort: there is no body


async def test_http_trailers_complete_the_response() -> None:
    stream, wire = http_stream()
    await stream.send({"type": "http.response.start", "status": 200, "trailers": True})
    await stream.send({"type": "http.response.body", "body": b"x"})
    assert not stream.connection.response_complete()
    await stream.send({"type": "http.response.trailers", "headers": [(b"x-sum", b"1")]})
    assert stream.connection.response_complete()
    assert wire.calls[-1] == ("trailers", [(b"x-sum", b"1")])


# --- HTTPStream: the backstop --------------------------------------------------------------


async def test_http_app_error_before_any_byte_gets_500_R_HERR_10() -> None:
    stream, wire = http_stream()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    failure = await stream.run(app)
    assert isinstance(failure, RuntimeError)
    assert wire.calls == [("error_response", 500)]
    assert stream.connection.disconnect_reason() == "server_error"


async def test_http_app_error_after_bytes_truncates_R_HERR_6() -> None:
    stream, wire = http_stream()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"half", "more": True})
        raise RuntimeError("boom")

    await stream.run(app)
    assert wire.calls[-1] == ("abort",)
    assert ("error_response", 500) not in wire.calls


async def test_http_app_returning_without_response_gets_500() -> None:
    stream, wire = http_stream()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    assert await stream.run(app) is None
    assert wire.calls == [("error_response", 500)]


async def test_http_nothing_sent_when_the_client_already_left_R_HERR_12() -> None:
    stream, wire = http_stream()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        stream.disconnect("client_closed")
        raise RuntimeError("too late to tell anyone")

    await stream.run(app)
    assert wire.calls == []


# --- SSEStream -------------------------------------------------------------------------------


def sse_stream() -> tuple[SSEStream, RecordingWire]:
    request, wire = http_stream(has_body=False)
    request.scope["type"] = "sse"
    return SSEStream(request), wire


async def test_sse_receive_maps_the_request_then_disconnect_R_SSE_10_11() -> None:
    sse, _ = sse_stream()
    assert "pagi.connection" not in sse.scope  # http scopes only
    assert await sse.receive() == {"type": "sse.request", "body": b"", "more": False}
    sse.request.disconnect("client_closed")
    assert await sse.receive() == {"type": "sse.disconnect", "reason": "client_closed"}


async def test_sse_start_adds_event_stream_headers_and_flushes_R_SSE_21() -> None:
    sse, wire = sse_stream()
    headers = [(b"X-Mine", b"1"), (b"content-length", b"99")]
    await sse.send({"type": "sse.start", "headers": headers})
    assert wire.calls == [
        (
            "start",
            200,
            [(b"x-mine", b"1"), (b"content-type", b"text/event-stream"),
             (b"cache-control", b"no-cache")],
            False,
        ),
        ("flush",),
    ]  # fmt: skip


async def test_sse_events_and_comments_are_formatted_R_SSE_33_34_40_41() -> None:
    sse, wire = sse_stream()
    await sse.send({"type": "sse.start"})
    event = {"type": "sse.send", "data": "a\r\nb\rc\nd", "event": "e", "id": "7", "retry": 50}
    await sse.send(event)
    await sse.send({"type": "sse.comment", "comment": "one\nevent: forged"})
    assert wire.calls[-2] == (
        "body",
        b"event: e\nid: 7\nretry: 50\ndata: a\ndata: b\ndata: c\ndata: d\n\n",
        False,
    )
    assert wire.calls[-1] == ("body", b":one\n:event: forged\n\n", False)


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"type": "sse.send", "data": "x", "event": "a\nb"}, "event"),  # R-SSE-31
        ({"type": "sse.send", "data": "x", "id": "1\r"}, "id"),  # R-SSE-31
        ({"type": "sse.send", "data": "x", "retry": -1}, "retry"),  # R-SSE-32
        ({"type": "sse.send"}, "data"),  # R-SSE-35
    ],
)
async def test_sse_bad_events_raise_naming_the_field(event: dict[str, Any], field: str) -> None:
    sse, wire = sse_stream()
    await sse.send({"type": "sse.start"})
    before = list(wire.calls)
    with pytest.raises(EventError) as info:
        await sse.send(event)
    assert info.value.field == field
    assert wire.calls == before


async def test_sse_send_before_start_raises_R_SSE_20() -> None:
    sse, wire = sse_stream()
    with pytest.raises(EventError):
        await sse.send({"type": "sse.send", "data": "too early"})
    assert wire.calls == []


async def test_sse_close_ends_the_stream_then_sends_raise_R_SSE_51_52_53() -> None:
    sse, wire = sse_stream()
    await sse.send({"type": "sse.start"})
    await sse.send({"type": "sse.close", "reason": "done-here"})
    assert wire.calls[-1] == ("body", b"", True)  # the terminator, at once
    await sse.send({"type": "sse.close"})  # idempotent (R-SSE-53)
    with pytest.raises(EventError):
        await sse.send({"type": "sse.send", "data": "after close"})  # R-SSE-52
    # The reason is server-side only (R-SSE-54) and what receive reports.
    assert await sse.receive() == {"type": "sse.disconnect", "reason": "done-here"}


async def test_sse_sends_after_the_client_left_are_no_ops_R_SSE_12() -> None:
    sse, wire = sse_stream()
    await sse.send({"type": "sse.start"})
    before = list(wire.calls)
    sse.request.disconnect("write_error")
    await sse.send({"type": "sse.send", "data": "lost"})
    await sse.send({"type": "sse.comment", "comment": "lost"})
    assert wire.calls == before
    assert await sse.receive() == {"type": "sse.disconnect", "reason": "write_error"}


async def test_sse_decline_is_a_plain_response_then_the_end_R_SSE_61_62_63() -> None:
    sse, wire = sse_stream()
    start = {"type": "sse.http.response.start", "status": 204, "headers": [(b"x-why", b"no")]}
    await sse.send(start)
    with pytest.raises(EventError):
        await sse.send({"type": "sse.send", "data": "x"})  # first send wins (R-SSE-63)
    await sse.send({"type": "sse.http.response.body", "body": b"par", "more": True})
    await sse.send({"type": "sse.http.response.body", "body": b"t"})
    assert wire.calls == [
        (
            "start",
            204,
            [(b"x-why", b"no"), (b"content-length", b"4"), (b"connection", b"close")],
            False,
        ),
        ("body", b"part", True),
    ]
    assert await sse.receive() == {"type": "sse.disconnect", "reason": "x-declined"}


async def test_sse_server_end_reports_the_reason() -> None:
    sse, _ = sse_stream()
    await sse.send({"type": "sse.start"})
    sse.end("server_shutdown")
    assert await sse.receive() == {"type": "sse.disconnect", "reason": "server_shutdown"}


# --- WebSocketStream -------------------------------------------------------------------------


class RecordingWSWire:
    """A ``WebSocketWire`` that records what the stream asks of it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        self.calls.append(("accept", subprotocol, headers))

    async def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.calls.append(("respond", status, headers, body))

    async def send_message(self, data: str | bytes) -> None:
        if isinstance(data, str):
            data.encode("utf-8")  # as a real wire does: a lone surrogate cannot go out
        self.calls.append(("message", data))

    async def close(self, code: int, reason: str) -> None:
        self.calls.append(("close", code, reason))

    def keepalive(self, interval: float, timeout: float | None) -> None:
        self.calls.append(("keepalive", interval, timeout))

    def end_after_return(self, failed: bool) -> None:
        self.calls.append(("end_after_return", failed))


def ws_stream(
    *, offered: bytes = b"", max_queue: int = 100, max_queue_bytes: int = 1 << 20
) -> tuple[WebSocketStream, RecordingWSWire]:
    wire = RecordingWSWire()
    headers = [(b"sec-websocket-protocol", offered)] if offered else []
    scope: dict[str, Any] = {
        "type": "websocket",
        "method": "GET",
        "headers": headers,
        "extensions": {},
        "pagi.connection": object(),
    }
    stream = WebSocketStream(
        scope, wire, transport=None, max_queue=max_queue, max_queue_bytes=max_queue_bytes
    )
    return stream, wire


async def test_ws_scope_offers_denial_and_parses_subprotocols_R_WSDENY_1() -> None:
    stream, _ = ws_stream(offered=b"chat, superchat ,,json")
    assert stream.scope["extensions"]["websocket.http.response"] == {}
    assert stream.scope["subprotocols"] == ["chat", "superchat", "json"]
    assert "pagi.connection" not in stream.scope and "method" not in stream.scope


async def test_ws_connect_first_then_messages_in_order_then_disconnect_R_WS_10_13() -> None:
    stream, _ = ws_stream()
    stream.feed_message("one")
    stream.feed_message(b"\x00two")
    assert await stream.receive() == {"type": "websocket.connect"}  # first, whatever is queued
    assert await stream.receive() == {"type": "websocket.receive", "text": "one"}
    assert await stream.receive() == {"type": "websocket.receive", "bytes": b"\x00two"}
    stream.disconnected(1001, "")
    stream.disconnected(1006, "client_closed")  # the first report wins
    expected = {"type": "websocket.disconnect", "code": 1001, "reason": ""}
    assert await stream.receive() == expected
    assert await stream.receive() == expected  # again on every later call, never a hang


async def test_ws_messages_queued_before_a_disconnect_are_still_delivered() -> None:
    stream, _ = ws_stream()
    await stream.receive()
    stream.feed_message("last words")
    stream.disconnected(1000, "bye")
    assert (await stream.receive())["text"] == "last words"
    assert (await stream.receive())["type"] == "websocket.disconnect"
    assert stream.feed_message("ignored") is True  # after the end: dropped, not queued
    assert stream.queued_bytes == 0


async def test_ws_receive_waits_for_a_message() -> None:
    stream, _ = ws_stream()
    await stream.receive()
    got: list[dict[str, Any]] = []

    async def reader() -> None:
        got.append(await stream.receive())

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        await anyio.wait_all_tasks_blocked()
        assert got == []
        stream.feed_message("hi")
    assert got == [{"type": "websocket.receive", "text": "hi"}]


async def test_ws_message_count_bound_refuses_the_next_one_R_WSP_4() -> None:
    stream, _ = ws_stream(max_queue=2)
    assert stream.feed_message("a") and stream.feed_message("b")
    assert stream.feed_message("c") is False  # the driver closes 1008 queue_overflow
    await stream.receive()  # connect
    await stream.receive()  # "a": room for one more
    assert stream.feed_message("c") is True


async def test_ws_byte_bound_backlogs_until_half_is_taken() -> None:
    stream, _ = ws_stream(max_queue_bytes=100)
    await stream.receive()
    for _ in range(4):
        stream.feed_message(b"x" * 30)
    assert stream.queued_bytes == 120 and stream.backlogged
    resumed = anyio.Event()

    async def driver() -> None:
        await stream.wait_room()
        resumed.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(driver)
        await stream.receive()  # 90 left: below the bound, above half
        await anyio.wait_all_tasks_blocked()
        assert not stream.backlogged and not resumed.is_set()
        await stream.receive()  # 60
        await stream.receive()  # 30: at most half
        with anyio.fail_after(5):
            await resumed.wait()


async def test_ws_send_before_accept_and_bad_messages_raise_R_WS_14_20() -> None:
    stream, wire = ws_stream()
    await stream.receive()
    with pytest.raises(EventError):
        await stream.send({"type": "websocket.send", "text": "too early"})  # R-WS-20
    await stream.send({"type": "websocket.accept"})
    with pytest.raises(EventError):
        await stream.send({"type": "websocket.send", "text": "a", "bytes": b"b"})  # R-WS-14
    with pytest.raises(EventError):
        await stream.send({"type": "websocket.send"})
    with pytest.raises(EventError) as info:
        await stream.send({"type": "websocket.send", "text": "\ud800"})  # no UTF-8 for it
    assert info.value.field == "text"
    assert wire.calls == [("accept", None, [])]


async def test_ws_unoffered_subprotocol_raises_naming_it_and_may_be_corrected() -> None:
    stream, wire = ws_stream(offered=b"chat")
    await stream.receive()
    with pytest.raises(EventError) as info:
        await stream.send({"type": "websocket.accept", "subprotocol": "other"})
    assert info.value.field == "subprotocol" and "chat" in str(info.value)
    assert wire.calls == []
    await stream.send({"type": "websocket.accept", "subprotocol": "chat"})
    assert stream.accepted and wire.calls == [("accept", "chat", [])]


async def test_ws_close_before_accept_is_403_and_receive_never_hangs_R_WS_12() -> None:
    stream, wire = ws_stream()
    await stream.receive()
    await stream.send({"type": "websocket.close"})
    assert wire.calls == [
        ("respond", 403, [(b"content-type", b"text/plain; charset=utf-8")], b"Forbidden\n")
    ]
    assert stream.status == 403 and stream.ended
    assert (await stream.receive())["type"] == "websocket.disconnect"


async def test_ws_denial_response_and_denial_after_accept_is_ignored_R_WSDENY_4_6() -> None:
    stream, wire = ws_stream()
    await stream.receive()
    start = {"type": "websocket.http.response.start", "status": 401, "headers": []}
    await stream.send(start)
    await stream.send({"type": "websocket.http.response.body", "body": b"who", "more": True})
    await stream.send({"type": "websocket.http.response.body", "body": b"?"})
    assert wire.calls == [("respond", 401, [], b"who?")]

    accepted, accepted_wire = ws_stream()
    await accepted.receive()
    await accepted.send({"type": "websocket.accept"})
    await accepted.send(start)  # ignored, not an error (R-WSDENY-6)
    assert accepted_wire.calls == [("accept", None, [])]


async def test_ws_close_and_sends_after_the_peer_left_R_WS_17_18() -> None:
    stream, wire = ws_stream()
    await stream.receive()
    await stream.send({"type": "websocket.accept"})
    await stream.send({"type": "websocket.close", "code": 4000, "reason": "bye"})
    assert wire.calls[-1] == ("close", 4000, "bye")
    gone, gone_wire = ws_stream()
    await gone.receive()
    await gone.send({"type": "websocket.accept"})
    gone.disconnected(1006, "client_closed")
    await gone.send({"type": "websocket.send", "text": "nobody"})
    assert gone_wire.calls == [("accept", None, [])]
    assert await gone.receive() == {
        "type": "websocket.disconnect",
        "code": 1006,
        "reason": "client_closed",
    }


async def test_ws_backstops_when_the_app_returns_R_WS_21_22() -> None:
    async def returns(scope: Any, receive: Any, send: Any) -> None:
        await receive()

    async def raises(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    async def accepts_and_raises(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})
        raise RuntimeError("boom")

    stream, wire = ws_stream()
    await stream.run(returns)
    assert [c[:2] for c in wire.calls] == [("respond", 403)]
    stream, wire = ws_stream()
    await stream.run(raises)
    assert [c[:2] for c in wire.calls] == [("respond", 500)]
    stream, wire = ws_stream()
    await stream.run(accepts_and_raises)
    assert wire.calls[-1] == ("end_after_return", True)
