"""The server on uvloop, whose transports are not asyncio.Transport subclasses."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
from server_subprocess import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[3]


def test_uvloop_serves_http1_http2_and_pipelined_requests(tmp_path: Path) -> None:
    port = free_port()
    app = str(ROOT / "examples/hello/app.py")
    args = [app, "--port", str(port), "--loop", "uvloop", "--no-access-log"]
    proc = ServerProcess([*args, "--log-level", "warning"], tmp_path)
    try:
        proc.wait_port(port)
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
        proc.stop()
    assert proc.proc.returncode == 0, proc.stderr
