"""Class-based endpoints and the Lifespan helper."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from pagi.tools import (
    SSE,
    HTTPEndpoint,
    Lifespan,
    PlainTextResponse,
    Request,
    Route,
    Router,
    SSEEndpoint,
    SSERoute,
    WebSocket,
    WebSocketEndpoint,
    WebSocketRoute,
)
from pagi.tools.testing import AsyncTestClient, LifespanFailed, TestClient

pytestmark = pytest.mark.anyio


class Item(HTTPEndpoint):
    async def get(self, request: Request) -> Any:
        return {"id": request.path_params["id"]}

    async def put(self, request: Request) -> Any:
        return PlainTextResponse("updated", 202)


async def test_http_endpoint_dispatch_head_options_405() -> None:
    client = AsyncTestClient(Router([Route("/items/{id:int}", Item)]))
    assert (await client.get("/items/3")).json() == {"id": 3}
    assert (await client.put("/items/3")).status_code == 202
    assert (await client.head("/items/3")).content == b""
    r = await client.options("/items/3")
    assert (r.status_code, r.headers["allow"]) == (204, "GET, HEAD, OPTIONS, PUT")
    r = await client.delete("/items/3")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD, OPTIONS, PUT"
    # The class itself is an app.
    assert (await AsyncTestClient(Item, lifespan="off").post("/")).status_code == 405


class Chat(WebSocketEndpoint):
    encoding = "json"
    log: list[Any] = []

    async def on_connect(self, websocket: WebSocket) -> None:
        await websocket.accept(subprotocol="chat")

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        await websocket.send_json({"echo": data})

    async def on_disconnect(self, websocket: WebSocket, code: int, reason: str) -> None:
        self.log.append((code, reason))


async def test_websocket_endpoint_hooks() -> None:
    Chat.log.clear()
    client = AsyncTestClient(Router([WebSocketRoute("/chat", Chat)]))
    async with client.websocket("/chat", subprotocols=["chat"]) as ws:
        await ws.send_json({"a": 1})
        assert await ws.receive_json() == {"echo": {"a": 1}}
        await ws.close(1001, "leaving")
    async with client.websocket("/chat") as ws:
        await ws.send_text("not json")
        with pytest.raises(Exception, match="1003"):
            await ws.receive()
    assert Chat.log == [(1001, "leaving"), (1003, Chat.log[1][1])]


class Clock(SSEEndpoint):
    keepalive_interval = 10
    ended: list[str | None] = []

    async def stream(self, sse: SSE) -> None:
        for n in range(100):
            await sse.send(str(n), event="tick")
            await anyio.sleep(0.001)

    async def on_disconnect(self, sse: SSE) -> None:
        self.ended.append(sse.disconnect_reason)


async def test_sse_endpoint_streams_until_disconnect() -> None:
    Clock.ended.clear()
    client = AsyncTestClient(Router([SSERoute("/clock", Clock)]))
    async with client.sse("/clock") as session:
        assert [(await session.receive_event()).data for _ in range(2)] == ["0", "1"]
        assert session.keepalive is not None and session.keepalive["interval"] == 10
        await session.close()
    assert Clock.ended == ["client_closed"]


async def test_lifespan_hooks_context_and_state_in_requests() -> None:
    events: list[str] = []

    async def show(request: Request) -> Any:
        request.state["local"] = "only here"  # top-level keys stay in this request
        return {"db": request.state["db"], "cache": request.state["cache"]}

    lifespan = Lifespan(Router([Route("/", show)]))

    @lifespan.on_startup
    async def open_db(state: dict[str, Any]) -> None:
        events.append("startup")
        state["db"] = "pool"

    @lifespan.on_shutdown
    def close_db(state: dict[str, Any]) -> None:
        events.append("shutdown")

    @asynccontextmanager
    async def cache(state: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        events.append("cache-in")
        yield {"cache": "warm"}
        events.append("cache-out")

    lifespan.contexts.append(cache)
    async with AsyncTestClient(lifespan, lifespan="on") as client:
        assert (await client.get("/")).json() == {"db": "pool", "cache": "warm"}
        assert "local" not in client.state
    assert events == ["startup", "cache-in", "cache-out", "shutdown"]


async def test_lifespan_startup_failure_reports_message() -> None:
    def broken(state: dict[str, Any]) -> None:
        raise ConnectionError("database down")

    with pytest.raises(LifespanFailed, match="ConnectionError: database down"):
        async with AsyncTestClient(Lifespan(Router(), startup=[broken])):
            pass


async def test_lifespan_shutdown_runs_every_hook_and_joins_errors() -> None:
    ran: list[str] = []

    def first(state: dict[str, Any]) -> None:
        ran.append("first")

    def failing(state: dict[str, Any]) -> None:
        ran.append("failing")
        raise RuntimeError("oops")

    with pytest.raises(LifespanFailed, match="RuntimeError: oops"):
        async with AsyncTestClient(Lifespan(Router(), shutdown=[first, failing])):
            pass
    assert ran == ["failing", "first"]  # reverse order, all of them


async def test_lifespan_supplies_state_when_server_does_not() -> None:
    async def show(request: Request) -> Any:
        return {"state": request.state}

    app = Lifespan(Router([Route("/", show)]))
    app.state["x"] = 1
    assert (await AsyncTestClient(app, lifespan="off").get("/")).json() == {"state": {"x": 1}}


def test_sync_client_runs_lifespan_on_trio() -> None:
    seen: list[str] = []
    app = Lifespan(
        Router(), startup=[lambda s: seen.append("up")], shutdown=[lambda s: seen.append("down")]
    )
    with TestClient(app, backend="trio") as client:
        assert seen == ["up"]
        assert client.get("/").status_code == 404
    assert seen == ["up", "down"]
