"""RateLimit with the memory backend, and WebSocketRateLimit."""

from __future__ import annotations

from typing import Any

import pytest

from pagi.spec import Receive, Scope, Send
from pagi.tools import SSE, Request, Router, WebSocket
from pagi.tools.exceptions import WebSocketDisconnect
from pagi.tools.middleware import MemoryBackend, OptionError, RateLimit, WebSocketRateLimit
from pagi.tools.ratelimit_backends import refill
from pagi.tools.testing import AsyncTestClient, SSEDeclined, WebSocketDenied

pytestmark = pytest.mark.anyio


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_router() -> Router:
    router = Router()

    @router.get("/")
    async def home(request: Request) -> Any:
        return {"ok": True}

    @router.get("/free")
    async def free(request: Request) -> Any:
        return {"free": True}

    @router.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close()

    @router.sse("/events")
    async def events(sse: SSE) -> None:
        await sse.start()
        await sse.close()

    return router


def limited(**options: Any) -> tuple[RateLimit, FakeClock]:
    backend = MemoryBackend()
    clock = FakeClock()
    backend.clock = clock
    return RateLimit(make_router(), backend=backend, **options), clock


async def test_burst_then_429_with_headers_then_refill() -> None:
    app, clock = limited(rate=2.0, burst=3)
    client = AsyncTestClient(app)
    remaining = []
    for _ in range(3):
        response = await client.get("/")
        assert response.status_code == 200
        assert response.headers["ratelimit-limit"] == "3"
        remaining.append(response.headers["ratelimit-remaining"])
    assert remaining == ["2", "1", "0"]
    refused = await client.get("/")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"  # 1 token at 2/s: 0.5 s, rounded up
    assert refused.headers["ratelimit-remaining"] == "0"
    assert refused.headers["ratelimit-reset"] == "2"  # 3 tokens at 2/s: 1.5 s, rounded up
    clock.now += 0.5
    assert (await client.get("/")).status_code == 200
    assert (await client.get("/")).status_code == 429
    clock.now += 100
    response = await client.get("/")
    assert response.headers["ratelimit-remaining"] == "2"  # never more than burst


async def test_each_client_has_its_own_bucket_and_key_function() -> None:
    app, _ = limited(rate=1.0, burst=1)
    one = AsyncTestClient(app, client=("192.0.2.1", 1))
    two = AsyncTestClient(app, client=("192.0.2.2", 1))
    assert (await one.get("/")).status_code == 200
    assert (await one.get("/")).status_code == 429
    assert (await two.get("/")).status_code == 200

    async def by_api_key(scope: Scope) -> str | None:
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                return value.decode()
        return None  # no key: not limited

    keyed, _ = limited(rate=1.0, burst=1, key=by_api_key)
    client = AsyncTestClient(keyed)
    assert (await client.get("/", headers={"x-api-key": "a"})).status_code == 200
    assert (await client.get("/", headers={"x-api-key": "a"})).status_code == 429
    assert (await client.get("/", headers={"x-api-key": "b"})).status_code == 200
    for _ in range(3):
        assert (await client.get("/")).status_code == 200


async def test_paths_and_instances_are_separate() -> None:
    app, _ = limited(rate=1.0, burst=1, paths=["/"])
    client = AsyncTestClient(app)
    assert (await client.get("/")).status_code == 200
    assert (await client.get("/free")).status_code == 429  # "/" covers everything
    only_root, _ = limited(rate=1.0, burst=1, paths=["/free"])
    client = AsyncTestClient(only_root)
    for _ in range(3):
        assert (await client.get("/")).status_code == 200
    # Two instances with default backends never share buckets (nothing module-global).
    first = RateLimit(make_router(), rate=0.001, burst=1)
    second = RateLimit(make_router(), rate=0.001, burst=1)
    assert (await AsyncTestClient(first).get("/")).status_code == 200
    assert (await AsyncTestClient(first).get("/")).status_code == 429
    assert (await AsyncTestClient(second).get("/")).status_code == 200


async def test_sse_declined_and_websocket_denied_with_429() -> None:
    app, _ = limited(rate=1.0, burst=1)
    client = AsyncTestClient(app)
    async with client.sse("/events") as sse:
        assert sse.headers["ratelimit-limit"] == "1"
    with pytest.raises(SSEDeclined) as declined:
        async with client.sse("/events"):
            pass
    assert declined.value.response.status_code == 429
    assert "retry-after" in declined.value.response.headers
    with pytest.raises(WebSocketDenied) as denied:
        async with client.websocket("/ws"):
            pass
    assert denied.value.response.status_code == 429


async def test_memory_backend_is_lru_bounded() -> None:
    backend = MemoryBackend(max_keys=2)
    backend.clock = FakeClock()
    assert (await backend.take("a", 1.0, 1)).allowed
    assert not (await backend.take("a", 1.0, 1)).allowed
    await backend.take("b", 1.0, 1)
    await backend.take("a", 1.0, 1)  # a is now the most recent
    await backend.take("c", 1.0, 1)  # evicts b, the least recently seen
    assert len(backend) == 2
    assert not (await backend.take("a", 1.0, 1)).allowed  # a kept its empty bucket
    assert (await backend.take("b", 1.0, 1)).allowed  # b came back full
    assert refill(0.0, 0.0, 10.0, 1.0, 3.0, 1.0) == (2.0, True)


def test_rate_limit_bad_options() -> None:
    for options, option in (
        ({"rate": 0}, "rate"),
        ({"burst": 0}, "burst"),
        ({"burst": 1.5}, "burst"),
        ({"key": "ip"}, "key"),
        ({"backend": object()}, "backend"),
        ({"paths": "/api"}, "paths"),
    ):
        with pytest.raises(OptionError) as info:
            RateLimit(make_router(), **options)
        assert info.value.option == option


# -- WebSocketRateLimit -----------------------------------------------------------


def echo_app() -> Router:
    router = Router()

    @router.websocket("/echo")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            async for message in websocket:
                await websocket.send_text(f"got {message}")
        except WebSocketDisconnect:
            pass

    return router


async def test_websocket_messages_over_the_limit_close_with_1008() -> None:
    app = WebSocketRateLimit(echo_app(), messages_per_second=0.001, burst=3000)  # 3 messages
    async with AsyncTestClient(app).websocket("/echo") as ws:
        for n in range(3):
            await ws.send_text(str(n))
            assert await ws.receive_text() == f"got {n}"
        await ws.send_text("one too many")
        with pytest.raises(WebSocketDisconnect) as info:
            await ws.receive_text()
    assert info.value.code == 1008


async def test_websocket_bytes_limit_and_drop_mode() -> None:
    app = WebSocketRateLimit(
        echo_app(), bytes_per_second=0.001, burst=10_000, on_exceed="drop"
    )  # 10 bytes in all
    async with AsyncTestClient(app).websocket("/echo") as ws:
        await ws.send_text("12345678")  # 8 bytes: fits
        assert await ws.receive_text() == "got 12345678"
        await ws.send_text("éé")  # 4 bytes in UTF-8: over, dropped
        await ws.send_text("ab")  # 2 bytes: fits exactly
        assert await ws.receive_text() == "got ab"


async def test_websocket_rate_limit_leaves_http_alone() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    assert (await AsyncTestClient(WebSocketRateLimit(app)).get("/")).status_code == 204


def test_websocket_rate_limit_bad_options() -> None:
    for options, option in (
        ({"messages_per_second": 0}, "messages_per_second"),
        ({"bytes_per_second": -1}, "bytes_per_second"),
        ({"burst": 0.5}, "burst"),
        ({"on_exceed": "ignore"}, "on_exceed"),
    ):
        with pytest.raises(OptionError) as info:
            WebSocketRateLimit(echo_app(), **options)
        assert info.value.option == option
