"""The notes example, driven in memory by the toolkit's test client."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from example_harness import serve
from websockets.sync.client import connect

from pagi.tools.testing import AsyncTestClient

pytestmark = pytest.mark.anyio


def load_app() -> Any:
    path = Path(__file__).with_name("app.py")
    spec = importlib.util.spec_from_file_location("notes_example_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.app


async def test_json_api_round_trip() -> None:
    async with AsyncTestClient(load_app(), lifespan="on") as client:
        assert (await client.get("/notes")).json() == {"notes": []}
        created = await client.post("/notes", json={"text": "buy milk"})
        assert created.status_code == 201
        assert created.json() == {"id": 1, "text": "buy milk"}
        assert created.location == "/notes/1"
        assert (await client.get("/notes/1")).json() == {"id": 1, "text": "buy milk"}
        assert (await client.get("/notes/2")).status_code == 404
        assert (await client.post("/notes", json={"nope": 1})).status_code == 422
        assert (await client.delete("/notes")).status_code == 405


async def test_sse_listeners_see_new_notes() -> None:
    async with AsyncTestClient(load_app(), lifespan="on") as client:
        async with client.sse("/notes/events") as events:
            await client.post("/notes", json={"text": "first"})
            event = await events.receive_event()
            assert (event.event, event.id, event.json()) == (
                "note",
                "1",
                {"id": 1, "text": "first"},
            )
            assert events.keepalive is not None and events.keepalive["interval"] == 15


async def test_websocket_adds_notes() -> None:
    async with AsyncTestClient(load_app(), lifespan="on") as client:
        async with client.websocket("/notes/ws") as ws:
            await ws.send_json({"text": "via socket"})
            assert await ws.receive_json() == {"id": 1, "text": "via socket"}
            await ws.send_json({"bad": True})
            assert "error" in await ws.receive_json()
        assert (await client.get("/notes")).json()["notes"] == [{"id": 1, "text": "via socket"}]


async def test_websocket_answers_text_that_is_not_json_and_stays_open() -> None:
    async with AsyncTestClient(load_app(), lifespan="on") as client:
        async with client.websocket("/notes/ws") as ws:
            await ws.send_text("hello?")
            assert await ws.receive_json() == {"error": 'not JSON: send {"text": "..."}'}
            await ws.send_bytes(b"\xff\xfe")
            assert "not JSON" in (await ws.receive_json())["error"]
            await ws.send_json({"text": "still here"})
            assert await ws.receive_json() == {"id": 1, "text": "still here"}


def test_non_json_over_the_real_server_is_an_error_message_not_a_traceback(
    tmp_path: Path,
) -> None:
    # serve() also fails the test if the server's log holds a traceback.
    with serve("notes/app.py", tmp_path) as server:
        with connect(server.ws_url + "/notes/ws", proxy=None) as ws:
            ws.send("this is not JSON")
            assert json.loads(ws.recv(timeout=5))["error"].startswith("not JSON")
            ws.send('{"text": "fine"}')
            assert json.loads(ws.recv(timeout=5)) == {"id": 1, "text": "fine"}
