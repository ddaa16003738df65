"""pagi.tools.asgi.ASGIApp: raw ASGI apps run as PAGI apps, in memory.

The framework proofs over a real pagi-server are in
test_tools_bridges_frameworks.py; these pin the event mapping itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from pagi.spec import EventError
from pagi.tools.asgi import ASGIApp, is_asgi2, to_asgi
from pagi.tools.exceptions import WebSocketDisconnect
from pagi.tools.testing import AsyncTestClient, SSEDeclined, WebSocketDenied

pytestmark = pytest.mark.anyio


async def _read_body(receive: Any) -> tuple[bytes, list[bool]]:
    body, flags = b"", []
    while True:
        event = await receive()
        assert event["type"] == "http.request"
        body += event["body"]
        flags.append(event["more_body"])
        if not event["more_body"]:
            return body, flags


async def echo_scope(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        event = await receive()
        scope["state"]["db"] = "connected"
        await send({"type": "lifespan.startup.complete"})
        event = await receive()
        assert event["type"] == "lifespan.shutdown"
        await send({"type": "lifespan.shutdown.complete"})
        return
    body, _ = await _read_body(receive)
    info = {
        "keys": sorted(scope),
        "extensions": sorted(scope["extensions"]),
        "asgi": scope["asgi"],
        "state": scope.get("state"),
        "body": body.decode(),
    }
    payload = repr(info).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    # Streamed with ASGI's more_body: every chunk must reach the client.
    for i in range(0, len(payload), 7):
        await send({"type": "http.response.body", "body": payload[i : i + 7], "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def test_http_scope_drops_pagi_keys_fills_extensions_and_streams() -> None:
    async with AsyncTestClient(ASGIApp(echo_scope)) as client:
        response = await client.post("/x", content=b"hello")
    info = eval(response.text)  # our own repr of plain data
    assert not [k for k in info["keys"] if k.startswith("pagi")]
    assert "asgi" in info["keys"]
    assert info["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert info["extensions"] == ["http.response.pathsend", "http.response.trailers"]
    assert info["state"] == {"db": "connected"}  # lifespan state reaches requests
    assert info["body"] == "hello"


async def test_request_body_chunks_map_more_to_more_body() -> None:
    seen: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body, flags = await _read_body(receive)
        seen.extend(flags)
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": body})

    async with AsyncTestClient(ASGIApp(app), lifespan="off") as client:
        response = await client.post("/", content=b"a" * 100_000, chunk_size=30_000)
    assert len(response.content) == 100_000
    assert seen == [True, True, True, False]


async def test_pathsend_becomes_a_pagi_file_body(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    target.write_bytes(b"x" * 200_000)
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": str(target)})

    bridge = ASGIApp(app)

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        async def record(event: Any) -> None:
            sent.append(dict(event))
            await send(event)

        await bridge(scope, receive, record)

    async with AsyncTestClient(spy, lifespan="off") as client:
        response = await client.get("/")
    assert response.content == target.read_bytes()
    assert sent[-1] == {"type": "http.response.body", "file": str(target)}


async def test_split_trailers_are_joined_into_one_pagi_event() -> None:
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "trailers": True})
        await send({"type": "http.response.body", "body": b"ok"})
        await send({"type": "http.response.trailers", "headers": [(b"a", b"1")],
                    "more_trailers": True})  # fmt: skip
        await send({"type": "http.response.trailers", "headers": [(b"b", b"2")]})

    bridge = ASGIApp(app)

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        async def record(event: Any) -> None:
            sent.append(dict(event))
            await send(event)

        await bridge(scope, receive, record)

    async with AsyncTestClient(spy, lifespan="off") as client:
        await client.get("/")
    trailers = [e for e in sent if e["type"] == "http.response.trailers"]
    assert trailers == [{"type": "http.response.trailers", "headers": [(b"a", b"1"), (b"b", b"2")]}]


async def test_asgi2_class_app_is_detected_and_run() -> None:
    class Legacy:
        def __init__(self, scope: Any) -> None:
            self.scope = scope

        async def __call__(self, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200})
            await send(
                {"type": "http.response.body", "body": b"asgi2 " + self.scope["path"].encode()}
            )

    assert is_asgi2(Legacy)
    assert not is_asgi2(echo_scope)
    bridge = ASGIApp(Legacy)
    assert bridge.asgi_version == "2"
    async with AsyncTestClient(bridge, lifespan="off") as client:
        assert (await client.get("/p")).text == "asgi2 /p"


async def test_unknown_asgi_event_raises_naming_it() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.zerocopysend", "file": None})

    async with AsyncTestClient(ASGIApp(app), lifespan="off") as client:
        with pytest.raises(EventError, match=r"http\.response\.zerocopysend"):
            await client.get("/")


async def test_asgi_rule_breaking_gets_the_pagi_validators_message() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.body", "body": b"early"})

    async with AsyncTestClient(ASGIApp(app), lifespan="off") as client:
        with pytest.raises(EventError, match=r"http\.response\.body.*before http\.response\.start"):
            await client.get("/")


async def test_asgi_app_without_the_bridge_is_refused_by_the_test_client() -> None:
    """The check of issue 13 is shared: the in-memory client refuses more_body too."""

    async def streaming_asgi(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await send({"type": "http.response.body", "body": b"second", "more_body": False})

    async with AsyncTestClient(streaming_asgi, lifespan="off") as client:
        with pytest.raises(EventError, match=r"more_body.*--interface asgi"):
            await client.get("/")


async def ws_app(scope: Any, receive: Any, send: Any) -> None:
    assert scope["type"] == "websocket"
    assert "pagi.transport" not in scope
    event = await receive()
    assert event["type"] == "websocket.connect"
    if scope["path"] == "/deny":
        assert "websocket.http.response" in scope["extensions"]
        await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"entry"})
        return
    await send({"type": "websocket.accept", "subprotocol": None})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": "echo " + event["text"]})
        if event["text"] == "bye":
            await send({"type": "websocket.close", "code": 4001, "reason": "done"})


async def test_websocket_echo_close_code_and_denial() -> None:
    async with AsyncTestClient(ASGIApp(ws_app), lifespan="off") as client:
        async with client.websocket("/ws") as ws:
            await ws.send_text("hi")
            assert await ws.receive_text() == "echo hi"
            await ws.send_text("bye")
            assert await ws.receive_text() == "echo bye"
            with pytest.raises(WebSocketDisconnect) as closed:
                await ws.receive()
            assert (closed.value.code, closed.value.reason) == (4001, "done")
        with pytest.raises(WebSocketDenied) as info:
            async with client.websocket("/deny"):
                pass
    assert info.value.response.status_code == 401
    assert info.value.response.content == b"no entry"


async def sse_as_http(scope: Any, receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    if scope["path"] == "/events":
        content_type = (b"content-type", b"text/event-stream; charset=utf-8")
        await send({"type": "http.response.start", "status": 200, "headers": [content_type]})
        chunks = [b": hello\n\n", b"event: tick\nid: 1\ndata: one\n", b"data: two\n\ndata: th",
                  b"ree\r\n\r\n"]  # fmt: skip
        for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    else:
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-type", b"text/plain")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b"nope"})


async def test_sse_scope_is_http_and_an_event_stream_is_parsed_event_by_event() -> None:
    async with AsyncTestClient(ASGIApp(sse_as_http), lifespan="off") as client:
        async with client.sse("/events") as stream:
            first = await stream.receive_event()
            second = await stream.receive_event()
        with pytest.raises(SSEDeclined) as info:
            async with client.sse("/missing"):
                pass
    assert (first.event, first.id, first.data) == ("tick", "1", "one\ntwo")
    assert second.data == "three"
    assert info.value.response.status_code == 404
    assert info.value.response.content == b"nope"


async def test_lifespan_failure_maps_through() -> None:
    from pagi.tools.testing import LifespanFailed

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    with pytest.raises(LifespanFailed, match="no database"):
        async with AsyncTestClient(ASGIApp(app), lifespan="on"):
            pass


def test_bad_asgi_version_is_refused() -> None:
    with pytest.raises(ValueError, match="asgi_version"):
        ASGIApp(echo_scope, asgi_version="4")  # type: ignore[arg-type]


# --- to_asgi in memory: what the real servers in test_tools_to_asgi.py cannot show ---


async def _drive_asgi(
    asgi_app: Any, scope: dict[str, Any], incoming: list[dict[str, Any]]
) -> list[Any]:
    sent: list[Any] = []
    queue = list(incoming)

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        await anyio.sleep_forever()
        raise AssertionError

    async def send(event: Any) -> None:
        sent.append(dict(event))

    with anyio.fail_after(5):
        await asgi_app(scope, receive, send)
    return sent


WS_SCOPE = {"type": "websocket", "asgi": {"version": "3.0"}, "path": "/", "query_string": b"",
            "headers": [], "scheme": "ws", "http_version": "1.1", "subprotocols": []}  # fmt: skip


async def test_to_asgi_denial_without_the_server_extension_becomes_403_close() -> None:
    async def deny(scope: Any, receive: Any, send: Any) -> None:
        assert "websocket.http.response" in scope["extensions"]  # always offered to PAGI apps
        await receive()
        await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"no"})

    sent = await _drive_asgi(to_asgi(deny), dict(WS_SCOPE), [{"type": "websocket.connect"}])
    assert sent == [{"type": "websocket.close", "code": 1000}]
    scope = {**WS_SCOPE, "extensions": {"websocket.http.response": {}}}
    sent = await _drive_asgi(to_asgi(deny), scope, [{"type": "websocket.connect"}])
    assert [e["type"] for e in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert sent[1]["more_body"] is False


async def test_to_asgi_checks_pagi_events_with_the_spec() -> None:
    async def bad(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.body", "body": b"x"})

    scope = {"type": "http", "asgi": {"version": "3.0"}, "method": "GET", "path": "/",
             "query_string": b"", "headers": [], "http_version": "1.1"}  # fmt: skip
    with pytest.raises(EventError, match=r"before http\.response\.start"):
        await _drive_asgi(to_asgi(bad), scope, [{"type": "http.request", "body": b""}])


async def test_to_asgi_sse_keepalive_and_close() -> None:
    async def stream(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "sse"
        await send({"type": "sse.start"})
        await send({"type": "sse.keepalive", "interval": 0.05, "comment": "ping"})
        await anyio.sleep(0.18)
        await send({"type": "sse.send", "data": "a\nb", "event": "e", "id": "7"})
        await send({"type": "sse.close"})

    scope = {"type": "http", "asgi": {"version": "3.0"}, "method": "GET", "path": "/",
             "query_string": b"", "headers": [(b"accept", b"text/event-stream")],
             "http_version": "1.1"}  # fmt: skip
    sent = await _drive_asgi(to_asgi(stream), scope, [{"type": "http.request", "body": b""}])
    assert sent[0]["type"] == "http.response.start"
    assert (b"content-type", b"text/event-stream") in sent[0]["headers"]
    bodies = [e["body"] for e in sent[1:]]
    assert 2 <= bodies.count(b": ping\n\n") <= 4
    assert b"event: e\nid: 7\ndata: a\ndata: b\n\n" in bodies
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
