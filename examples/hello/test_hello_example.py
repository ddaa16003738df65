"""The hello example, served by the real ``pagi-server`` command in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

APP = Path(__file__).with_name("app.py")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_hello_example_says_hello(tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pagi.server",
                str(APP),
                "--port",
                str(port),
                "--lifespan",
                "on",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PAGI_ENV": "production"},
        )
    try:
        deadline = time.monotonic() + 15
        response = None
        while response is None:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
            except httpx.TransportError:
                time.sleep(0.05)
        assert response.status_code == 200
        assert response.text == "Hello, world!\n"
        assert response.headers["content-type"] == "text/plain"
    finally:
        proc.terminate()  # SIGTERM, by pid: a graceful drain
        try:
            code = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(5)
    assert code == 0, log.read_text()
