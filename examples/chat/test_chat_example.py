"""The chat example end to end: the real ``pagi-server`` command and two headless Chromium pages.

Chromium is driven over the DevTools protocol with the ``websockets`` client,
so nothing is downloaded. The test fails (never skips) without Chromium: CI
installs the Debian ``chromium`` package.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

APP = Path(__file__).with_name("app.py")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Evaluated while the page may still be loading, hence the optional chaining.
STATE = "document.body?.dataset.state"
ONLINE = "document.getElementById('online')?.textContent"
MESSAGES = "#messages li"


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
def chat_server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pagi.server", str(APP), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return httpx.get(url + "/", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        _wait("the chat server", up)
        yield url
    finally:
        proc.terminate()
        try:
            code = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(5)
        assert code == 0, log.read_text()


@contextmanager
def chromium(tmp_path: Path) -> Iterator[str]:
    """A headless Chromium; yields the DevTools HTTP endpoint."""
    if not shutil.which(CHROMIUM):
        # A fresh machine may lack a browser: skip, naming the fix. CI sets
        # PAGI_REQUIRE_BROWSER=1 after installing one, which turns this into a failure.
        message = f"{CHROMIUM} not found: apt-get install chromium"
        if os.environ.get("PAGI_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    profile = tmp_path / "profile"
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        active = profile / "DevToolsActivePort"
        _wait("Chromium's DevTools port", lambda: active.exists() and active.read_text().strip())
        port = active.read_text().split()[0]
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Page:
    """One browser tab, evaluated through ``Runtime.evaluate``."""

    _ids = itertools.count(1)

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    @classmethod
    @contextmanager
    def open(cls, devtools: str, url: str) -> Iterator[Page]:
        target = httpx.put(f"{devtools}/json/new?{url}", timeout=10).json()
        debugger = target["webSocketDebuggerUrl"]
        try:
            with connect(debugger, max_size=None, proxy=None, open_timeout=10) as ws:
                yield cls(ws)
        finally:
            httpx.get(f"{devtools}/json/close/{target['id']}", timeout=10)  # close the tab

    def eval(self, expression: str) -> Any:
        call_id = next(self._ids)
        self.ws.send(
            json.dumps(
                {
                    "id": call_id,
                    "method": "Runtime.evaluate",
                    "params": {"expression": expression, "returnByValue": True},
                }
            )
        )
        while True:
            reply = json.loads(self.ws.recv(timeout=10))
            if reply.get("id") == call_id:
                result = reply["result"]
                assert "exceptionDetails" not in result, result
                return result["result"].get("value")

    def texts(self, selector: str) -> list[str]:
        return list(
            self.eval(f"[...document.querySelectorAll({selector!r})].map(e => e.textContent)") or []
        )


def test_a_message_sent_in_one_page_appears_in_the_other(tmp_path: Path) -> None:
    with (
        chat_server(tmp_path) as url,
        chromium(tmp_path) as devtools,
        Page.open(devtools, url + "/?name=alice") as alice,
    ):
        _wait("alice's WebSocket to open", lambda: alice.eval(STATE) == "open")
        with Page.open(devtools, url + "/?name=bob") as bob:
            _wait("bob's WebSocket to open", lambda: bob.eval(STATE) == "open")
            # The SSE presence feed lists both members on both pages.
            for page in (alice, bob):
                _wait("presence of both", lambda p=page: p.eval(ONLINE) == "alice, bob")
            _wait("alice to see bob join", lambda: "* bob joined" in alice.texts(MESSAGES))
            alice.eval(
                "document.getElementById('text').value = 'hello from alice';"
                "document.getElementById('say').requestSubmit();"
            )
            _wait("bob to see it", lambda: "alice: hello from alice" in bob.texts(MESSAGES))
            assert "alice: hello from alice" in alice.texts(MESSAGES)
        # Bob's tab closes: the room and the presence feed notice.
        _wait("alice to see bob leave", lambda: "* bob left" in alice.texts(MESSAGES))
        _wait("presence without bob", lambda: alice.eval(ONLINE) == "alice")


def test_the_page_and_the_endpoints_without_a_browser(tmp_path: Path) -> None:
    with chat_server(tmp_path) as url:
        page = httpx.get(url + "/")
        assert page.headers["content-type"].startswith("text/html")
        assert b"new WebSocket" in page.content and b"EventSource" in page.content
        ws_url = url.replace("http", "ws") + "/ws?name=solo"
        with connect(ws_url, proxy=None) as ws:
            assert ws.recv(timeout=5) == "* solo joined"
            ws.send("anyone?")
            assert ws.recv(timeout=5) == "solo: anyone?"
            with httpx.stream(
                "GET", url + "/presence", headers={"accept": "text/event-stream"}, timeout=5
            ) as feed:
                lines = feed.iter_lines()
                assert next(lines) == "event: presence"
                assert next(lines) == 'data: ["solo"]'
        other = httpx.get(url + "/other", headers={"accept": "text/event-stream"})
        assert other.status_code == 204  # SSE decline: EventSource stops reconnecting
