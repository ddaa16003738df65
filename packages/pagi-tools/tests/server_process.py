"""Real servers in subprocesses for the toolkit's over-the-wire tests.

``serve_command(command, port)`` starts any server command (pagi-server,
uvicorn, hypercorn, granian) that will listen on ``127.0.0.1:port``, waits
until it accepts connections, yields ``host:port``, and stops it (SIGTERM
to its pid, SIGKILL if it hangs). Its output goes to a file, never a pipe
nobody reads (a chatty server would block on a full pipe); a server that
dies or never listens fails the test with that output.

``pagi_server(app_file)`` is the common case: ``python -m pagi.server
FILE:app`` on a free port in development mode, so Lint checks every event.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(
    process: subprocess.Popen[bytes], what: str, port: int, timeout: float, output: Path
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"{what} exited {process.returncode}:\n{output.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{what} not listening on {port} in {timeout} s:\n{output.read_text()}")
            time.sleep(0.05)  # poll interval of a deadline-bounded wait


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()  # by pid
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def serve_command(
    command: list[str],
    port: int,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    start_timeout: float = 15.0,
) -> Iterator[str]:
    """Run ``command`` until the block ends; yields ``127.0.0.1:port`` once it listens.

    ``log`` keeps the server's output for the caller to read afterwards;
    without it the output goes to a temporary file.
    """
    with tempfile.TemporaryDirectory() as scratch:
        output = log or Path(scratch) / "server.log"
        with output.open("wb") as out:
            process = subprocess.Popen(
                command, cwd=cwd, env={**os.environ, **(env or {})}, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            _wait_listening(process, " ".join(command), port, start_timeout, output)
            yield f"127.0.0.1:{port}"
        finally:
            _stop(process)


@contextmanager
def pagi_server(app_file: Path, *, env: dict[str, str] | None = None) -> Iterator[str]:
    """Serve ``app_file``'s ``app`` with the real server; yields ``host:port``."""
    port = free_port()
    command = [sys.executable, "-m", "pagi.server", f"{app_file}:app", "--port", str(port)]
    command += ["--no-access-log", "--env", "development", "--quiet"]
    environ = {"PYTHONPATH": str(app_file.parent), **(env or {})}
    with serve_command(command, port, env=environ) as address:
        yield address
