"""The helpers for writing middleware (pagi.tools.middleware.base)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from pagi.spec import Receive, Scope, Send
from pagi.tools import PlainTextResponse
from pagi.tools.exceptions import BodyTooLarge, ClientDisconnected
from pagi.tools.middleware.base import (
    BodyBuffer,
    Middleware,
    OptionError,
    ResponseStart,
    buffer_response,
    copy_scope,
    intercept_start,
    read_body,
    replay_receive,
)
from pagi.tools.testing import AsyncTestClient

pytestmark = pytest.mark.anyio


class AddHeader(Middleware):
    """A test middleware written the documented way."""

    def __init__(self, app: Any, name: str = "x-seen") -> None:
        super().__init__(app)
        self.name = name

    def wrap_send(self, scope: Scope, send: Send) -> Send:
        def edit(start: ResponseStart) -> None:
            start.headers[self.name] = scope["path"]
            start.status = 201

        return intercept_start(send, edit)


async def text_app(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("hello")(scope, receive, send)


async def test_wrap_send_hook_edits_status_and_headers() -> None:
    response = await AsyncTestClient(AddHeader(text_app)).get("/p")
    assert response.status_code == 201
    assert response.headers["x-seen"] == "/p"
    assert response.text == "hello"


async def test_other_scope_types_pass_straight_through_lifespan_included() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                kind = event["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        else:
            await PlainTextResponse("no", 403)(scope, receive, send)

    async with AsyncTestClient(AddHeader(app), lifespan="on") as client:
        assert client.state == {}
        assert (await client.get("/")).status_code == 201
    assert seen == ["lifespan", "http"]


async def test_websocket_scope_is_not_wrapped() -> None:
    from pagi.tools.testing import WebSocketDenied

    async def deny(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("no", 403)(scope, receive, send)

    with pytest.raises(WebSocketDenied) as info:
        async with AsyncTestClient(AddHeader(deny)).websocket("/ws"):
            pass
    # The denial went out unchanged: 403 and no x-seen header (the hook only runs on http).
    assert info.value.response.status_code == 403
    assert "x-seen" not in info.value.response.headers


def test_constructor_refuses_a_non_app_naming_the_option() -> None:
    with pytest.raises(OptionError, match=r"AddHeader: option 'app'"):
        AddHeader(42)
    error = OptionError("GZip", "minimum_size", "must be >= 0")
    assert isinstance(error, ValueError) and isinstance(error, TypeError)
    assert error.option == "minimum_size"


def test_copy_scope_leaves_the_original_alone() -> None:
    scope = {"type": "http", "path": "/a"}
    copied = copy_scope(scope, {"pagi.x": 1}, path="/b")
    assert copied == {"type": "http", "path": "/b", "pagi.x": 1}
    assert scope == {"type": "http", "path": "/a"}


def test_response_start_round_trip_keeps_other_fields() -> None:
    start = ResponseStart(
        {"type": "http.response.start", "status": 200, "headers": [(b"a", b"1")], "trailers": True}
    )
    start.headers.append("b", "2")
    start.status = 404
    event = start.to_event()
    assert event == {
        "type": "http.response.start",
        "status": 404,
        "headers": [(b"a", b"1"), (b"b", b"2")],
        "trailers": True,
    }
    assert ResponseStart({"type": "sse.start"}).status == 200


async def test_buffer_response_rewrites_a_single_body() -> None:
    async def finish(start: ResponseStart, body: bytes) -> bytes:
        start.headers["content-length"] = str(len(body) * 2)
        return body * 2

    class Double(Middleware):
        def wrap_send(self, scope: Scope, send: Send) -> Send:
            return buffer_response(send, finish)

    response = await AsyncTestClient(Double(text_app)).get("/")
    assert response.content == b"hellohello"
    assert response.headers["content-length"] == "10"


async def test_buffer_response_passes_streams_through_unbuffered() -> None:
    calls: list[bytes] = []

    def finish(start: ResponseStart, body: bytes) -> bytes:
        calls.append(body)
        return b"changed"

    class Tap(Middleware):
        def wrap_send(self, scope: Scope, send: Send) -> Send:
            return buffer_response(send, finish)

    first_seen = anyio.Event()

    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more": True})
        await first_seen.wait()  # a buffering send would deadlock here
        await send({"type": "http.response.body", "body": b"b"})

    client = AsyncTestClient(Tap(stream), timeout=2)
    async with client.stream("GET", "/") as response:
        chunks = []
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            first_seen.set()
    assert b"".join(chunks) == b"ab"
    assert calls == []


async def test_buffer_response_accept_can_refuse() -> None:
    class Never(Middleware):
        def wrap_send(self, scope: Scope, send: Send) -> Send:
            return buffer_response(send, lambda s, b: b"changed", accept=lambda s: s.status != 200)

    assert (await AsyncTestClient(Never(text_app)).get("/")).text == "hello"


def test_body_buffer_limit() -> None:
    buffer = BodyBuffer(4)
    assert buffer.add(b"ab") and buffer.add(b"cd")
    assert not buffer.full
    assert not buffer.add(b"e")
    assert buffer.full and len(buffer) == 5
    assert buffer.getvalue() == b"abcde"
    assert buffer.chunks == [b"abcde"]
    assert BodyBuffer(None).add(b"x" * 10_000)
    with pytest.raises(ValueError):
        BodyBuffer(-1)


def _receiver(events: list[dict[str, Any]]) -> Receive:
    queue = list(events)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


async def test_read_body_joins_chunks_and_enforces_the_limit() -> None:
    events = [
        {"type": "http.request", "body": b"ab", "more": True},
        {"type": "http.request", "body": b"cd", "more": False},
    ]
    assert await read_body(_receiver(events)) == b"abcd"
    with pytest.raises(BodyTooLarge) as info:
        await read_body(_receiver(events), limit=3)
    assert info.value.status == 413
    with pytest.raises(ClientDisconnected):
        await read_body(_receiver([{"type": "http.disconnect"}]))


async def test_replay_receive_gives_the_body_then_the_real_receive() -> None:
    receive = replay_receive(b"body", _receiver([{"type": "http.disconnect"}]))
    assert await receive() == {"type": "http.request", "body": b"body", "more": False}
    assert (await receive())["type"] == "http.disconnect"


async def test_a_body_reading_middleware_replays_to_the_app() -> None:
    class Peek(Middleware):
        async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
            body = await read_body(receive, 100)
            scope = copy_scope(scope, {"pagi.peeked": body})
            await self.app(scope, replay_receive(body, receive), send)

    async def echo(scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        await PlainTextResponse(body + b"|" + scope["pagi.peeked"])(scope, receive, send)

    response = await AsyncTestClient(Peek(echo)).post("/", content=b"xyz", chunk_size=1)
    assert response.text == "xyz|xyz"
