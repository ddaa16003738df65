"""pagi.tools.context: contexts for handlers, state/stash/session, WebSocket and SSE dispatch."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from pagi.tools import Lifespan, Router
from pagi.tools.context import (
    HTTPContext,
    SSEContext,
    WebSocketContext,
    context_for,
    wants_context,
)
from pagi.tools.request import Request
from pagi.tools.testing import AsyncTestClient

pytestmark = pytest.mark.anyio


async def test_http_handlers_may_take_a_context_with_state_stash_and_session() -> None:
    router = Router()

    @router.get("/items/{item}")
    async def item(ctx: HTTPContext) -> Any:
        ctx.stash["seen"] = True
        return {
            "item": ctx.path_params["item"],
            "q": ctx.query_params.get("q"),
            "db": ctx.state["db"],
            "stash": dict(ctx.stash),
            "session": ctx.session,
            "method": ctx.request.method,
        }

    @router.get("/plain")
    async def plain(request: Request) -> Any:
        return {"helper": type(request).__name__}

    def startup(state: dict[str, Any]) -> None:
        state["db"] = "pool"

    async with AsyncTestClient(Lifespan(router, startup=[startup])) as client:
        body = (await client.get("/items/7?q=x")).json()
        assert body == {
            "item": "7",
            "q": "x",
            "db": "pool",
            "stash": {"seen": True},
            "session": None,
            "method": "GET",
        }
        assert (await client.get("/plain")).json() == {"helper": "Request"}


async def test_websocket_context_dispatches_by_type_message_and_default() -> None:
    router = Router()
    log: list[Any] = []

    @router.websocket("/ws")
    async def chat(ctx: WebSocketContext) -> None:
        @ctx.on("connect")
        async def hello() -> None:
            await ctx.websocket.send_text("welcome")

        @ctx.on("ping")
        async def ping(data: dict[str, Any]) -> None:
            await ctx.websocket.send_json({"type": "pong", "n": data.get("n")})

        def on_binary(message: str | bytes) -> None:
            log.append(("default", message))

        ctx.on_default(on_binary)
        ctx.on("disconnect", lambda code: log.append(("disconnect", code)))
        ctx.on_cleanup(lambda: log.append("cleanup"))
        await ctx.run()

    client = AsyncTestClient(router, lifespan="off")
    async with client.websocket("/ws") as ws:
        assert await ws.receive_text() == "welcome"
        await ws.send_json({"type": "ping", "n": 3})
        assert await ws.receive_json() == {"type": "pong", "n": 3}
        await ws.send_bytes(b"\x01")
        await ws.send_text('{"type": "unknown"}')
        await ws.close(4001)
    with anyio.fail_after(5):
        while "cleanup" not in log:
            await anyio.sleep(0.01)
    assert log == [
        ("default", b"\x01"),
        ("default", '{"type": "unknown"}'),
        ("disconnect", 4001),
        "cleanup",
    ]


async def test_websocket_message_handler_takes_what_has_no_typed_handler() -> None:
    router = Router()

    @router.websocket("/echo")
    async def echo(ctx: WebSocketContext) -> None:
        ctx.on("message", ctx.websocket.send_text)
        await ctx.run()

    async with AsyncTestClient(router, lifespan="off").websocket("/echo") as ws:
        await ws.send_text("hi")
        assert await ws.receive_text() == "hi"


async def test_sse_context_runs_a_producer_and_cleans_up_on_disconnect() -> None:
    router = Router()
    cleaned = anyio.Event()
    reasons: list[Any] = []

    @router.sse("/feed")
    async def feed(ctx: SSEContext) -> None:
        ctx.on("disconnect", reasons.append)
        ctx.on_cleanup(cleaned.set)

        async def produce() -> None:
            for n in range(3):
                await ctx.sse.send({"n": n})
            await anyio.sleep_forever()

        await ctx.run(produce)

    async with AsyncTestClient(router, lifespan="off").sse("/feed") as stream:
        assert [(await stream.receive_event()).json() for _ in range(3)] == [
            {"n": 0},
            {"n": 1},
            {"n": 2},
        ]
    with anyio.fail_after(5):
        await cleaned.wait()
    assert reasons and reasons[0]


def test_context_for_and_wants_context() -> None:
    async def receive() -> Any:
        return {}

    async def send(message: Any) -> None:
        return None

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    assert isinstance(context_for(scope, receive, send), HTTPContext)
    with pytest.raises(TypeError):
        context_for({"type": "lifespan"}, receive, send)

    async def with_ctx(ctx: SSEContext) -> None: ...

    async def with_helper(request: Request) -> None: ...

    assert wants_context(with_ctx) and not wants_context(with_helper)
