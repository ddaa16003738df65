"""The SSE helper and the test client's SSE sessions (incremental, with timeouts)."""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import pytest

from pagi.spec import EventError
from pagi.tools import SSE, JSONResponse, ServerSentEvent, SSEState
from pagi.tools.handlers import sse_session
from pagi.tools.testing import AsyncTestClient, SSEDeclined, SSEStreamEnded, TestClient

pytestmark = pytest.mark.anyio


def client_for(handler: Any, **options: Any) -> AsyncTestClient:
    return AsyncTestClient(sse_session(handler), lifespan="off", **options)


async def test_send_events_with_all_fields_json_comment_and_close() -> None:
    async def app(sse: SSE) -> None:
        await sse.start(headers={"x-stream": "1"})
        await sse.send("plain", event="greeting", id="1", retry=3000)
        await sse.send({"n": 1})
        await sse.comment("just a comment")
        await sse.keepalive(15)
        await sse.close(reason="done")
        await sse.close()  # idempotent

    async with client_for(app).sse("/events") as session:
        assert session.status_code == 200 and session.headers["x-stream"] == "1"
        first = await session.receive_event()
        assert first == ServerSentEvent("plain", "greeting", "1", 3000)
        assert await session.receive_json() == {"n": 1}
        with pytest.raises(SSEStreamEnded):
            await session.receive_event()
        assert session.comments == ["just a comment"]
        assert session.keepalive == {"type": "sse.keepalive", "interval": 15, "comment": ""}
        assert session.closed_by_app and session.close_reason == "done"


async def test_send_after_close_raises() -> None:
    async def app(sse: SSE) -> None:
        await sse.close()
        with pytest.raises(RuntimeError):
            await sse.send("late")

    async with client_for(app).sse("/") as session:
        assert [e async for e in session] == []


async def test_decline_with_response_and_default_204() -> None:
    async def app(sse: SSE) -> None:
        if sse.query_params.get("auth") != "yes":
            await sse.decline(JSONResponse({"error": "login"}, 401))

    with pytest.raises(SSEDeclined) as info:
        async with client_for(app).sse("/"):
            pass
    assert (info.value.response.status_code, info.value.response.json()) == (
        401,
        {"error": "login"},
    )
    # A handler that returns without starting declines with 204 (no reconnect).
    with pytest.raises(SSEDeclined) as info:
        async with client_for(app).sse("/", params={"auth": "yes"}):
            pass
    assert info.value.response.status_code == 204


async def test_infinite_stream_is_read_incrementally_and_stopped() -> None:
    stopped = anyio.Event()

    async def ticker(sse: SSE) -> None:
        try:
            for n in itertools.count():
                await sse.send(str(n), id=str(n))
                await anyio.sleep(0.001)
        finally:
            stopped.set()

    async with client_for(ticker, close_timeout=0.2).sse("/") as session:
        got = [(await session.receive_event()).data for _ in range(3)]
    assert got == ["0", "1", "2"]
    with anyio.fail_after(1):
        await stopped.wait()


async def test_every_stops_on_disconnect_and_sends_return_values() -> None:
    calls = 0
    reasons: list[str | None] = []

    async def app(sse: SSE) -> None:
        async def tick() -> dict[str, Any]:
            nonlocal calls
            calls += 1
            return {"data": {"n": calls}, "event": "tick"}

        await sse.every(0.01, tick)
        reasons.append(sse.disconnect_reason)

    async with client_for(app).sse("/") as session:
        events = [await session.receive_event() for _ in range(2)]
        await session.close()
    assert [e.json() for e in events] == [{"n": 1}, {"n": 2}]
    assert events[0].event == "tick"
    assert reasons == ["client_closed"]


async def test_every_stops_when_callback_closes_the_stream() -> None:
    async def app(sse: SSE) -> None:
        count = 0

        def tick() -> str | None:
            nonlocal count
            count += 1
            return str(count) if count <= 2 else None

        async def closer() -> None:
            await anyio.sleep(0.05)
            await sse.close()

        async with anyio.create_task_group() as group:
            group.start_soon(closer)
            await sse.every(0.01, tick)
        assert sse.phase is SSEState.CLOSED

    async with client_for(app).sse("/") as session:
        assert [e.data async for e in session] == ["1", "2"]


async def test_stream_helper_sends_items_until_done() -> None:
    async def app(sse: SSE) -> None:
        await sse.stream([ServerSentEvent("a", id="1"), {"data": "b"}, "c", {"n": 4}])
        await sse.close()

    async with client_for(app).sse("/") as session:
        events = [e async for e in session]
    assert [e.data for e in events] == ["a", "b", "c", '{"n":4}']
    assert events[0].id == "1"


async def test_last_event_id_method_and_body() -> None:
    async def app(sse: SSE) -> None:
        body = await sse.body()
        await sse.send({"last": sse.last_event_id, "method": sse.method, "body": body.decode()})
        await sse.close()

    client = client_for(app)
    async with client.sse("/", method="POST", last_event_id="41", json={"x": 1}) as session:
        assert await session.receive_json() == {"last": "41", "method": "POST", "body": '{"x": 1}'}


async def test_newline_in_event_name_is_refused_by_the_spec_check() -> None:
    async def app(sse: SSE) -> None:
        await sse.send("x", event="a\nb")

    with pytest.raises(EventError, match="R-SSE-31"):
        async with client_for(app).sse("/"):
            pass


async def test_session_timeout_is_real() -> None:
    async def quiet(sse: SSE) -> None:
        await sse.start()
        await sse.wait_disconnect()

    async with client_for(quiet, timeout=0.05).sse("/") as session:
        with pytest.raises(TimeoutError):
            await session.receive_event()


def test_sync_client_sse() -> None:
    async def app(sse: SSE) -> None:
        for n in range(3):
            await sse.send(str(n))

    with TestClient(sse_session(app), lifespan="off").sse("/") as session:
        assert [e.data for e in session] == ["0", "1", "2"]
