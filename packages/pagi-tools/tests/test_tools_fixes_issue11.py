"""Issue 11's "fix while here" items: lifespan propagation, disconnect checks, SSE item rule,
SSE/GET route fallbacks, Lint's no-response message, api.md in step with the code."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from pagi.spec import Receive, Scope, Send
from pagi.tools import (
    SSE,
    Lifespan,
    Mount,
    PlainTextResponse,
    Request,
    Router,
    ServerSentEvent,
    WebSocket,
    WebSocketDisconnect,
)
from pagi.tools.middleware.lint import Lint, LintError
from pagi.tools.testing import AsyncTestClient, LifespanFailed, SSEDeclined

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[3]


# -- lifespan reaches mounted apps, state merged -----------------------------------------------


async def test_lifespan_propagates_to_mounted_apps_and_sub_routers() -> None:
    log: list[str] = []
    sub = Router()

    @sub.get("/x")
    async def x(request: Request) -> Any:
        return {"db": request.state.get("db"), "cache": request.state.get("cache")}

    def sub_up(state: dict[str, Any]) -> None:
        log.append("sub up")
        state["cache"] = "redis"

    sub_app = Lifespan(sub, startup=[sub_up], shutdown=[lambda state: log.append("sub down")])

    def main_up(state: dict[str, Any]) -> None:
        log.append("main up")
        state["db"] = "pool"

    app = Lifespan(
        Router([Mount("/api", sub_app)]),
        startup=[main_up],
        shutdown=[lambda state: log.append("main down")],
    )
    async with AsyncTestClient(Lint(app), lifespan="on") as client:
        assert (await client.get("/api/x")).json() == {"db": "pool", "cache": "redis"}
        assert client.state == {"db": "pool", "cache": "redis"}
    assert log == ["main up", "sub up", "sub down", "main down"]


async def test_a_mounted_app_failing_startup_fails_the_whole_startup() -> None:
    def broken(state: dict[str, Any]) -> None:
        raise RuntimeError("no database")

    down: list[str] = []
    app = Lifespan(
        Router([Mount("/a", Lifespan(Router(), startup=[broken]))]),
        shutdown=[lambda state: down.append("main down")],
    )
    with pytest.raises(LifespanFailed, match="no database"):
        async with AsyncTestClient(app, lifespan="on"):
            pass
    assert down == ["main down"]  # what had started is shut down again


async def test_mounted_apps_without_lifespan_support_are_skipped() -> None:
    async def plain(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise RuntimeError("http only")
        await PlainTextResponse("plain")(scope, receive, send)

    async with AsyncTestClient(Router([Mount("/p", plain)]), lifespan="on") as client:
        assert (await client.get("/p/")).text == "plain"


async def test_lifespan_checks_the_shutdown_event_type() -> None:
    events = iter([{"type": "lifespan.startup"}, {"type": "lifespan.startup"}])
    sent: list[str] = []

    async def receive() -> Any:
        return next(events)

    async def send(event: Any) -> None:
        sent.append(event["type"])

    with pytest.raises(RuntimeError, match=r"expected lifespan\.shutdown"):
        await Lifespan(Router())({"type": "lifespan", "state": {}}, receive, send)
    assert sent == ["lifespan.startup.complete"]


# -- is_disconnected ------------------------------------------------------------------------


async def test_websocket_is_disconnected_after_the_peer_closes() -> None:
    seen: list[bool] = []
    router = Router()

    @router.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        seen.append(await websocket.is_disconnected())
        try:
            await websocket.receive_text()
        except WebSocketDisconnect:
            seen.append(await websocket.is_disconnected())
            seen.append(websocket.disconnected)

    async with AsyncTestClient(router).websocket("/ws") as session:
        await session.close()
    assert seen == [False, True, True]


async def test_sse_is_disconnected_is_awaitable() -> None:
    seen: list[bool] = []
    router = Router()

    @router.sse("/e")
    async def events(sse: SSE) -> None:
        await sse.start()
        seen.append(await sse.is_disconnected())
        await sse.wait_disconnect()
        seen.append(await sse.is_disconnected())

    async with AsyncTestClient(router).sse("/e") as session:
        await session.close()
    assert seen == [False, True]


# -- one rule for SSE items ----------------------------------------------------------------


async def test_send_and_every_read_items_the_same_way() -> None:
    router = Router()
    items: list[Any] = [
        {"data": {"n": 1}, "event": "tick", "id": "1"},
        ServerSentEvent("two", event="e2"),
        {"n": 3},
        "four",
    ]

    @router.sse("/send")
    async def by_send(sse: SSE) -> None:
        for item in items:
            await sse.send(item)
        await sse.close()

    @router.sse("/stream")
    async def by_stream(sse: SSE) -> None:
        await sse.stream(items)
        await sse.close()

    results = []
    for path in ("/send", "/stream"):
        async with AsyncTestClient(router).sse(path) as session:
            results.append([(e.data, e.event, e.id) async for e in session])
    assert (
        results[0]
        == results[1]
        == [
            ('{"n":1}', "tick", "1"),
            ("two", "e2", None),
            ('{"n":3}', None, None),
            ("four", None, None),
        ]
    )


# -- SSE request to a GET route, GET request to an SSE route -------------------------------


def mixed_router() -> Router:
    router = Router()

    @router.get("/page")
    async def page(request: Request) -> Any:
        return PlainTextResponse("a page, not a stream", 200)

    @router.sse("/events")
    async def events(sse: SSE) -> None:
        await sse.send("hi")

    return router


async def test_sse_request_to_a_get_route_gets_the_route_answer_as_a_decline() -> None:
    with pytest.raises(SSEDeclined) as declined:
        async with AsyncTestClient(mixed_router()).sse("/page"):
            pass
    assert declined.value.response.status_code == 200
    assert declined.value.response.text == "a page, not a stream"
    with pytest.raises(SSEDeclined) as missing:
        async with AsyncTestClient(mixed_router()).sse("/nowhere"):
            pass
    assert missing.value.response.status_code == 404


async def test_plain_get_to_an_sse_route_is_a_clear_406() -> None:
    got = await AsyncTestClient(mixed_router()).get("/events")
    assert got.status_code == 406
    assert "text/event-stream" in got.text
    assert (await AsyncTestClient(mixed_router()).get("/nowhere")).status_code == 404


# -- Lint's message for an app that returns without answering ------------------------------


async def test_lint_says_the_app_returned_without_a_response_and_hints_await() -> None:
    async def forgot(scope: Scope, receive: Receive, send: Send) -> None:
        send({"type": "http.response.start", "status": 200})  # type: ignore[unused-coroutine]

    # The forgotten coroutine is the app's bug: Python warns about it as it is dropped.
    with pytest.raises(LintError) as info, pytest.warns(RuntimeWarning, match="never awaited"):
        await AsyncTestClient(Lint(forgot), lifespan="off").get("/")
    message = str(info.value)
    assert message.startswith("the http app returned without sending a response")
    assert "await" in message
    assert not message.startswith("http.response.start returned")


# -- docs/tools/api.md matches the code ------------------------------------------------------


def test_api_md_matches_the_code() -> None:
    spec = importlib.util.spec_from_file_location("gen_api", ROOT / "docs" / "tools" / "gen_api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_api"] = module
    spec.loader.exec_module(module)
    current = (ROOT / "docs" / "tools" / "api.md").read_text()
    assert module.render() == current, (
        "docs/tools/api.md is stale: uv run python docs/tools/gen_api.py"
    )
