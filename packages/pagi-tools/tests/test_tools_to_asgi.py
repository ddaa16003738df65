"""to_asgi: the examples on uvicorn, hypercorn and granian, checked as on pagi-server.

Each server runs ``bridge_apps`` in a subprocess (pagi-server runs the
PAGI app itself, the others ``to_asgi(app)``); every client check runs
against all four. The servers are asyncio programs; the checks are
synchronous clients, so there is no anyio backend to vary here.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_process import free_port, serve_command
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

HERE = Path(__file__).resolve().parent
SERVERS = ["pagi-server", "uvicorn", "hypercorn", "granian"]


def _command(server: str, port: int) -> list[str]:
    py = sys.executable
    if server == "pagi-server":
        return [py, "-m", "pagi.server", "bridge_apps.py:app", "--port", str(port),
                "--lifespan", "on", "--no-access-log", "--quiet"]  # fmt: skip
    if server == "uvicorn":
        return [py, "-m", "uvicorn", "bridge_apps:asgi_app", "--port", str(port),
                "--lifespan", "on", "--no-access-log", "--log-level", "warning"]  # fmt: skip
    if server == "hypercorn":
        return [py, "-m", "hypercorn", "bridge_apps:asgi_app", "--bind", f"127.0.0.1:{port}"]
    return [py, "-m", "granian", "--interface", "asgi", "bridge_apps:asgi_app",
            "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
            "--log-level", "warning"]  # fmt: skip


@pytest.fixture(scope="module", params=SERVERS)
def base(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = str(request.param)
    tmp = tmp_path_factory.mktemp(server)
    data = tmp / "data.bin"
    data.write_bytes(bytes(range(256)) * 2000)
    port = free_port()
    env = {"PAGI_ENV": "production", "BRIDGE_DATA_FILE": str(data)}
    log = tmp / "server.log"
    command = _command(server, port)
    with serve_command(command, port, cwd=HERE, env=env, log=log, start_timeout=20) as address:
        yield f"http://{address}"


def test_hello(base: str) -> None:
    response = httpx.get(base + "/hello/")
    assert (response.status_code, response.text) == (200, "Hello, world!\n")
    assert response.headers["content-type"] == "text/plain"


def test_chat_page_websocket_sse_and_declines(base: str) -> None:
    page = httpx.get(base + "/chat/")
    assert page.headers["content-type"].startswith("text/html")
    assert b"new WebSocket" in page.content
    ws_url = base.replace("http", "ws") + "/chat/ws?name=solo"
    with connect(ws_url, proxy=None) as ws:
        assert ws.recv(timeout=5) == "* solo joined"
        ws.send("anyone?")
        assert ws.recv(timeout=5) == "solo: anyone?"
        with httpx.stream("GET", base + "/chat/presence", timeout=5,
                          headers={"accept": "text/event-stream"}) as feed:  # fmt: skip
            assert feed.headers["content-type"].startswith("text/event-stream")
            lines = feed.iter_lines()
            assert next(lines) == "event: presence"
            assert next(lines) == 'data: ["solo"]'
    declined = httpx.get(base + "/chat/other", headers={"accept": "text/event-stream"})
    assert declined.status_code == 204  # the SSE decline path
    with pytest.raises(InvalidStatus) as info:
        connect(base.replace("http", "ws") + "/chat/nope", proxy=None)
    assert info.value.response.status_code == 403  # close before accept


def test_notes_json_sse_and_websocket_with_lifespan_state(base: str) -> None:
    with httpx.Client(base_url=base, timeout=5) as client:
        with client.stream("GET", "/notes/events", headers={"accept": "text/event-stream"}) as feed:
            assert feed.status_code == 200
            created = client.post("/notes", json={"text": "buy milk"})
            assert created.status_code == 201
            note = created.json()
            assert note["text"] == "buy milk"
            lines = feed.iter_lines()
            block = []
            for line in lines:
                if not line:
                    if any(x.startswith("data:") for x in block):
                        break
                    continue
                block.append(line)
            assert "event: note" in block
            assert f"id: {note['id']}" in block
            data = json.loads(next(x for x in block if x.startswith("data:"))[5:])
            assert data == note
        assert client.get(f"/notes/{note['id']}").json() == note
        assert client.get("/notes/99999").status_code == 404
        assert client.post("/notes", json={"nope": 1}).status_code == 422
    with connect(base.replace("http", "ws") + "/notes/ws", proxy=None) as ws:
        ws.send(json.dumps({"text": "via socket"}))
        assert json.loads(ws.recv(timeout=5))["text"] == "via socket"


def test_connection_sees_disconnect_without_receive_and_file_bodies(base: str) -> None:
    with httpx.stream("GET", base + "/probe/wait-disconnect", timeout=5) as response:
        assert next(response.iter_bytes()) == b"waiting\n"
    deadline = time.monotonic() + 5
    while "client_closed" not in httpx.get(base + "/probe/disconnects").text:
        assert time.monotonic() < deadline, "pagi.connection never saw the disconnect"
        time.sleep(0.05)
    expected = bytes(range(256)) * 2000
    assert httpx.get(base + "/probe/file").content == expected
    assert httpx.get(base + "/probe/file-range").content == expected[10:30]


def test_websocket_denial(base: str) -> None:
    """All four servers offer websocket.http.response; the 403 fallback is in test_tools_asgi."""
    with pytest.raises(InvalidStatus) as info:
        connect(base.replace("http", "ws") + "/probe/deny", proxy=None)
    assert info.value.response.status_code == 401
    assert info.value.response.body == b"who are you?"
