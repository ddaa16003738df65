"""The chat example on two pagi-server processes sharing a real Redis (redis_server.py).

A WebSocket member on process A and an SSE reader on process B see each
other's messages and messages posted to either process; presence counts
both; an SSE reader that reconnects to the *other* process with
Last-Event-ID gets what it missed; killing A loses nothing for B's clients.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from redis_server import redis_url  # noqa: F401  (the fixture)
from websockets.sync.client import ClientConnection, connect

APP = Path(__file__).with_name("app.py")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(what: str, check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def chat_process(
    tmp_path: Path, redis: str, label: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = _free_port()
    log = tmp_path / f"server-{label}.log"
    env = {**os.environ, "CHAT_REDIS_URL": redis}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(APP), "--redis", redis, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return httpx.get(url + "/online", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        _wait(f"chat process {label}", up)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


class SSEReader:
    """Reads ``/events`` in a thread; events land in a queue as ``(id, data)``."""

    def __init__(self, url: str, last_event_id: str | None = None) -> None:
        self.events: queue.Queue[tuple[str | None, str]] = queue.Queue()
        headers = {"accept": "text/event-stream"}
        if last_event_id:
            headers["last-event-id"] = last_event_id
        self._client = httpx.Client(timeout=httpx.Timeout(5, read=None))
        self._response = self._client.send(
            self._client.build_request("GET", url + "/events", headers=headers), stream=True
        )
        assert self._response.status_code == 200
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        event_id, data = None, []
        try:
            for line in self._response.iter_lines():
                if line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif line == "" and data:
                    self.events.put((event_id, "\n".join(data)))
                    event_id, data = None, []
        except httpx.HTTPError:
            pass

    def next_matching(self, text: str, timeout: float = 10.0) -> tuple[str | None, str]:
        deadline = time.monotonic() + timeout
        while True:
            event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if event[1] == text:
                return event

    def close(self) -> None:
        self._response.close()
        self._client.close()


def recv_until(ws: ClientConnection, text: str) -> None:
    deadline = time.monotonic() + 10
    while ws.recv(timeout=max(0.01, deadline - time.monotonic())) != text:
        pass


def subscribers(url: str) -> int:
    return int(httpx.get(url + "/online", timeout=5).json()["subscribers"])


def test_two_processes_share_the_room_through_redis(tmp_path: Path, redis_url: str) -> None:  # noqa: F811
    import redis as redis_sync

    redis_sync.Redis.from_url(redis_url).flushdb()  # a clean room and presence
    with (
        chat_process(tmp_path, redis_url, "a") as (a, proc_a),
        chat_process(tmp_path, redis_url, "b") as (b, _),
        connect(a.replace("http", "ws") + "/ws?name=alice", proxy=None) as alice,
        connect(b.replace("http", "ws") + "/ws?name=bob", proxy=None) as bob,
    ):
        reader = SSEReader(b)
        try:
            recv_until(alice, "* alice joined")
            recv_until(alice, "* bob joined")
            # Presence counts both processes' subscribers (two WebSockets and one stream).
            _wait("presence 3 on A", lambda: subscribers(a) == 3)
            _wait("presence 3 on B", lambda: subscribers(b) == 3)
            _wait(
                "names on A", lambda: httpx.get(a + "/online").json()["names"] == ["alice", "bob"]
            )

            alice.send("hello from A")
            reader.next_matching("alice: hello from A")
            recv_until(bob, "alice: hello from A")
            httpx.post(b + "/say?name=carol", content="posted to B", timeout=5)
            recv_until(alice, "carol: posted to B")
            seen_id, _ = reader.next_matching("carol: posted to B")
            assert seen_id

            # The SSE reader leaves; two lines are said on A; it comes back on A.
            reader.close()
            alice.send("missed one")
            alice.send("missed two")
            recv_until(alice, "alice: missed two")
            reader = SSEReader(a, last_event_id=seen_id)
            reader.next_matching("alice: missed one")
            reader.next_matching("alice: missed two")
            reader.close()

            # A dies without warning: B's clients keep everything said on B.
            reader = SSEReader(b)
            _wait("the new stream on B", lambda: subscribers(b) >= 3)
            proc_a.send_signal(signal.SIGKILL)
            proc_a.wait(10)
            for n in range(20):
                httpx.post(b + "/say?name=carol", content=f"after A died {n}", timeout=5)
            for n in range(20):
                recv_until(bob, f"carol: after A died {n}")
                reader.next_matching(f"carol: after A died {n}")
        finally:
            reader.close()
