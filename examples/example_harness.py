"""What the example tests share: a real ``pagi-server`` subprocess and a headless Chromium.

``serve(app, tmp_path)`` starts ``python -m pagi.server APP`` on a free
port, waits until it answers, and on exit stops it with SIGTERM (by pid)
and checks that it drained cleanly (exit code 0) and that its log holds no
traceback: examples answer bad input with an error, never a stack trace.

``chromium(tmp_path)`` starts a headless Chromium and ``Page.open`` drives
one tab over the DevTools protocol with the ``websockets`` client, so
nothing is downloaded. Without Chromium the test skips, naming the fix;
with ``PAGI_REQUIRE_BROWSER=1`` (``.ci/run`` sets it) it fails instead.
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

EXAMPLES = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait(what: str, check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``check`` until it returns something truthy; that value is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@dataclass
class Server:
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http") :]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def serve(
    app: str | Path,
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    scheme: str = "http",
    verify: Any = False,
    check_log: bool = True,
) -> Iterator[Server]:
    """Serve ``app`` (a path under examples/ or any app spec) with the real pagi-server."""
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    spec = str(EXAMPLES / app) if not Path(app).is_absolute() and ":" not in str(app) else str(app)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pagi.server", spec, "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=tmp_path,
        )
    server = Server(f"{scheme}://127.0.0.1:{port}", port, proc, log)

    def answers() -> bool:
        assert proc.poll() is None, server.log()
        try:
            httpx.get(server.url + "/", timeout=2, verify=verify)
        except httpx.TransportError:
            return False
        return True

    try:
        wait("the server to answer", answers, timeout=15)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()  # SIGTERM, by pid: a graceful drain
        try:
            code = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(5)
    assert code == 0, server.log()
    if check_log:
        assert "Traceback" not in server.log(), server.log()


@contextmanager
def chromium(tmp_path: Path) -> Iterator[str]:
    """A headless Chromium; yields the DevTools HTTP endpoint."""
    if not shutil.which(CHROMIUM):
        message = f"{CHROMIUM} not found: apt-get install chromium"
        if os.environ.get("PAGI_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    profile = tmp_path / "chromium-profile"
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
            "--ignore-certificate-errors",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        active = profile / "DevToolsActivePort"
        wait("Chromium's DevTools port", lambda: active.exists() and active.read_text().strip())
        yield f"http://127.0.0.1:{active.read_text().split()[0]}"
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
        try:
            with connect(
                target["webSocketDebuggerUrl"], max_size=None, proxy=None, open_timeout=10
            ) as ws:
                yield cls(ws)
        finally:
            httpx.get(f"{devtools}/json/close/{target['id']}", timeout=10)

    def eval(self, expression: str) -> Any:
        """Evaluate ``expression`` in the tab and return its value.

        Right after a tab opens (or navigates) Chromium may answer that it has
        no execution context yet; that is retried for a few seconds rather
        than reported as the page's failure.
        """
        deadline = time.monotonic() + 5
        while True:
            reply = self._evaluate(expression)
            if "result" in reply:
                result = reply["result"]
                assert "exceptionDetails" not in result, result
                return result["result"].get("value")
            if time.monotonic() > deadline:
                raise AssertionError(f"DevTools refused {expression!r}: {reply.get('error')}")
            time.sleep(0.05)  # no execution context yet: the page is still starting

    def _evaluate(self, expression: str) -> dict[str, Any]:
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
            reply: dict[str, Any] = json.loads(self.ws.recv(timeout=10))
            if reply.get("id") == call_id:
                return reply

    def wait(self, expression: str, timeout: float = 10.0) -> Any:
        """Wait until ``expression`` is truthy in the page; returns its value."""
        return wait(expression, lambda: self.eval(expression), timeout)

    def text(self, element_id: str) -> str:
        return str(self.eval(f"document.getElementById({element_id!r})?.textContent ?? ''"))
