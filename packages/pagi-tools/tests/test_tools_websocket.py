"""The WebSocket helper and the test client's WebSocket sessions."""

from __future__ import annotations

from typing import Any

import pytest

from pagi.spec import EventError
from pagi.tools import PlainTextResponse, WebSocket, WebSocketDisconnect, WebSocketState
from pagi.tools.handlers import websocket_session
from pagi.tools.testing import AsyncTestClient, TestClient, WebSocketDenied

pytestmark = pytest.mark.anyio


def client_for(handler: Any, **options: Any) -> AsyncTestClient:
    return AsyncTestClient(websocket_session(handler), lifespan="off", **options)


async def test_accept_with_subprotocol_and_headers_then_echo() -> None:
    async def echo(ws: WebSocket) -> None:
        await ws.accept(subprotocol=ws.subprotocols[-1], headers={"x-server": "pagi"})
        async for message in ws:
            if isinstance(message, str):
                await ws.send_text(message.upper())
            else:
                await ws.send_bytes(message[::-1])

    async with client_for(echo).websocket("/", subprotocols=["a", "b"]) as session:
        assert session.subprotocol == "b"
        assert session.accept_headers["x-server"] == "pagi"
        await session.send_text("hi")
        assert await session.receive_text() == "HI"
        await session.send_bytes(b"abc")
        assert await session.receive_bytes() == b"cba"


async def test_json_both_ways_and_close_code_seen_by_app() -> None:
    closed: list[Any] = []

    async def app(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                data = await ws.receive_json()
                await ws.send_json({"got": data}, mode="binary")
        except WebSocketDisconnect as exc:
            closed.append((exc.code, exc.reason, ws.phase, ws.close_code))

    async with client_for(app).websocket("/") as session:
        await session.send_json([1, "two"])
        assert await session.receive_json() == {"got": [1, "two"]}
        await session.close(4001, "bye")
    assert closed == [(4001, "bye", WebSocketState.CLOSED, 4001)]


async def test_app_close_reaches_client() -> None:
    async def app(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text("last")
        await ws.close(4000, "done")
        await ws.close()  # idempotent

    async with client_for(app).websocket("/") as session:
        assert await session.receive_text() == "last"
        with pytest.raises(WebSocketDisconnect) as info:
            await session.receive_text()
        assert (info.value.code, info.value.reason) == (4000, "done")


async def test_deny_with_custom_response_when_extension_advertised() -> None:
    async def app(ws: WebSocket) -> None:
        assert ws.supports_denial
        await ws.deny(PlainTextResponse("go away", 401, headers={"www-authenticate": "Bearer"}))

    with pytest.raises(WebSocketDenied) as info:
        async with client_for(app).websocket("/"):
            pass
    response = info.value.response
    assert (response.status_code, response.text, response.headers["www-authenticate"]) == (
        401,
        "go away",
        "Bearer",
    )


async def test_deny_falls_back_to_close_without_extension() -> None:
    events: list[str] = []

    async def app(ws: WebSocket) -> None:
        events.append(str(ws.supports_denial))
        await ws.deny(status=401)

    with pytest.raises(WebSocketDenied) as info:
        async with client_for(app, websocket_denial=False).websocket("/"):
            pass
    assert info.value.response.status_code == 403
    assert events == ["False"]


async def test_handler_that_never_accepts_is_denied() -> None:
    async def app(ws: WebSocket) -> None:
        return None

    with pytest.raises(WebSocketDenied):
        async with client_for(app).websocket("/"):
            pass


async def test_keepalive_and_sends_after_close_are_noops() -> None:
    async def app(ws: WebSocket) -> None:
        await ws.accept()
        await ws.keepalive(15, timeout=5)
        await ws.send_text("x")
        try:
            await ws.receive_text()
        except WebSocketDisconnect:
            await ws.send_text("ignored")  # peer gone: no-op, no error

    async with client_for(app).websocket("/") as session:
        assert await session.receive_text() == "x"
        assert session.keepalive == {
            "type": "websocket.keepalive",
            "interval": 15,
            "timeout": 5,
        }


async def test_helper_misuse_raises() -> None:
    async def app(ws: WebSocket) -> None:
        with pytest.raises(RuntimeError, match="accept"):
            await ws.send_text("too early")
        await ws.accept()
        with pytest.raises(RuntimeError):
            await ws.accept()
        await ws.send_text("ok")

    async with client_for(app).websocket("/") as session:
        assert await session.receive_text() == "ok"
    with pytest.raises(TypeError):
        WebSocket({"type": "http"}, None, None)  # type: ignore[arg-type]


async def test_raw_app_breaking_the_protocol_raises_in_the_test() -> None:
    async def raw(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.send", "text": "before accept"})

    with pytest.raises(EventError, match=r"before websocket\.accept"):
        async with AsyncTestClient(raw, lifespan="off").websocket("/"):
            pass


async def test_session_receive_times_out() -> None:
    async def silent(ws: WebSocket) -> None:
        await ws.accept()
        await ws.receive_text()

    async with client_for(silent, timeout=0.05).websocket("/") as session:
        with pytest.raises(TimeoutError):
            await session.receive_text()


def test_sync_client_websocket() -> None:
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        async for text in ws.iter_text():
            await ws.send_text(text * 2)

    with TestClient(websocket_session(echo), lifespan="off").websocket("/") as session:
        session.send_text("ab")
        assert session.receive_text() == "abab"
