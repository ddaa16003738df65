"""A real ``pagi-server`` subprocess for the toolkit's over-the-wire tests.

``pagi_server(app_file)`` starts ``python -m pagi.server FILE:app`` on a
free 127.0.0.1 port in development mode (so Lint checks every event), waits
until it accepts connections, yields ``host:port``, and stops it (SIGTERM to
its pid, SIGKILL if it hangs). A server that dies at start fails the test
with its output.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def pagi_server(app_file: Path, *, env: dict[str, str] | None = None) -> Iterator[str]:
    """Serve ``app_file``'s ``app`` with the real server; yields ``host:port``."""
    port = free_port()
    command = [sys.executable, "-m", "pagi.server", f"{app_file}:app", "--port", str(port)]
    command += ["--no-access-log", "--env", "development", "--quiet"]
    environ = {**os.environ, "PYTHONPATH": str(app_file.parent), **(env or {})}
    process = subprocess.Popen(
        command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read().decode() if process.stdout else ""
                    pytest.fail(f"pagi-server did not start: {output}")
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()
