"""Application- and middleware-side MUSTs: what Lint, the toolkit and the test client enforce.

Each test names the requirement ids it checks (the meta-test
``packages/pagi-spec/tests/test_spec_musts_tested.py`` reads them).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any

import anyio
import pytest

from pagi.spec import EventError, validate_receive_event, validate_send_event
from pagi.tools import PlainTextResponse, Request, Router, StreamingResponse
from pagi.tools.background import BackgroundTask
from pagi.tools.middleware import BaseMiddleware, RequestId, Rewrite
from pagi.tools.middleware.lint import Lint
from pagi.tools.testing import AsyncTestClient

pytestmark = pytest.mark.anyio


async def hello(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope type {scope['type']}")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


# --- the application interface ----------------------------------------------------------------


async def test_an_app_is_one_async_callable_R_CORE_10() -> None:
    class CallableApp:
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await hello(scope, receive, send)

    def not_async(scope: Any, receive: Any, send: Any) -> None:
        return None

    for app in (hello, CallableApp(), Lint(hello)):
        async with AsyncTestClient(app, lifespan="off") as client:
            assert (await client.get("/")).text == "hello"
    async with AsyncTestClient(not_async, lifespan="off") as client:
        with pytest.raises(TypeError):
            await client.get("/")


async def test_toolkit_apps_raise_on_scope_types_they_do_not_support_R_CORE_15() -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(event: Any) -> None:
        raise AssertionError(f"nothing may be sent: {event}")

    for app in (PlainTextResponse("x"), StreamingResponse([b"x"]), hello):
        with pytest.raises((TypeError, RuntimeError)):
            await app({"type": "lifespan"}, receive, send)


def _run_on_uvloop(fn: Callable[[], Awaitable[None]]) -> None:
    anyio.run(fn, backend="asyncio", backend_options={"use_uvloop": True})


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop is not on Windows")
def test_toolkit_apps_assume_no_particular_event_loop_R_CORE_70() -> None:
    """The same router app serves on asyncio, trio (the anyio tests) and uvloop."""
    pytest.importorskip("uvloop")
    router = Router()

    @router.get("/")
    async def index(request: Request) -> PlainTextResponse:
        return PlainTextResponse("loop-agnostic")

    async def main() -> None:
        async with AsyncTestClient(router) as client:
            assert (await client.get("/")).text == "loop-agnostic"

    _run_on_uvloop(main)
    anyio.run(main, backend="trio")
    anyio.run(main, backend="asyncio")


async def test_lint_catches_a_send_that_was_not_awaited_R_CORE_41_R_HTTP_42() -> None:
    async def fire_and_forget(scope: Any, receive: Any, send: Any) -> None:
        send({"type": "http.response.start", "status": 200}).close()  # never awaited

    async with AsyncTestClient(Lint(fire_and_forget), lifespan="off") as client:
        with pytest.raises(EventError, match="forget to `await`"):
            await client.get("/")


async def test_lint_requires_trailers_declared_on_start_R_HTTP_50() -> None:
    async def undeclared(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"x"})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"1")]})

    async with AsyncTestClient(Lint(undeclared), lifespan="off") as client:
        with pytest.raises(EventError, match="trailers"):
            await client.get("/")


async def test_bodies_are_encoded_bytes_and_lengths_count_bytes_R_HTTP_24_R_DATA_2() -> None:
    async def text_body(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": "héllo"})

    async with AsyncTestClient(Lint(PlainTextResponse("héllo")), lifespan="off") as client:
        response = await client.get("/")
        assert response.headers["content-length"] == "6" and response.text == "héllo"
    async with AsyncTestClient(Lint(text_body), lifespan="off") as client:
        with pytest.raises(EventError, match="must be bytes"):
            await client.get("/")


def test_fields_are_text_or_bytes_by_protocol_never_by_content_R_DATA_2_R_DATA_3() -> None:
    """Which of str and bytes a field holds is fixed by the field, whatever the content."""
    validate_send_event("websocket", {"type": "websocket.send", "text": "ascii only"})
    validate_send_event("websocket", {"type": "websocket.send", "bytes": "é".encode()})
    for bad in (
        {"type": "websocket.send", "text": b"ascii only"},
        {"type": "websocket.send", "bytes": "ascii only"},
    ):
        with pytest.raises(EventError):
            validate_send_event("websocket", bad)
    with pytest.raises(EventError):
        validate_receive_event("websocket", {"type": "websocket.receive", "text": b"x"})


def test_no_per_send_timeout_is_honoured_R_CORE_5() -> None:
    """A ``timeout`` field is an unknown key: ignored, never a deadline the server keeps."""
    event = {"type": "http.response.body", "body": b"x", "timeout": 0.001}
    assert validate_send_event("http", event) == "http.response.body"


# --- helpers on missing optional keys --------------------------------------------------------


async def test_absent_body_and_more_read_as_empty_and_final_R_HTTP_12() -> None:
    events = iter([{"type": "http.request"}])

    async def receive() -> dict[str, Any]:
        return next(events)

    request = Request({"type": "http", "method": "POST", "headers": []}, receive)
    assert await request.body() == b""


def test_absent_transport_reads_as_nothing_buffered_R_FLOW_3() -> None:
    request = Request({"type": "http", "method": "GET", "headers": []})
    assert request.transport is None
    assert request.buffered_amount() == 0 and request.is_writable()


class _OldConnection:
    """A connection whose server cannot tell completion: the optional accessors say None."""

    def __init__(self) -> None:
        self.completed: list[Callable[[], object]] = []

    def is_connected(self) -> bool:
        return True

    def disconnect_reason(self) -> str | None:
        return None

    def on_disconnect(self, callback: Callable[[str], object]) -> None:
        pass

    def on_complete(self, callback: Callable[[], object]) -> None:
        self.completed.append(callback)

    def response_started(self) -> bool:
        return True

    def response_complete(self) -> bool | None:
        return None

    def disconnect_future(self) -> Awaitable[str] | None:
        return None


async def test_helpers_check_optional_accessors_for_none_R_CONN_5() -> None:
    ran = anyio.Event()
    connection = _OldConnection()
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    async def send(event: Any) -> None:
        sent.append(event)

    scope = {"type": "http", "method": "GET", "headers": [], "pagi.connection": connection}

    async def task() -> None:
        ran.set()

    response = PlainTextResponse("x", background=BackgroundTask(task))
    async with anyio.create_task_group() as group:
        group.start_soon(response, scope, receive, send)
        with anyio.fail_after(5):
            while not connection.completed:
                await anyio.sleep(0.01)
        for callback in connection.completed:
            callback()
        with anyio.fail_after(5):
            await ran.wait()
    assert sent[-1]["type"] == "http.response.body"


async def test_streaming_stops_when_the_client_leaves_R_HTTP_62() -> None:
    produced: list[int] = []
    closed = anyio.Event()

    async def endless() -> Any:
        try:
            n = 0
            while True:
                produced.append(n)
                yield f"{n}\n"
                n += 1
                await anyio.sleep(0)
        finally:
            closed.set()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await StreamingResponse(endless())(scope, receive, send)

    async with AsyncTestClient(app, lifespan="off") as client:
        async with client.stream("GET", "/") as response:
            async with aclosing(response.aiter_bytes()) as chunks:
                async for chunk in chunks:
                    if chunk:
                        break
        with anyio.fail_after(5):
            await closed.wait()
    count = len(produced)
    await anyio.sleep(0.05)  # nothing more is produced after the stop
    assert len(produced) == count


# --- middleware ---------------------------------------------------------------------------------


async def test_middleware_clones_the_scope_shallowly_R_MW_3() -> None:
    seen: list[dict[str, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)
        await hello(scope, receive, send)

    async def outer(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # supported, so request scopes carry state
            for phase in ("startup", "shutdown"):
                await receive()
                await send({"type": f"lifespan.{phase}.complete"})
            return
        seen.append(scope)
        await app(scope, receive, send)

    app = RequestId(Rewrite(inner, [("/old", "/new")]))
    async with AsyncTestClient(outer) as client:
        await client.get("/old/x")
    top, bottom = seen
    assert bottom is not top and bottom["path"] == "/new/x" and top["path"] == "/old/x"
    for key in ("pagi.connection", "state"):
        assert bottom[key] is top[key]  # the same instances across layers
    assert "pagi.request_id" in bottom and "pagi.request_id" not in top  # visible downward only


async def test_middleware_propagates_exceptions_unchanged_R_MW_4() -> None:
    class Boom(Exception):
        pass

    async def failing(scope: Any, receive: Any, send: Any) -> None:
        raise Boom("from the app")

    class Passing(BaseMiddleware):
        pass

    for app in (Passing(failing), RequestId(failing), Rewrite(failing, [("/a", "/b")])):
        async with AsyncTestClient(app, lifespan="off") as client:
            with pytest.raises(Boom, match="from the app"):
                await client.get("/a")


async def test_middleware_rewrites_responses_through_send_not_return_values_R_MW_5() -> None:
    async def inner(scope: Any, receive: Any, send: Any) -> Any:
        await hello(scope, receive, send)
        return {"status": 500}  # a return value is not a response

    class Stamp(BaseMiddleware):
        def wrap_send(self, scope: Any, send: Any) -> Any:
            async def stamped(event: Any) -> None:
                if event["type"] == "http.response.start":
                    event = {**event, "headers": [*event.get("headers", []), (b"x-stamp", b"1")]}
                await send(event)

            return stamped

    async with AsyncTestClient(Stamp(inner), lifespan="off") as client:
        response = await client.get("/")
    assert (response.status_code, response.headers["x-stamp"], response.text) == (200, "1", "hello")
