"""ErrorHandler and Router(exception_handlers=...): exceptions become answers."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from pagi.spec import Receive, Scope, Send
from pagi.tools import (
    SSE,
    HTTPException,
    JSONResponse,
    PlainTextResponse,
    Request,
    Router,
    WebSocket,
    WebSocketDisconnect,
)
from pagi.tools.middleware import ErrorHandler, OptionError
from pagi.tools.middleware.lint import Lint
from pagi.tools.testing import AsyncTestClient, SSEDeclined, WebSocketDenied

pytestmark = pytest.mark.anyio


class Boom(Exception):
    pass


def make_router() -> Router:
    router = Router()

    @router.get("/boom")
    async def boom(request: Request) -> Any:
        secret_local = "<script>alert(1)</script>"  # noqa: F841 - shown on the debug page
        raise Boom("bad <b>thing</b>")

    @router.get("/teapot")
    async def teapot(request: Request) -> Any:
        raise HTTPException(418, "short and stout", headers={"x-pot": "1"})

    @router.get("/key")
    async def key(request: Request) -> Any:
        raise KeyError("k")

    @router.get("/index")
    async def index(request: Request) -> Any:
        raise IndexError("i")

    @router.get("/ok")
    async def ok(request: Request) -> Any:
        return "fine"

    return router


def error_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "pagi.tools.errors" and r.levelno >= 40]


async def test_unhandled_error_is_a_plain_500_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = AsyncTestClient(Lint(ErrorHandler(make_router())))
    response = await client.get("/boom")
    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    assert "Boom" not in response.text
    records = error_records(caplog)
    assert len(records) == 1
    assert records[0].exc_info is not None and records[0].exc_info[0] is Boom
    assert (await client.get("/ok")).text == "fine"


async def test_debug_page_is_escaped_html_with_locals_and_collapsible_frames() -> None:
    response = await AsyncTestClient(ErrorHandler(make_router(), debug=True)).get(
        "/boom", headers={"accept": "text/html"}
    )
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<details" in page and "<summary>" in page
    assert "bad &lt;b&gt;thing&lt;/b&gt;" in page and "<b>thing</b>" not in page
    assert "secret_local" in page
    assert "&lt;script&gt;" in page and "<script>alert" not in page
    assert "test_tools_error_handler.py" in page


async def test_debug_page_is_json_for_api_clients() -> None:
    response = await AsyncTestClient(ErrorHandler(make_router(), debug=True)).get(
        "/boom", headers={"accept": "application/json"}
    )
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["type"].endswith("Boom")
    assert error["message"] == "bad <b>thing</b>"
    assert any(frame["function"] == "boom" for frame in error["frames"])
    boom_frame = next(f for f in error["frames"] if f["function"] == "boom")
    assert "secret_local" in boom_frame["locals"]


async def test_http_exception_keeps_status_and_headers_and_speaks_json_when_asked() -> None:
    client = AsyncTestClient(ErrorHandler(make_router()))
    text = await client.get("/teapot")
    assert (text.status_code, text.text, text.headers["x-pot"]) == (418, "short and stout", "1")
    as_json = await client.get("/teapot", headers={"accept": "application/json"})
    assert as_json.status_code == 418
    assert as_json.json() == {"detail": "short and stout", "status": 418}
    assert as_json.headers["x-pot"] == "1"


async def test_most_specific_handler_wins_sync_or_async(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def lookup(request: Request, exc: Exception) -> PlainTextResponse:
        return PlainTextResponse("lookup", 400)

    async def key(request: Request, exc: Exception) -> PlainTextResponse:
        return PlainTextResponse(f"key {request.url.path}", 409)

    async def anything(request: Request, exc: Exception) -> PlainTextResponse:
        return PlainTextResponse("anything", 503)

    handlers: dict[Any, Any] = {LookupError: lookup, Exception: anything, KeyError: key}
    client = AsyncTestClient(ErrorHandler(make_router(), handlers=handlers))
    assert (await client.get("/key")).text == "key /key"
    assert (await client.get("/index")).text == "lookup"
    assert (await client.get("/boom")).text == "anything"


async def test_status_handlers_for_http_exceptions_and_for_500() -> None:
    def teapot(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"pot": exc.detail}, exc.status)

    def crash(request: Request, exc: Exception) -> PlainTextResponse:
        return PlainTextResponse(f"crash: {type(exc).__name__}", 500)

    client = AsyncTestClient(ErrorHandler(make_router(), handlers={418: teapot, 500: crash}))
    assert (await client.get("/teapot")).json() == {"pot": "short and stout"}
    assert (await client.get("/boom")).text == "crash: Boom"


async def test_a_failing_handler_gives_a_plain_500(caplog: pytest.LogCaptureFixture) -> None:
    def broken(request: Request, exc: Exception) -> PlainTextResponse:
        raise RuntimeError("handler broke")

    client = AsyncTestClient(ErrorHandler(make_router(), handlers={Boom: broken}))
    response = await client.get("/boom")
    assert (response.status_code, response.text) == (500, "Internal Server Error")
    assert any("failed" in r.getMessage() for r in error_records(caplog))


async def test_after_the_response_started_the_error_rises_for_the_server_to_truncate() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more": True})
        raise Boom("late")

    with pytest.raises(Boom):
        await AsyncTestClient(ErrorHandler(app)).get("/")
    response = await AsyncTestClient(ErrorHandler(app), raise_app_exceptions=False).get("/")
    assert response.status_code == 200 and response.content == b"part"


async def test_exception_groups_of_one_are_unwrapped() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        async def fail() -> None:
            raise HTTPException(409, "conflict")

        async with anyio.create_task_group() as group:
            group.start_soon(fail)

    response = await AsyncTestClient(ErrorHandler(app)).get("/")
    assert (response.status_code, response.text) == (409, "conflict")


async def test_websocket_errors_close_1011_after_accept_and_deny_500_before() -> None:
    router = Router()

    @router.websocket("/late")
    async def late(ws: WebSocket) -> None:
        await ws.accept()
        await ws.receive_text()
        raise Boom("ws")

    @router.websocket("/early")
    async def early(ws: WebSocket) -> None:
        raise Boom("ws early")

    client = AsyncTestClient(ErrorHandler(router))
    async with client.websocket("/late") as session:
        await session.send_text("go")
        with pytest.raises(WebSocketDisconnect) as info:
            await session.receive()
        assert info.value.code == 1011
    with pytest.raises(WebSocketDenied) as denied:
        async with client.websocket("/early"):
            pass
    assert denied.value.response.status_code == 500


async def test_sse_errors_close_after_start_and_decline_500_before() -> None:
    router = Router()

    @router.sse("/late")
    async def late(sse: SSE) -> None:
        await sse.start()
        await sse.send("one")
        raise Boom("sse")

    @router.sse("/early")
    async def early(sse: SSE) -> None:
        raise Boom("sse early")

    client = AsyncTestClient(ErrorHandler(router))
    async with client.sse("/late") as session:
        assert (await session.receive_event()).data == "one"
        event = await session.receive()
        assert event is not None and event["type"] == "sse.close"
    with pytest.raises(SSEDeclined) as declined:
        async with client.sse("/early"):
            pass
    assert declined.value.response.status_code == 500


async def test_lifespan_passes_through() -> None:
    async with AsyncTestClient(ErrorHandler(make_router()), lifespan="on") as client:
        assert (await client.get("/ok")).text == "fine"


def test_bad_options_raise_naming_the_option() -> None:
    with pytest.raises(OptionError, match="'debug'"):
        ErrorHandler(make_router(), debug="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'handlers'"):
        ErrorHandler(make_router(), handlers={"Boom": lambda r, e: None})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="not an error status"):
        ErrorHandler(make_router(), handlers={200: lambda r, e: None})
    with pytest.raises(TypeError, match="not callable"):
        ErrorHandler(make_router(), handlers={Boom: "nope"})  # type: ignore[dict-item]


# -- Router(exception_handlers=...) ------------------------------------------------


async def test_router_exception_handlers_share_the_registry() -> None:
    def on_key(request: Request, exc: KeyError) -> PlainTextResponse:
        return PlainTextResponse("no such key", 404)

    def on_404(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"missing": request.url.path}, 404)

    router = make_router()
    app = Router([*router.routes], exception_handlers={KeyError: on_key, 404: on_404, 418: on_404})
    client = AsyncTestClient(Lint(app))
    assert (await client.get("/key")).text == "no such key"
    assert (await client.get("/nowhere")).json() == {"missing": "/nowhere"}
    assert (await client.get("/teapot")).json() == {"missing": "/teapot"}
    with pytest.raises(Boom):
        await client.get("/boom")  # no handler: it rises to whatever is outside


async def test_router_without_a_handler_still_answers_http_exceptions_in_plain_text() -> None:
    app = Router([*make_router().routes], exception_handlers={KeyError: lambda r, e: None})
    response = await AsyncTestClient(app).get("/teapot", headers={"accept": "application/json"})
    assert (response.status_code, response.text) == (418, "short and stout")


async def test_router_inside_error_handler_lets_unhandled_ones_through_to_it() -> None:
    app = ErrorHandler(
        Router([*make_router().routes], exception_handlers={KeyError: lambda r, e: None})
    )
    response = await AsyncTestClient(app).get("/teapot", headers={"accept": "application/json"})
    assert response.json() == {"detail": "short and stout", "status": 418}
    assert (await AsyncTestClient(app).get("/boom")).status_code == 500


def test_router_rejects_bad_exception_handlers() -> None:
    with pytest.raises(TypeError, match="'exception_handlers'"):
        Router(exception_handlers={"x": lambda r, e: None})  # type: ignore[dict-item]
