"""A real ``pagi-server`` in a subprocess, for the CLI, drain, worker and operations tests.

``ServerProcess`` runs ``python -m pagi.server ARGS`` with its output in
files, ``run_cli`` runs a command that exits on its own, ``write_app``
writes an app module into a test's directory, and ``children`` /
``wait_children`` read a supervisor's live workers from ``/proc``.
``PID_APP`` and ``WORKER_APP`` are the small apps several files serve.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_app(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(source))
    return path


PID_APP = """
import os

import anyio


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] in ("/slow", "/hang"):
        # A file the test waits for: the request is in the app now.
        open(scope["path"][1:] + "-started", "w").close()
    if scope["path"] == "/slow":
        await anyio.sleep(1.0)
    if scope["path"] == "/hang":
        await anyio.sleep(60)
    body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
"""


class ServerProcess:
    """``python -m pagi.server ARGS`` in a subprocess; output goes to files."""

    def __init__(
        self, args: list[str], cwd: Path, *, env: dict[str, str] | None = None, **popen: Any
    ) -> None:
        self.out = cwd / f"server-{time.monotonic_ns()}.out"
        self.err = self.out.with_suffix(".err")
        full_env = {**os.environ, "PAGI_ENV": "production", **(env or {})}
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pagi.server", *args],
                cwd=cwd,
                stdout=out,
                stderr=err,
                env=full_env,
                **popen,
            )

    @property
    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    @property
    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_port(self, port: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.stderr}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"server did not listen on {port}: {self.stderr}")

    def wait_until(self, check: Any, what: str, timeout: float = 15.0) -> None:
        """Poll ``check()`` until true; fail naming ``what`` on timeout or if the server exits."""
        deadline = time.monotonic() + timeout
        while not check():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"server exited {self.proc.returncode} before {what}: {self.stderr}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout} s: {self.stderr}")
            time.sleep(0.05)

    def wait_path(self, path: Path, timeout: float = 15.0) -> None:
        self.wait_until(path.exists, f"file at {path}", timeout)

    def wait_stderr(self, needle: str, timeout: float = 15.0) -> None:
        self.wait_until(lambda: needle in self.stderr, f"{needle!r} in the log", timeout)

    def wait(self, timeout: float = 15.0) -> int:
        return self.proc.wait(timeout)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def run_cli(args: list[str], cwd: Path, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    """Run ``pagi-server`` to completion (for commands that exit on their own)."""
    return subprocess.run(
        [sys.executable, "-m", "pagi.server", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PAGI_ENV": "production"},
    )


WORKER_APP = """
import json
import os
import time

LIFESPAN = {}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        LIFESPAN.update(scope["pagi"])
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        event = await receive()
        body += event.get("body", b"")
        if not event.get("more"):
            break
    if scope["path"] == "/block":
        open("block-started", "w").close()  # the test signals only once a worker is busy
        time.sleep(0.4)  # holds this worker's event loop: the next client goes elsewhere
    data = json.dumps({"pid": os.getpid(), "lifespan": LIFESPAN}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
"""


def children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry))
    return found


def wait_children(pid: int, count: int, timeout: float = 15.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = children(pid)
        if len(kids) == count:
            return kids
        time.sleep(0.05)
    raise AssertionError(f"expected {count} workers, have {children(pid)}")
