"""pagi.connection, the 500 backstop, truncation and app event validation (R-CONN, R-HERR)."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from server_helpers import read_response, read_until_close

from pagi.spec import EventError, EventOrderError

pytestmark = pytest.mark.anyio

GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


async def test_raising_before_start_gets_500_and_close_R_HERR_5(serve: Any, caplog: Any) -> None:
    reasons: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["pagi.connection"].on_disconnect(reasons.append)
        raise RuntimeError("boom")

    async with serve(app) as running:
        stream = await running.connect()
        await stream.send(GET)
        raw = await read_until_close(stream)
    assert raw.startswith(b"HTTP/1.1 500 ") and b"connection: close" in raw
    assert reasons == ["server_error"]  # R-HERR-14
    assert "boom" in caplog.text


async def test_returning_without_response_gets_500_R_HERR_10(serve: Any) -> None:
    states: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        conn = scope["pagi.connection"]
        conn.on_complete(lambda: states.append("complete"))
        states.append(conn)

    async with serve(app) as running:
        stream = await running.connect()
        await stream.send(GET)
        raw = await read_until_close(stream)
    assert raw.startswith(b"HTTP/1.1 500 ")
    conn = states[0]
    assert conn.response_started() is True  # R-HERR-13
    assert conn.disconnect_reason() == "server_error"
    assert "complete" not in states


async def test_start_without_body_then_raise_still_gets_500(serve: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        raise RuntimeError("after start, before any byte")

    async with serve(app) as running:
        stream = await running.connect()
        await stream.send(GET)
        raw = await read_until_close(stream)
    assert raw.startswith(b"HTTP/1.1 500 ")


async def test_raising_mid_body_truncates_R_HERR_6(serve: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"partial", "more": True})
        raise RuntimeError("mid-stream")

    async with serve(app) as running:
        stream = await running.connect()
        await stream.send(GET)
        raw = await read_until_close(stream)
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert b"partial" in raw and not raw.endswith(b"0\r\n\r\n")


async def test_no_500_when_client_already_left_R_HERR_12(serve: Any, caplog: Any) -> None:
    entered = anyio.Event()
    done = anyio.Event()
    reasons: list[str | None] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        conn = scope["pagi.connection"]
        entered.set()
        with anyio.fail_after(5):
            reason = await conn.disconnect_future()
        reasons.append(reason)
        done.set()

    async with serve(app) as running:
        stream = await running.connect()
        await stream.send(GET)
        with anyio.fail_after(5):
            await entered.wait()  # the request is in the app: now the client leaves
        await stream.aclose()
        with anyio.fail_after(5):
            await done.wait()
    assert reasons == ["client_closed"]
    assert "returned without" not in caplog.text


async def test_disconnect_detected_while_app_is_busy_R_HTTP_63_R_CONN_40(serve: Any) -> None:
    """The app never calls receive; the connection object still learns of the close."""
    order: list[str] = []
    entered = anyio.Event()
    finished = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        conn = scope["pagi.connection"]
        entered.set()

        def on_disconnect(reason: str) -> None:
            # By step 4 of R-CONN-40, steps 1-3 have happened.
            assert not conn.is_connected()
            assert conn.disconnect_reason() == reason
            order.append(f"callback:{reason}")

        conn.on_disconnect(on_disconnect)
        conn.on_disconnect(lambda reason: order.append("second"))
        while conn.is_connected():
            await anyio.sleep(0.02)  # busy, not receiving
        order.append(f"event:{(await receive())['type']}")
        conn.on_disconnect(lambda reason: order.append(f"late:{reason}"))  # runs at once
        await send({"type": "http.response.start", "status": 200})  # no-op now
        await send({"type": "http.response.body", "body": b"x"})
        finished.set()

    async with serve(app) as running:
        stream = await running.connect()
        await stream.send(GET)
        with anyio.fail_after(5):
            await entered.wait()
        await stream.aclose()
        with anyio.fail_after(5):
            await finished.wait()
    assert order == [
        "callback:client_closed",
        "second",
        "event:http.disconnect",
        "late:client_closed",
    ]


async def test_on_complete_fires_once_and_not_on_disconnect_R_CONN_11(serve: Any) -> None:
    log: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        conn = scope["pagi.connection"]
        conn.on_complete(lambda: log.append("complete"))
        conn.on_disconnect(lambda r: log.append(("disconnect", r)))
        log.append(("before", conn.response_started(), conn.response_complete()))
        await send({"type": "http.response.start", "status": 200})
        log.append(("started", conn.response_started(), conn.response_complete()))
        await send({"type": "http.response.body", "body": b"a", "more": True})
        await send({"type": "http.response.body", "body": b"b"})
        log.append(("after", conn.response_complete(), conn.disconnect_reason()))
        conn.on_complete(lambda: log.append("late complete"))
        future = conn.disconnect_future()
        with anyio.move_on_after(0.05):
            await future  # never resolves on success (R-CONN-20)
            log.append("future resolved")

    async with serve(app) as running, httpx.AsyncClient() as client:
        response = await client.get(running.url)
    assert response.text == "ab"
    assert log == [
        ("before", False, False),
        ("started", True, False),
        "complete",
        ("after", True, None),
        "late complete",
    ]


async def test_fresh_connection_object_per_keepalive_request_R_CONN_16(serve: Any) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["pagi.connection"])
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})

    async with serve(app) as running:
        stream = await running.connect()
        await stream.send(GET)
        await read_response(stream)
        await stream.send(GET)
        await read_response(stream)
        await stream.aclose()
    assert len(seen) == 2 and seen[0] is not seen[1]
    assert seen[0].response_started() is not False


@pytest.mark.parametrize(
    ("events", "field"),
    [
        ([{"type": "http.response.start"}], "status"),
        ([{"type": "http.response.start", "status": "200"}], "status"),
        (
            [{"type": "http.response.start", "status": 200, "headers": [(b"x", b"a\r\nb")]}],
            "headers",
        ),
        ([{"type": "http.response.start", "status": 200, "headers": [(b"x y", b"1")]}], "headers"),
        (
            [
                {"type": "http.response.start", "status": 200},
                {"type": "http.response.body", "body": "text"},
            ],
            "body",
        ),
        ([{"type": "http.response.nope"}], "type"),
        ([{"type": "websocket.send", "text": "x"}], "type"),
    ],
)
async def test_bad_events_raise_naming_the_field_R_ERR_1_3_R_HTTP_32(
    serve: Any, events: list[dict[str, Any]], field: str
) -> None:
    caught: list[EventError] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            for event in events:
                await send(event)
        except EventError as exc:
            caught.append(exc)
        if not scope["pagi.connection"].response_started():
            await send(
                {
                    "type": "http.response.start",
                    "status": 418,
                    "headers": [(b"content-length", b"0")],
                }
            )
        await send({"type": "http.response.body"})

    async with serve(app) as running:
        stream = await running.connect()
        await stream.send(GET)
        raw = await read_response(stream)
        await stream.aclose()
    assert len(caught) == 1 and caught[0].field == field
    assert repr(field) in str(caught[0])
    assert raw.startswith((b"HTTP/1.1 418 ", b"HTTP/1.1 200 "))  # nothing unsafe on the wire
    assert b"\r\nx: a" not in raw


async def test_out_of_order_sends_raise_R_HTTP_40(serve: Any) -> None:
    errors: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            await send({"type": "http.response.body", "body": b"early"})
        except EventOrderError as exc:
            errors.append(str(exc))
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
        )
        try:
            await send({"type": "http.response.start", "status": 200})
        except EventOrderError as exc:
            errors.append(str(exc))
        try:
            await send({"type": "http.response.trailers"})
        except EventOrderError as exc:
            errors.append(str(exc))
        await send({"type": "http.response.body", "body": b"ok"})

    async with serve(app) as running, httpx.AsyncClient() as client:
        response = await client.get(running.url)
    assert response.text == "ok"
    assert len(errors) == 3
    assert "before http.response.start" in errors[0]


async def test_body_longer_than_content_length_raises(serve: Any) -> None:
    errors: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"3")]}
        )
        try:
            await send({"type": "http.response.body", "body": b"toolong"})
        except EventError as exc:
            errors.append(str(exc))
        await send({"type": "http.response.body", "body": b"abc"})

    async with serve(app) as running, httpx.AsyncClient() as client:
        response = await client.get(running.url)
    assert response.text == "abc"
    assert errors and "content-length" in errors[0]
