"""Chaos runs against `pagi-server --workers 4` under steady load (issue 15, item 3).

Not part of the test suite. Run: ``uv run python bench/chaos.py`` (about 20 s).

Three scenarios, each on a fresh server with four workers and a load of
threaded HTTP/1.1 clients (a new connection per request, so requests spread
over the workers):

1. **kill -9 one worker**: failed requests while it dies, and the time until
   the supervisor has four live workers again (the replacement's pid
   appears). A request in flight on the killed worker can fail; every other
   request must succeed.
2. **SIGHUP rolling restart**: every worker is replaced, one at a time;
   failed requests during the roll.
3. **SIGTERM drain**: slow requests (0.5 s each) in flight when the
   supervisor gets SIGTERM; each must complete with 200 (none reset), and
   the supervisor must exit 0.

Only processes this script starts are signalled, by pid.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"

APP = """
import os
import anyio

async def app(scope, receive, send):
    if scope["type"] != "http":
        raise RuntimeError("http only")
    if scope["path"] == "/slow":
        await anyio.sleep(0.5)
    body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
"""


def children(pid: int) -> set[int]:
    """Live (non-zombie) child pids of ``pid``."""
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


def poll(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``check()`` is true (polled every 5 ms); raises after ``timeout``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise TimeoutError(what)
        time.sleep(0.005)
    return time.monotonic() - start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``pagi-server app:app --workers N``, started and stopped by its pid."""

    def __init__(self, app_dir: Path, workers: int) -> None:
        self.port = free_port()
        self.workers = workers
        self.proc = subprocess.Popen(
            [
                *(str(PYTHON), "-m", "pagi.server", "chaos_app:app", "--app-dir", str(app_dir)),
                *("--port", str(self.port), "--workers", str(workers), "-E", "production"),
                *("--shutdown-timeout", "10", "--quiet"),
            ],
            cwd=app_dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        poll(self._ready, 20, "server up with all workers")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()}")  # type: ignore[union-attr]
        if len(children(self.proc.pid)) != self.workers:
            return False
        try:
            return get(self.port, "/") is not None
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                for pid in children(self.proc.pid):
                    os.kill(pid, signal.SIGKILL)
                self.proc.kill()
                self.proc.wait()


def get(port: int, path: str, timeout: float = 5.0) -> int:
    """One request on a new connection; the serving worker's pid."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"status {response.status}")
        return int(body)
    finally:
        conn.close()


@dataclass
class Load:
    """Threads sending requests in a loop until stopped; results with timestamps."""

    port: int
    threads: int = 8
    ok: list[tuple[float, int]] = field(default_factory=list)
    failed: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pid = get(self.port, "/")
                self.ok.append((time.monotonic(), pid))
            except Exception as exc:
                self.failed.append((time.monotonic(), f"{type(exc).__name__}: {exc}"))

    def __enter__(self) -> Load:
        for _ in range(self.threads):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._workers.append(thread)
        poll(lambda: len(self.ok) >= 200, 10, "load running")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(10)

    def served_after(self, count: int, timeout: float = 10) -> None:
        """Wait until ``count`` more requests have succeeded."""
        target = len(self.ok) + count
        poll(lambda: len(self.ok) >= target, timeout, f"{count} more requests")


def kill_one_worker(app_dir: Path) -> dict[str, object]:
    server = Server(app_dir, 4)
    try:
        with Load(server.port) as load:
            before = children(server.proc.pid)
            victim = min(before)
            killed_at = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            respawn = poll(
                lambda: (
                    len(children(server.proc.pid) - {victim}) == 4
                    and victim not in children(server.proc.pid)
                ),
                10,
                "a replacement worker",
            )
            new = children(server.proc.pid) - before
            load.served_after(2000)
            # The replacement must serve too.
            poll(lambda: any(pid in new for _, pid in load.ok[-2000:]), 10, "replacement serving")
        others = [pid for _, pid in load.ok if pid not in (victim, *new)]
        return {
            "requests": len(load.ok) + len(load.failed),
            "failed": len(load.failed),
            "failed_within_100ms_of_kill": sum(
                1 for t, _ in load.failed if 0 <= t - killed_at < 0.1
            ),
            "errors": sorted({e for _, e in load.failed})[:3],
            "respawn_s": round(respawn, 3),
            "served_by_survivors": len(others),
        }
    finally:
        server.stop()


def rolling_restart(app_dir: Path) -> dict[str, object]:
    server = Server(app_dir, 4)
    try:
        with Load(server.port) as load:
            before = children(server.proc.pid)
            started = time.monotonic()
            os.kill(server.proc.pid, signal.SIGHUP)
            took = poll(
                lambda: (
                    not (children(server.proc.pid) & before) and len(children(server.proc.pid)) == 4
                ),
                60,
                "every worker replaced",
            )
            load.served_after(2000)
        during = [t for t, _ in load.ok if started <= t <= started + took]
        return {
            "requests": len(load.ok) + len(load.failed),
            "requests_during_roll": len(during),
            "failed": len(load.failed),
            "errors": sorted({e for _, e in load.failed})[:3],
            "roll_s": round(took, 3),
        }
    finally:
        server.stop()


def drain(app_dir: Path, in_flight: int = 16) -> dict[str, object]:
    server = Server(app_dir, 4)
    results: list[str] = []
    lock = threading.Lock()
    sent = threading.Semaphore(0)

    def slow() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=15)
        try:
            conn.request("GET", "/slow")
            sent.release()
            response = conn.getresponse()
            response.read()
            outcome = str(response.status)
        except Exception as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()
        with lock:
            results.append(outcome)

    try:
        threads = [threading.Thread(target=slow) for _ in range(in_flight)]
        for thread in threads:
            thread.start()
        for _ in threads:
            sent.acquire(timeout=5)
        # The requests are written; give the workers a moment to accept and read
        # them (the app holds each for 0.5 s, so they are all in the app by then).
        time.sleep(0.1)
        os.kill(server.proc.pid, signal.SIGTERM)
        for thread in threads:
            thread.join(20)
        code = server.proc.wait(20)
        return {
            "in_flight": in_flight,
            "completed_200": results.count("200"),
            "other": [r for r in results if r != "200"],
            "exit_status": code,
        }
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app_dir = Path(tmp)
        (app_dir / "chaos_app.py").write_text(APP)
        report = {
            "kill -9 one worker": kill_one_worker(app_dir),
            "SIGHUP rolling restart": rolling_restart(app_dir),
            "SIGTERM drain": drain(app_dir),
        }
    for name, figures in report.items():
        print(f"{name}:")
        for key, value in figures.items():
            print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
