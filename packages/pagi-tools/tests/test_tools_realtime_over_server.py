"""The real-time apps over real sockets: two pagi-server processes sharing a real Redis.

``--env development`` puts the Lint middleware in front, so every event the
apps send is checked too. WebSocket clients are the ``websockets`` library,
the SSE client is httpx.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis_server import free_port, redis_url  # noqa: F401  (the fixture)
from websockets.sync.client import ClientConnection, connect

APP = Path(__file__).with_name("realtime_server_app.py")


def _start(redis: str, prefix: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "REALTIME_REDIS_URL": redis, "REALTIME_PREFIX": prefix}
    command = [sys.executable, "-m", "pagi.server", f"{APP}:app", "--port", str(port)]
    command += ["--no-access-log", "--env", "development", "--quiet"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            if httpx.get(f"http://{base}/health", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"pagi-server did not start: {log.read_text()}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def servers(
    redis_url: str,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, str]]:
    logs = tmp_path_factory.mktemp("realtime")
    prefix = f"rt{uuid.uuid4().hex[:6]}:"
    started = [_start(redis_url, prefix, logs / f"server{n}.log") for n in range(2)]
    try:
        yield started[0][1], started[1][1]
    finally:
        for process, _ in started:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait(what: str, check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _json(ws: ClientConnection) -> Any:
    return json.loads(ws.recv(timeout=5))


def _presence(base: str) -> dict[str, int]:
    return dict(httpx.get(f"http://{base}/presence", timeout=5).json())


def test_websocket_broadcast_across_processes(servers: tuple[str, str]) -> None:
    one, two = servers
    with (
        connect(f"ws://{one}/broadcast", proxy=None) as alice,
        connect(f"ws://{two}/broadcast", proxy=None) as bob,
    ):
        _wait("both counted", lambda: _presence(one)["all"] == 2 == _presence(two)["all"])
        alice.send("text from one")
        assert bob.recv(timeout=5) == "text from one"
        bob.send(b"\x00bytes from two")
        assert alice.recv(timeout=5) == b"\x00bytes from two"
        with pytest.raises(TimeoutError):
            alice.recv(timeout=0.3)  # echo_self=False: not its own message
    _wait("both gone", lambda: _presence(one)["all"] == 0)


def test_websocket_chat_across_processes(servers: tuple[str, str]) -> None:
    one, two = servers
    with connect(f"ws://{one}/chat?nick=ann", proxy=None) as ann:
        assert _json(ann) == {"type": "welcome", "nick": "ann", "room": "lobby"}
        assert _json(ann)["type"] == "joined"
        with connect(f"ws://{two}/chat?nick=ben", proxy=None) as ben:
            assert _json(ben)["type"] == "welcome"
            assert _json(ben) == {"type": "joined", "nick": "ben", "room": "lobby"}
            assert _json(ann) == {"type": "joined", "nick": "ben", "room": "lobby"}
            ben.send(json.dumps({"type": "message", "text": "hi ann"}))
            said = {"type": "message", "nick": "ben", "text": "hi ann", "room": "lobby"}
            assert _json(ann) == said and _json(ben) == said
            _wait("lobby of two", lambda: _presence(one)["chat:lobby"] == 2)
            ann.send(json.dumps({"type": "list"}))
            assert _json(ann) == {"type": "list", "rooms": {"lobby": 2}}
        assert _json(ann) == {"type": "left", "nick": "ben", "room": "lobby"}


def test_sse_pubsub_replays_on_the_other_process(servers: tuple[str, str]) -> None:
    one, two = servers
    ids = [httpx.post(f"http://{one}/publish", content=f"e{n}").json()["id"] for n in range(3)]
    headers = {"accept": "text/event-stream", "last-event-id": ids[0]}
    with httpx.stream("GET", f"http://{two}/feed", headers=headers, timeout=5) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        got = []
        for line in lines:
            if line.startswith("data: "):
                got.append(line[6:])
                if len(got) == 2:
                    break
        assert got == ["e1", "e2"]
        httpx.post(f"http://{one}/publish", content="live")
        for line in lines:
            if line.startswith("data: "):
                assert line == "data: live"
                break
    health = httpx.get(f"http://{two}/health").json()
    assert health["status"] == "ok" and health["version"] == "test"
