"""Chaos runs against `pagi-server --workers 4` under steady load (issue 15, item 3).

Not part of the test suite. Run: ``uv run python bench/chaos.py`` (about 20 s a
run; ``--runs 5`` repeats every scenario and sums up).

Three scenarios, each on a fresh server with four workers and a load of
threaded HTTP/1.1 clients (a new connection per request, so requests spread
over the workers; the app answers with the pid of the worker that served it):

1. **kill -9 one worker**: a request in flight on the killed worker can fail;
   every other request must succeed, and the supervisor must have a
   replacement forked, and serving, within 1 s.

   *Attribution.* A failed request gives no pid, so failures are told apart
   by connection: the victim is first frozen with SIGSTOP, its open TCP
   connections are read from ``/proc/PID/fd`` and ``/proc/net/tcp`` (the
   client port of each), and only then is it sent SIGKILL. Every request
   records the local port of its connection, so a failure whose port was
   one of the victim's connections at the kill is "on the killed worker";
   any other failure (including a refused connect) is "elsewhere" and must
   not happen. Freezing first makes the snapshot exact: a stopped worker
   accepts nothing more, and connections still waiting in the shared
   listening socket's queue are accepted by the others.
2. **SIGHUP rolling restart**: every worker is replaced, one at a time;
   zero failed requests.
3. **SIGTERM drain**: slow requests (0.5 s each) in flight, plus the steady
   load, when the supervisor gets SIGTERM. Each slow request must complete
   with 200 and the supervisor must exit 0. Load requests after the
   SIGTERM either succeed or are refused (``ECONNREFUSED``: nobody listens
   any more, which a client can retry elsewhere; on Linux the server drops
   new SYNs from the SIGTERM on, so such a connect is refused on its retry
   about 1 s later); one whose connection was accepted by the kernel and
   then reset or closed unanswered counts as a reset, and there must be
   none.

The server's log (standard error) is kept and its ERROR lines and
tracebacks are counted. The exit status is 1 when a criterion fails. Only
processes this script starts are signalled, by pid.
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
from typing import Any

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


def started_after_boot(pid: int) -> float:
    """When process ``pid`` started, in seconds since boot (10 ms resolution)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")


def client_ports(pid: int) -> set[int]:
    """Remote (client) ports of the TCP connections process ``pid`` holds open."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            remote_port = int(cols[2].rsplit(":", 1)[1], 16)
            if cols[9] in inodes and remote_port != 0:  # 0: a listening socket
                ports.add(remote_port)
    return ports


class Server:
    """``pagi-server app:app --workers N``, started and stopped by its pid."""

    #: ``--loop`` for the server (None: its default).
    loop: str | None = None

    def __init__(self, app_dir: Path, workers: int) -> None:
        self.port = free_port()
        self.workers = workers
        self.log_path = app_dir / f"server-{self.port}.log"
        self._log = open(self.log_path, "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            [
                *(str(PYTHON), "-m", "pagi.server", "chaos_app:app", "--app-dir", str(app_dir)),
                *("--port", str(self.port), "--workers", str(workers), "-E", "production"),
                *("--shutdown-timeout", "10", "--no-access-log", "--log-level", "info"),
                *(("--loop", self.loop) if self.loop else ()),
            ],
            cwd=app_dir,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        poll(self._ready, 20, "server up with all workers")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"server exited: {self.log_path.read_text()}")
        if len(children(self.proc.pid)) != self.workers:
            return False
        try:
            return get(self.port, "/")[0] is not None
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
        self._log.close()

    def logged_at(self, text: str) -> float | None:
        """The time (epoch seconds, ms resolution) of the first log line containing ``text``."""
        for line in self.log_path.read_text(errors="replace").splitlines():
            if text in line:
                stamp = time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")
                return time.mktime(stamp) + int(line[20:23]) / 1000
        return None

    def log_problems(self) -> list[str]:
        """ERROR/CRITICAL lines and tracebacks in the server's log."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [
            line
            for line in lines
            if " ERROR " in line
            or " CRITICAL " in line
            or "Traceback (most recent call last)" in line
        ]


class RequestFailed(Exception):
    def __init__(self, port: int | None, error: BaseException | str) -> None:
        super().__init__(str(error))
        self.port = port
        self.error = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self.refused = isinstance(error, ConnectionRefusedError)


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, int]:
    """One request on a new connection: (the serving worker's pid, our local port)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    local: int | None = None
    try:
        conn.connect()
        assert conn.sock is not None
        local = int(conn.sock.getsockname()[1])
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"status {response.status}")
        return int(body), local
    except Exception as exc:
        raise RequestFailed(local, exc) from exc
    finally:
        conn.close()


@dataclass
class Failure:
    t: float
    port: int | None
    error: str
    refused: bool


@dataclass
class Load:
    """Threads sending requests in a loop until stopped; results with timestamps."""

    port: int
    threads: int = 8
    ok: list[tuple[float, int]] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pid, _ = get(self.port, "/")
                self.ok.append((time.monotonic(), pid))
            except RequestFailed as exc:
                self.failed.append(Failure(time.monotonic(), exc.port, exc.error, exc.refused))
                if exc.refused:
                    time.sleep(0.01)  # nobody listens: no busy loop

    def __enter__(self) -> Load:
        for _ in range(self.threads):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._workers.append(thread)
        poll(lambda: len(self.ok) >= 200, 10, "load running")
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(10)

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def served_after(self, count: int, timeout: float = 10) -> None:
        """Wait until ``count`` more requests have succeeded."""
        target = len(self.ok) + count
        poll(lambda: len(self.ok) >= target, timeout, f"{count} more requests")


def _errors(failures: list[Failure]) -> list[str]:
    return sorted({f.error for f in failures})[:3]


def kill_one_worker(app_dir: Path) -> dict[str, Any]:
    server = Server(app_dir, 4)
    try:
        with Load(server.port) as load:
            before = children(server.proc.pid)
            victim = min(before)
            # A worker that dies within 1 s of its start is respawned after a pause (a
            # crash loop must not become a fork loop): the victim is a settled one.
            age = time.clock_gettime(time.CLOCK_BOOTTIME) - started_after_boot(victim)
            time.sleep(max(0.0, 2.0 - age))
            os.kill(victim, signal.SIGSTOP)  # frozen: it accepts nothing from here on
            try:
                victim_ports = client_ports(victim)
            finally:
                os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            killed_after_boot = time.clock_gettime(time.CLOCK_BOOTTIME)
            killed_wall = time.time()
            poll(
                lambda: (
                    len(children(server.proc.pid) - {victim}) == 4
                    and victim not in children(server.proc.pid)
                ),
                10,
                "a replacement worker",
            )
            new = children(server.proc.pid) - before
            # From the kernel's start time of the new process, not from when this
            # script's busy threads noticed it.
            forked = min(started_after_boot(pid) for pid in new) - killed_after_boot
            load.served_after(2000)
            # The replacement must serve too.
            poll(lambda: any(pid in new for _, pid in load.ok[-2000:]), 10, "replacement serving")
        first_served = min(t for t, pid in load.ok if pid in new) - killed_at
        noticed = server.logged_at(f"(pid {victim}) exited with")
        ready = min(
            (server.logged_at(f"listening on http://127.0.0.1:{server.port} (pid {pid}") or 1e12)
            for pid in new
        )
        on_victim = [f for f in load.failed if f.port in victim_ports]
        elsewhere = [f for f in load.failed if f.port not in victim_ports]
        return {
            "requests": len(load.ok) + len(load.failed),
            "victim_connections_at_kill": len(victim_ports),
            "failed_on_killed_worker": len(on_victim),
            "failed_elsewhere": len(elsewhere),
            "errors": _errors(load.failed),
            "supervisor_noticed_s": round(noticed - killed_wall, 3) if noticed else None,
            "respawn_forked_s": round(forked, 3),
            "respawn_ready_s": round(ready - killed_wall, 3),
            "respawn_serving_s": round(first_served, 3),
            "served_by_survivors": sum(1 for _, pid in load.ok if pid not in (victim, *new)),
            "server_log_errors": server.log_problems()[:5],
        }
    finally:
        server.stop()


def rolling_restart(app_dir: Path) -> dict[str, Any]:
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
            "failed_at_s": [round(f.t - started, 3) for f in load.failed][:10],
            "errors": _errors(load.failed),
            "roll_s": round(took, 3),
            "server_log_errors": server.log_problems()[:5],
        }
    finally:
        server.stop()


def drain(app_dir: Path, in_flight: int = 16) -> dict[str, Any]:
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
        with Load(server.port, threads=4) as load:
            threads = [threading.Thread(target=slow) for _ in range(in_flight)]
            for thread in threads:
                thread.start()
            for _ in threads:
                sent.acquire(timeout=5)
            # The requests are written; give the workers a moment to accept and read
            # them (the app holds each for 0.5 s, so they are all in the app by then).
            time.sleep(0.1)
            signalled = time.monotonic()
            os.kill(server.proc.pid, signal.SIGTERM)
            for thread in threads:
                thread.join(20)
            code = server.proc.wait(20)
            exited = time.monotonic()
            time.sleep(0.1)  # a few refused connects after the exit
        after = [f for f in load.failed if f.t >= signalled]
        return {
            "in_flight": in_flight,
            "completed_200": results.count("200"),
            "other": [r for r in results if r != "200"],
            "exit_status": code,
            "drain_s": round(exited - signalled, 3),
            "load_served_after_sigterm": sum(1 for t, _ in load.ok if t >= signalled),
            "load_refused_after_sigterm": sum(1 for f in after if f.refused),
            "load_reset": sum(1 for f in load.failed if not f.refused),
            "reset_at_s": [round(f.t - signalled, 3) for f in load.failed if not f.refused][:10],
            "reset_errors": _errors([f for f in load.failed if not f.refused]),
            "server_log_errors": server.log_problems()[:5],
        }
    finally:
        server.stop()


def verdicts(name: str, figures: dict[str, Any]) -> list[str]:
    """The criteria a scenario's figures fail (empty: all pass)."""
    failed = []
    if figures["server_log_errors"]:
        failed.append("errors in the server log")
    if name == "kill":
        if figures["failed_elsewhere"]:
            failed.append("failed requests on the other workers")
        if figures["respawn_ready_s"] > 1.0:
            failed.append("replacement ready after more than 1 s")
    elif name == "sighup":
        if figures["failed"]:
            failed.append("failed requests during the roll")
    elif name == "drain":
        if figures["completed_200"] != figures["in_flight"]:
            failed.append("in-flight requests not completed")
        if figures["exit_status"] != 0:
            failed.append("exit status")
        if figures["load_reset"]:
            failed.append("reset connections")
    return failed


SCENARIOS: dict[str, tuple[str, Callable[[Path], dict[str, Any]]]] = {
    "kill": ("kill -9 one worker", kill_one_worker),
    "sighup": ("SIGHUP rolling restart", rolling_restart),
    "drain": ("SIGTERM drain", drain),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="repeat every scenario")
    parser.add_argument(
        "--scenario", choices=sorted(SCENARIOS), action="append", help="default: all"
    )
    parser.add_argument("--loop", help="the server's --loop (default: the server's default)")
    args = parser.parse_args()
    Server.loop = args.loop
    chosen = args.scenario or list(SCENARIOS)
    failures: list[str] = []
    summary: dict[str, list[dict[str, Any]]] = {name: [] for name in chosen}
    with tempfile.TemporaryDirectory() as tmp:
        app_dir = Path(tmp)
        (app_dir / "chaos_app.py").write_text(APP)
        for run in range(1, args.runs + 1):
            for name in chosen:
                title, scenario = SCENARIOS[name]
                figures = scenario(app_dir)
                summary[name].append(figures)
                bad = verdicts(name, figures)
                failures += [f"run {run}, {title}: {b}" for b in bad]
                print(f"run {run}, {title}: {'FAIL: ' + ', '.join(bad) if bad else 'ok'}")
                for key, value in figures.items():
                    print(f"  {key}: {value}")
                sys.stdout.flush()
    if args.runs > 1:
        print("\nsummary over", args.runs, "runs:")
        keys = {
            "kill": (
                "failed_on_killed_worker",
                "failed_elsewhere",
                "respawn_forked_s",
                "respawn_ready_s",
                "respawn_serving_s",
            ),
            "sighup": ("failed", "roll_s"),
            "drain": ("completed_200", "load_reset", "load_refused_after_sigterm", "drain_s"),
        }
        for name, runs in summary.items():
            print(f"  {SCENARIOS[name][0]}:")
            for key in keys[name]:
                print(f"    {key}: {[figures[key] for figures in runs]}")
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
