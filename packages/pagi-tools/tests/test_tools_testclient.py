"""The test client itself: connection double (R-CONN), transport double, cookies,
exceptions, disconnects, timeouts, trailers, file bodies, sync and async faces."""

from __future__ import annotations

from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio
import pytest

from pagi.spec import EventOrderError
from pagi.tools import JSONResponse, PlainTextResponse, Request, Route, Router
from pagi.tools.testing import (
    AppProtocolError,
    AsyncTestClient,
    FakeConnection,
    FakeTransport,
    LifespanFailed,
    TestClient,
)

pytestmark = pytest.mark.anyio


def test_fake_connection_abnormal_end_follows_r_conn_40() -> None:
    conn = FakeConnection()
    seen: list[Any] = []
    conn.on_disconnect(
        lambda reason: seen.append(("cb", reason, conn.is_connected(), conn.disconnect_reason()))
    )
    conn.on_complete(lambda: seen.append("complete"))
    conn.mark_disconnected("client_closed", enqueue=lambda: seen.append("enqueued"))
    assert conn.log == [
        "is_connected=False",
        "reason=client_closed",
        "future",
        "on_disconnect",
        "enqueue",
    ]
    assert seen == [("cb", "client_closed", False, "client_closed"), "enqueued"]
    conn.on_disconnect(lambda reason: seen.append(("late", reason)))  # fires at once
    conn.on_complete(lambda: seen.append("late complete"))  # never: wrong outcome
    conn.mark_complete()  # too late: exactly one outcome per request
    assert seen[-1] == ("late", "client_closed")
    assert conn.response_complete() is False


def test_fake_connection_success_fires_only_on_complete() -> None:
    conn = FakeConnection()
    seen: list[str] = []
    conn.on_disconnect(lambda reason: seen.append("disconnect"))
    conn.on_complete(lambda: seen.append("complete"))
    conn.mark_started()
    conn.mark_complete()
    conn.mark_disconnected("client_closed")
    conn.on_complete(lambda: seen.append("late complete"))
    assert seen == ["complete", "late complete"]
    assert conn.disconnect_reason() is None and conn.response_started() and conn.response_complete()


async def test_disconnect_future_resolves_with_reason() -> None:
    conn = FakeConnection()
    result: list[str] = []

    async def wait() -> None:
        future = conn.disconnect_future()
        assert future is not None
        result.append(await future)

    async with anyio.create_task_group() as group:
        group.start_soon(wait)
        await anyio.wait_all_tasks_blocked()  # wait() is awaiting the future
        conn.mark_disconnected("write_error")
    assert result == ["write_error"]


def test_fake_transport_hysteresis() -> None:
    transport = FakeTransport(high_water_mark=100, low_water_mark=10)
    calls: list[str] = []
    transport.on_drain(lambda: calls.append("drain"))  # low already: must not fire
    transport.on_high_water(lambda: calls.append("high"))
    transport.set_buffered(50)
    transport.set_buffered(100)
    transport.set_buffered(150)  # still above: no second high
    transport.set_buffered(20)
    transport.set_buffered(5)
    transport.set_buffered(200)
    transport.on_high_water(lambda: calls.append("late high"))  # already above: at once
    assert calls == ["high", "drain", "high", "late high"]


async def test_every_request_gets_connection_and_transport_and_completes() -> None:
    seen: list[Any] = []

    async def show(request: Request) -> Any:
        conn = request.connection
        assert conn is not None
        conn.on_complete(lambda: seen.append("completed"))
        seen.append((request.buffered_amount(), request.is_writable(), conn.response_started()))
        return {"ok": True}

    r = await AsyncTestClient(Router([Route("/", show)])).get("/")
    assert seen == [(0, True, False), "completed"]
    assert r.connection is not None and r.connection.response_complete()


async def test_simulated_disconnect_fires_callbacks_and_http_disconnect() -> None:
    log: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        conn = scope["pagi.connection"]
        conn.on_disconnect(lambda reason: log.append(reason))
        await receive()  # the body
        log.append((await receive())["type"])  # waits for the disconnect
        await send({"type": "http.response.start", "status": 200})  # a no-op now

    r = await AsyncTestClient(app, lifespan="off").get("/", disconnect_after=0.01)
    assert log == ["client_closed", "http.disconnect"]
    assert r.status_code == 500 and r.connection is not None and not r.connection.is_connected()


async def test_app_exceptions_reraise_or_become_500() -> None:
    async def broken(request: Request) -> Any:
        raise KeyError("missing")

    app = Router([Route("/", broken)])
    with pytest.raises(KeyError):
        await AsyncTestClient(app).get("/")
    r = await AsyncTestClient(app, raise_app_exceptions=False).get("/")
    assert r.status_code == 500 and isinstance(r.exception, KeyError)
    assert r.connection is not None and r.connection.disconnect_reason() == "server_error"


async def test_app_that_sends_nothing_or_half_a_response() -> None:
    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    with pytest.raises(AppProtocolError, match="forget to await"):
        await AsyncTestClient(silent, lifespan="off").get("/")

    async def half(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"x", "more": True})

    with pytest.raises(AppProtocolError, match="middle of its response"):
        await AsyncTestClient(half, lifespan="off").get("/")


async def test_out_of_order_events_raise_inside_the_app() -> None:
    async def twice(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("a")(scope, receive, send)
        await PlainTextResponse("b")(scope, receive, send)

    with pytest.raises(EventOrderError, match="sent twice"):
        await AsyncTestClient(twice, lifespan="off").get("/")


async def test_request_timeout_is_real() -> None:
    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await anyio.sleep(10)

    with pytest.raises(TimeoutError, match="did not finish"):
        await AsyncTestClient(slow, lifespan="off", timeout=0.05).get("/")


async def test_trailers_and_file_and_fh_bodies(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "trailers": True})
        if scope["path"] == "/file":
            await send({"type": "http.response.body", "file": str(path), "offset": 2, "length": 3})
        else:
            with open(path, "rb") as fh:
                await send({"type": "http.response.body", "fh": fh, "offset": 7})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")]})

    client = AsyncTestClient(app, lifespan="off")
    r = await client.get("/file")
    assert r.content == b"234" and r.trailers is not None and r.trailers["x-checksum"] == "abc"
    assert (await client.get("/fh")).content == b"789"


async def test_cookie_jar_stores_sends_and_deletes() -> None:
    async def login(request: Request) -> Any:
        response = JSONResponse({"cookies": request.cookies})
        if request.query_params.get("set"):
            response.set_cookie("sid", "abc")
            response.set_cookie("scoped", "1", path="/admin")
            response.set_cookie("secure", "1", secure=True)
        if request.query_params.get("clear"):
            response.delete_cookie("sid")
        return response

    client = AsyncTestClient(Router([Route("/", login), Route("/admin/x", login)]))
    await client.get("/?set=1")
    assert (await client.get("/")).json() == {"cookies": {"sid": "abc"}}
    assert (await client.get("/admin/x")).json() == {"cookies": {"sid": "abc", "scoped": "1"}}
    await client.get("/?clear=1")
    assert "sid" not in client.cookies
    client.cookies["manual"] = "yes"
    assert (await client.get("/")).json() == {"cookies": {"manual": "yes"}}
    https = AsyncTestClient(Router([Route("/", login)]), base_url="https://testserver")
    await https.get("/?set=1")
    assert (await https.get("/")).json()["cookies"]["secure"] == "1"


async def test_streamed_response_reads_incrementally() -> None:
    gate = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"first", "more": True})
        await gate.wait()
        await send({"type": "http.response.body", "body": b"second"})

    async with AsyncTestClient(app, lifespan="off").stream("GET", "/") as response:
        async with aclosing(response.aiter_bytes()) as chunks:
            assert await chunks.__anext__() == b"first"
            gate.set()
            assert await response.read() == b"second"


async def test_lifespan_modes() -> None:
    async def no_lifespan(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise ValueError("unsupported")
        await PlainTextResponse("ok")(scope, receive, send)

    async with AsyncTestClient(no_lifespan) as client:  # auto: declined quietly
        assert (await client.get("/")).text == "ok"
    with pytest.raises(ValueError, match="unsupported"):
        async with AsyncTestClient(no_lifespan, lifespan="on"):
            pass

    async def failing(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no db"})

    with pytest.raises(LifespanFailed, match="no db"):
        async with AsyncTestClient(failing):
            pass


def test_sync_client_without_with_block_and_streaming() -> None:
    client = TestClient(PlainTextResponse("plain"), lifespan="off")
    assert client.get("/").text == "plain"
    with client.stream("GET", "/") as response:
        assert response.status_code == 200 and response.read() == b"plain"
