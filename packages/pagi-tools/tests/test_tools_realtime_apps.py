"""The real-time and utility apps over the in-process test client (asyncio and trio).

SSEPubSub, WebSocketBroadcast, WebSocketChat and WebSocketEcho on a memory
``Channels``; Throttle, HealthcheckApp and Loader. The same apps over the
real server and Redis are in test_tools_channels_over_server.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from pagi.tools import PlainTextResponse
from pagi.tools.apps import (
    HealthcheckApp,
    Loader,
    SSEPubSub,
    Throttle,
    WebSocketBroadcast,
    WebSocketChat,
    WebSocketEcho,
)
from pagi.tools.apps.websocket_chat import sanitize_nick
from pagi.tools.channels import Channels
from pagi.tools.testing import AsyncTestClient

pytestmark = pytest.mark.anyio


async def until(check: Any) -> None:
    with anyio.fail_after(5):
        while not check():
            await anyio.sleep(0.005)


async def test_sse_pubsub_streams_replays_and_forgets_a_gone_client() -> None:
    channels = Channels()
    client = AsyncTestClient(SSEPubSub(channels, "feed", history=10, retry_ms=2500))
    async with client:
        async with client.sse("/events") as stream:
            await until(lambda: channels.local_presence("feed") == 1)
            await channels.publish("feed", {"n": 1})
            await channels.publish("feed", "two")
            first = await stream.receive_event()
            assert (first.json(), first.id, first.retry) == ({"n": 1}, "1", 2500)
            second = await stream.receive_event()
            assert (second.data, second.id, second.retry) == ("two", "2", None)
        # The client left: its subscription is gone at once, not at the next publish.
        await until(lambda: channels.local_presence("feed") == 0)
        await channels.publish("feed", "three")
        async with client.sse("/events", last_event_id="1") as stream:
            missed = [await stream.receive_event() for _ in range(2)]
            assert [(e.data, e.id) for e in missed] == [("two", "2"), ("three", "3")]
        assert (await client.get("/events")).status_code == 406


async def test_websocket_broadcast_relays_to_others_and_keeps_binary_binary() -> None:
    channels = Channels()
    client = AsyncTestClient(WebSocketBroadcast(channels, channel="all"), lifespan="off")
    async with client.websocket("/") as alice, client.websocket("/") as bob:
        await until(lambda: channels.local_presence("all") == 2)
        await alice.send_text("hi bob")
        assert await bob.receive_text() == "hi bob"
        await bob.send_bytes(b"\x01\x02")
        assert await alice.receive_bytes() == b"\x01\x02"
        await channels.publish("all", "from the server")
        assert await alice.receive_text() == "from the server"  # not its own "hi bob"
        assert await bob.receive_text() == "from the server"

    echoing = AsyncTestClient(WebSocketBroadcast(channels, "e", echo_self=True), lifespan="off")
    async with echoing.websocket("/") as solo:
        await until(lambda: channels.local_presence("e") == 1)
        await solo.send_text("me too")
        assert await solo.receive_text() == "me too"
    assert channels.local_presence("all") == channels.local_presence("e") == 0


async def test_websocket_chat_protocol() -> None:
    channels = Channels()
    chat = WebSocketChat(channels, default_room="lobby", max_rooms=2)
    client = AsyncTestClient(chat, lifespan="off")
    async with client.websocket("/?nick=al<script>ice") as alice:
        welcome = await alice.receive_json()
        assert welcome == {"type": "welcome", "nick": "alscriptice", "room": "lobby"}
        assert await alice.receive_json() == {
            "type": "joined",
            "nick": "alscriptice",
            "room": "lobby",
        }
        async with client.websocket("/?nick=bob") as bob:
            assert (await bob.receive_json())["type"] == "welcome"
            await bob.receive_json()  # its own join notice
            assert await alice.receive_json() == {"type": "joined", "nick": "bob", "room": "lobby"}
            await alice.send_json({"type": "message", "text": "  hello  "})
            expected = {"type": "message", "nick": "alscriptice", "text": "hello", "room": "lobby"}
            assert await bob.receive_json() == expected
            assert await alice.receive_json() == expected
            await bob.send_json({"type": "nick", "nick": "B o b!"})
            assert await alice.receive_json() == {
                "type": "nick",
                "old": "bob",
                "new": "Bob",
                "room": "lobby",
            }
            await bob.receive_json()
            await bob.send_json({"type": "join", "room": "dev"})
            assert await bob.receive_json() == {"type": "joined", "nick": "Bob", "room": "dev"}
            await bob.send_json({"type": "list"})
            assert await bob.receive_json() == {"type": "list", "rooms": {"lobby": 2, "dev": 1}}
            await bob.send_json({"type": "join", "room": "third"})
            assert "too many rooms" in (await bob.receive_json())["error"]
            await bob.send_json({"type": "message", "room": "nope", "text": "x"})
            assert "not in room" in (await bob.receive_json())["error"]
            await bob.send_text("not json")
            assert (await bob.receive_json())["error"] == "send JSON objects"
            await bob.send_json({"type": "leave", "room": "lobby"})
            assert await alice.receive_json() == {"type": "left", "nick": "Bob", "room": "lobby"}
        await until(lambda: chat.rooms == {"lobby": 1})
    await until(lambda: chat.rooms == {})
    assert sanitize_nick("").startswith("guest-") and len(sanitize_nick("x" * 50)) == 20


async def test_websocket_echo() -> None:
    client = AsyncTestClient(WebSocketEcho(), lifespan="off")
    async with client.websocket("/") as ws:
        await ws.send_text("ping")
        assert await ws.receive_text() == "ping"
        await ws.send_bytes(b"\x00")
        assert await ws.receive_bytes() == b"\x00"
    assert (await client.get("/")).status_code == 426


async def test_throttle_one_bucket_by_default_and_per_key_when_asked() -> None:
    app = PlainTextResponse("ok")
    client = AsyncTestClient(Throttle(app, rate=0.01, burst=2), lifespan="off")
    statuses = [(await client.get("/")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    refused = await client.get("/")
    assert int(refused.headers["retry-after"]) >= 1
    per_path = Throttle(app, rate=0.01, burst=1, key=lambda scope: scope["path"])
    client = AsyncTestClient(per_path, lifespan="off")
    assert [(await client.get(p)).status_code for p in ("/a", "/b", "/a")] == [200, 200, 429]


async def test_healthcheck_app_reports_checks_version_and_uptime() -> None:
    async def database() -> bool:
        return True

    def cache() -> bool:
        return False

    client = AsyncTestClient(HealthcheckApp({"db": database}, version="1.2.3"), lifespan="off")
    ok = await client.get("/anything")
    body = ok.json()
    assert ok.status_code == 200 and ok.headers["cache-control"].startswith("no-cache")
    assert body["status"] == "ok" and body["version"] == "1.2.3" and body["uptime"] >= 0
    assert body["checks"]["db"]["status"] == "ok"
    failing = AsyncTestClient(HealthcheckApp({"db": database, "cache": cache}), lifespan="off")
    bad = await failing.get("/")
    assert bad.status_code == 503 and bad.json()["checks"]["cache"]["status"] != "ok"


async def test_loader_serves_reloads_and_answers_500_with_the_error_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "site.py"
    source.write_text("from pagi.tools import PlainTextResponse\napp = PlainTextResponse('one')\n")
    loader = Loader(source, reload=True, check_interval=0)
    client = AsyncTestClient(loader, lifespan="off")
    assert (await client.get("/")).text == "one"
    source.write_text("this is not python (\n")
    os.utime(source, (1, 1))
    failed = await client.get("/")
    assert failed.status_code == 500 and failed.text == "App failed to load\n"
    assert "SyntaxError" in (loader.error or "")
    assert any("could not load" in r.message for r in caplog.records)
    source.write_text(
        "from pagi.tools import PlainTextResponse\nother = PlainTextResponse('two')\n"
    )
    os.utime(source, (2, 2))
    named = Loader(f"{source}:other")
    assert (await AsyncTestClient(named, lifespan="off").get("/")).text == "two"
    assert (await client.get("/")).status_code == 500  # no `app` in the file now
    assert "no callable 'app'" in (loader.error or "")
