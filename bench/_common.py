"""Shared helpers for the side-by-side benchmarks (run_http.py, run_ws.py, profile_pagi.py).

Only the standard library: these scripts run with any Python 3.10+; the
servers themselves run from two virtualenvs:

* pagi-server from the workspace environment (``.venv`` at the repo root, made by
  ``uv sync``), i.e. exactly what ``uv run pagi-server`` uses, but started as
  ``.venv/bin/python -m pagi.server`` so the pid we hold is the server's own;
* the peers (uvicorn, hypercorn, granian) from ``bench/.venv``
  (``bench/setup.sh`` makes it).

Every server is started by this module, pinned with ``taskset`` when it
exists, and stopped by the pid we got from ``Popen`` (SIGINT, then SIGKILL of
that pid and the children it spawned, which we look up by parent pid).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
APPS = BENCH / "apps"
RESULTS = BENCH / "results"
PAGI_PY = ROOT / ".venv" / "bin" / "python"
PEER_PY = BENCH / ".venv" / "bin" / "python"
PEER_BIN = BENCH / ".venv" / "bin"

SERVER_CPU = "0"
CLIENT_CPU = "1"


def die(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def check_python_envs() -> None:
    if not PAGI_PY.exists():
        die(f"{PAGI_PY} is missing: run `uv sync` at the repo root first")
    probe = subprocess.run(
        [str(PAGI_PY), "-c", "import pagi.server"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        die(f"pagi.server does not import in {PAGI_PY}: run `uv sync`\n{probe.stderr}")
    if not PEER_PY.exists():
        die(f"{PEER_PY} is missing: run `bash bench/setup.sh` to install the peer servers")
    probe = subprocess.run(
        [str(PEER_PY), "-c", "import uvicorn, h11, httptools, hypercorn, granian, wsproto"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        die(f"peer servers missing from {PEER_PY}: run `bash bench/setup.sh`\n{probe.stderr}")


def require_tool(name: str, install_hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        die(f"`{name}` not found; install it with: {install_hint}")
    return path


def have_taskset() -> bool:
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def pinned(cmd: list[str], cpu: str) -> list[str]:
    """Prefix ``cmd`` with ``taskset -c cpu`` when taskset is there and we have 2+ CPUs."""
    return ["taskset", "-c", cpu, *cmd] if have_taskset() else cmd


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- process tree and memory ---------------------------------------------------------


def children_of(pid: int) -> list[int]:
    """All descendants of ``pid`` (by walking /proc parent links)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(pid: int) -> int:
    """RSS of ``pid`` plus its descendants (granian keeps a supervisor + a worker)."""
    return sum(rss_kib(p) for p in [pid, *children_of(pid)])


# --- servers -----------------------------------------------------------------------


@dataclass
class ServerSpec:
    """How to start one server with one app on ``port``."""

    name: str
    kind: str  # "pagi" or "asgi"
    extra: list[str] = field(default_factory=list)

    def command(self, app: str, port: int) -> tuple[list[str], Path]:
        """(argv, cwd) for app basename ``app`` (e.g. ``plaintext``)."""
        host = "127.0.0.1"
        if self.kind == "pagi":
            argv = [
                str(PAGI_PY),
                "-m",
                "pagi.server",
                str(APPS / f"pagi_{app}.py"),
                "--host",
                host,
                "--port",
                str(port),
                "--no-access-log",
                "--env",
                "production",
                "--quiet",
                "--log-level",
                "warning",
                "--keepalive-timeout",
                "60",
                *self.extra,
            ]
            return argv, ROOT
        target = f"asgi_{app}:app"
        if self.name.startswith("uvicorn"):
            argv = [
                str(PEER_PY),
                "-m",
                "uvicorn",
                target,
                "--host",
                host,
                "--port",
                str(port),
                "--loop",
                "asyncio",
                "--no-access-log",
                "--log-level",
                "warning",
                "--timeout-keep-alive",
                "60",
                *self.extra,
            ]
        elif self.name.startswith("hypercorn"):
            argv = [
                str(PEER_PY),
                "-m",
                "hypercorn",
                target,
                "--bind",
                f"{host}:{port}",
                "--worker-class",
                "asyncio",
                "--workers",
                "0",  # 0 = serve in this process (1 would add a supervisor process)
                "--keep-alive",
                "60",
                "--log-level",
                "warning",
                *self.extra,
            ]
        elif self.name.startswith("granian"):
            argv = [
                str(PEER_BIN / "granian"),
                "--interface",
                "asgi",
                "--host",
                host,
                "--port",
                str(port),
                "--workers",
                "1",
                "--runtime-threads",
                "1",
                "--loop",
                "asyncio",
                "--no-access-log",
                "--log-level",
                "warning",
                *self.extra,
                target,
            ]
        else:
            raise ValueError(self.name)
        return argv, APPS


class Server:
    """A running server process that we started (and will stop, by pid)."""

    def __init__(self, spec: ServerSpec, app: str, *, log_dir: Path, pin: bool = True) -> None:
        self.spec = spec
        self.port = free_port()
        argv, cwd = spec.command(app, self.port)
        if pin:
            argv = pinned(argv, SERVER_CPU)
        self.log_path = log_dir / f"{spec.name}-{app}.log"
        self._log = self.log_path.open("wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PAGI_ENV": "production"}
        env.pop("VIRTUAL_ENV", None)
        # taskset execs the command, so the pid is the server's own.
        self.proc = subprocess.Popen(
            argv, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )
        self.pid = self.proc.pid

    def wait_ready(self, path: str = "/", timeout: float = 20.0, headers: str = "") -> bytes:
        """Poll until a GET answers; return the raw response (head + body)."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.spec.name} exited early; see {self.log_path}")
            try:
                return http_get(self.port, path, headers=headers)
            except OSError as exc:
                last = exc
                time.sleep(0.1)
        raise RuntimeError(f"{self.spec.name} not ready after {timeout}s ({last})")

    def rss_kib(self) -> int:
        return tree_rss_kib(self.pid)

    def stop(self) -> None:
        """SIGINT the pid we started, then SIGKILL it and its descendants if it lingers."""
        if self.proc.poll() is None:
            kids = children_of(self.pid)
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                for pid in [self.pid, *kids]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
            else:
                for pid in kids:  # a worker the supervisor left behind
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, 0)
                        os.kill(pid, signal.SIGKILL)
        self._log.close()


@contextlib.contextmanager
def running(spec: ServerSpec, app: str, *, log_dir: Path) -> Iterator[Server]:
    server = Server(spec, app, log_dir=log_dir)
    try:
        yield server
    finally:
        server.stop()


def http_get(port: int, path: str = "/", *, headers: str = "", timeout: float = 5.0) -> bytes:
    """One HTTP/1.1 GET with ``connection: close``; the whole raw response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n".encode()
        )
        chunks = []
        while True:
            data = sock.recv(262144)
            if not data:
                break
            chunks.append(data)
    raw = b"".join(chunks)
    if not raw.startswith(b"HTTP/1."):
        raise ConnectionError(f"not an HTTP response: {raw[:80]!r}")
    return raw


def dechunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return bytes(out)


def response_body(raw: bytes) -> tuple[int, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        body = dechunk(body)
    return status, body


def write_results(stem: str, payload: dict[str, object], markdown: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_path = RESULTS / f"{stem}-{stamp}.json"
    json_path.write_text(json.dumps(payload, indent=2))
    (RESULTS / f"{stem}-{stamp}.md").write_text(markdown)
    (RESULTS / f"{stem}-latest.md").write_text(markdown)
    return json_path


def machine_summary() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    version = subprocess.run(
        [str(PEER_PY), "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    pin = f"server on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}" if have_taskset() else "off"
    return f"{os.cpu_count()} CPUs ({cpu}); servers on Python {version}; taskset: {pin}"


# --- interference: CPU used by processes that are not part of the test -----------

_HZ = os.sysconf("SC_CLK_TCK")


def _busy_jiffies() -> int:
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal: process time plus steal. Interrupt
    # and softirq time is left out: on loopback it is mostly our own traffic.
    return sum(fields[:3]) + fields[7]


def _proc_jiffies(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            rest = fh.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])  # utime + stime
    except (OSError, IndexError):
        return 0


class CpuWindow:
    """Measures, over a window, how much CPU went to processes outside the test.

    ``other_cores`` = (all busy CPU time - the server tree - our waited
    children, e.g. wrk - this harness) / wall time, in cores. On a quiet
    machine it is ~0; a value of 0.3 means another process took about a
    third of a core while we measured, and the row is suspect.
    """

    def __init__(self, server_pid: int) -> None:
        import resource

        self._resource = resource
        self._pids = [server_pid, *children_of(server_pid)]
        self._t0 = time.monotonic()
        self._busy0 = _busy_jiffies()
        self._server0 = sum(_proc_jiffies(p) for p in self._pids)
        self._kids0 = self._cpu(resource.RUSAGE_CHILDREN)
        self._self0 = self._cpu(resource.RUSAGE_SELF)

    def _cpu(self, who: int) -> float:
        usage = self._resource.getrusage(who)
        return usage.ru_utime + usage.ru_stime

    def finish(self) -> dict[str, float]:
        wall = time.monotonic() - self._t0
        busy = (_busy_jiffies() - self._busy0) / _HZ
        server = (sum(_proc_jiffies(p) for p in self._pids) - self._server0) / _HZ
        kids = self._cpu(self._resource.RUSAGE_CHILDREN) - self._kids0
        me = self._cpu(self._resource.RUSAGE_SELF) - self._self0
        return {
            "server_cores": server / wall,
            "client_cores": kids / wall,
            "other_cores": max(0.0, busy - server - kids - me) / wall,
        }


def source_state() -> str:
    """The pagi-server code measured: commit, plus a note when packages/ has local edits."""
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "packages"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    changed = len(dirty.splitlines())
    return f"pagi-server at {head or 'unknown'}" + (
        f" with {changed} uncommitted file(s) under packages/" if changed else ""
    )
