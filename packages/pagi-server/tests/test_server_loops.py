"""The server on uvloop, whose transports are not asyncio.Transport subclasses."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_uvloop_serves_http1_http2_and_pipelined_requests(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pagi.server",
            str(ROOT / "examples/hello/app.py"),
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "server did not start"
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/"
        assert httpx.get(url).text == "Hello, world!\n"
        with httpx.Client(http1=False, http2=True) as client:
            response = client.get(url)
        assert response.http_version == "HTTP/2" and response.text == "Hello, world!\n"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2
                + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            data = b""
            while chunk := raw.recv(65536):
                data += chunk
        assert data.count(b"HTTP/1.1 200 OK") == 3
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0
