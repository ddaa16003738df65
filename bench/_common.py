"""Shared helpers for the side-by-side benchmarks (run_all.py, run_http.py, run_ws.py, ...).

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

Also here, so that no script keeps its own copy: ``wrk`` and ``h2load`` runs
and the parsing of their output, the Node load client (``clients/load.js``),
RSS per idle connection (HTTP keep-alive and WebSocket), Markdown tables and
the results files.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    # Event loop: "asyncio" or "uvloop" (uvicorn --loop, hypercorn --worker-class,
    # granian --loop, pagi-server --loop).
    loop: str = "asyncio"
    # Added to the server's environment (run_http's pagi-compiled sets PYTHONPATH).
    env: dict[str, str] = field(default_factory=dict)

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
                # Always named: the server's own default (auto) picks uvloop when installed.
                "--loop",
                self.loop,
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
                self.loop,
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
                self.loop,
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
                self.loop,
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

    def __init__(
        self,
        spec: ServerSpec,
        app: str,
        *,
        log_dir: Path,
        pin: bool = True,
        command: Callable[[int], tuple[list[str], Path | None]] | None = None,
        env: dict[str, str] | None = None,
        log_name: str | None = None,
    ) -> None:
        """Start ``spec``'s server for ``app`` on a free port, or ``command(port)``'s
        (argv, cwd) instead; ``env`` is added to ours."""
        self.spec = spec
        self.port = free_port()
        argv, cwd = command(self.port) if command is not None else spec.command(app, self.port)
        if pin:
            argv = pinned(argv, SERVER_CPU)
        self.log_path = log_dir / (log_name or f"{spec.name}-{app}.log")
        self._log = self.log_path.open("wb")
        full_env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "PAGI_ENV": "production",
            **spec.env,
            **(env or {}),
        }
        full_env.pop("VIRTUAL_ENV", None)
        # taskset execs the command, so the pid is the server's own.
        self.proc = subprocess.Popen(
            argv, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, env=full_env
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
def running(
    spec: ServerSpec, app: str, *, log_dir: Path, env: dict[str, str] | None = None
) -> Iterator[Server]:
    server = Server(spec, app, log_dir=log_dir, env=env)
    try:
        yield server
    finally:
        server.stop()


def http_get(port: int, path: str = "/", *, headers: str = "", timeout: float = 5.0) -> bytes:
    """One HTTP/1.1 GET with ``connection: close``; the whole raw response."""
    return http_request(port, "GET", path, headers=headers, timeout=timeout)


def http_request(
    port: int,
    method: str,
    path: str = "/",
    body: bytes = b"",
    *,
    headers: str = "",
    timeout: float = 5.0,
) -> bytes:
    """One HTTP/1.1 request with ``connection: close``; the whole raw response."""
    length = f"Content-Length: {len(body)}\r\n" if body or method != "GET" else ""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}{length}Connection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode() + body)
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


def write_results(
    stem: str, payload: dict[str, object], markdown: str, *, latest_json: bool = False
) -> Path:
    """``stem-STAMP.json`` / ``.md`` and ``stem-latest.md`` (and ``stem-latest.json``)."""
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_path = RESULTS / f"{stem}-{stamp}.json"
    text = json.dumps(payload, indent=2)
    json_path.write_text(text)
    (RESULTS / f"{stem}-{stamp}.md").write_text(markdown)
    (RESULTS / f"{stem}-latest.md").write_text(markdown)
    if latest_json:
        (RESULTS / f"{stem}-latest.json").write_text(text)
    return json_path


def machine_info() -> dict[str, object]:
    """CPU model and count, memory, kernel, the servers' Python, CPU pinning."""
    import platform

    cpu = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as fh:
        mem_kib = int(fh.readline().split()[1])
    version = subprocess.run(
        [str(PEER_PY), "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "mem_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": version,
        "taskset": have_taskset(),
        "server_cpu": SERVER_CPU if have_taskset() else None,
        "client_cpu": CLIENT_CPU if have_taskset() else None,
    }


def machine_summary(info: dict[str, object] | None = None) -> str:
    info = info or machine_info()
    pin = f"server on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}" if info["taskset"] else "off"
    return (
        f"{info['cpus']} CPUs ({info['cpu_model']}); servers on Python {info['python']}; "
        f"taskset: {pin}"
    )


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


def git_state() -> dict[str, object]:
    """Full commit, branch and the uncommitted files under packages/ (for results files)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        return done.stdout.strip()

    dirty = git("status", "--porcelain", "--", "packages").splitlines()
    return {
        "commit": git("rev-parse", "HEAD") or None,
        "branch": git("rev-parse", "--abbrev-ref", "HEAD") or None,
        "packages_dirty_files": [line[3:] for line in dirty],
        "summary": source_state(),
    }


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's open-file soft limit (servers and clients we start inherit it)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


# --- wrk and h2load ----------------------------------------------------------------


def parse_duration(text: str) -> float:
    """wrk or h2load time ('812.00us', '812us', '1.23ms', '2.01s', '1.00m') in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_size(text: str) -> float:
    """wrk 'Transfer/sec' value ('1.23MB') in MiB."""
    match = re.fullmatch(r"([\d.]+)([KMGT]?B)", text)
    if match is None:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"B": 2**-20, "KB": 2**-10, "MB": 1.0, "GB": 1024.0, "TB": 2**20}[unit]


def parse_wrk(output: str) -> dict[str, float]:
    """req/s, MiB/s, p50/p99 (ms, with --latency), requests, non-2xx and socket errors."""
    result: dict[str, float] = {}
    for line in output.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            result["rps"] = float(parts[1])
        elif line.startswith("Transfer/sec:"):
            result["mib_s"] = parse_size(parts[1])
        elif len(parts) == 2 and parts[0] in ("50%", "99%"):
            result["p" + parts[0].rstrip("%")] = parse_duration(parts[1])
        elif "requests in" in line:
            result["requests"] = float(parts[0])
        elif line.strip().startswith("Non-2xx"):
            result["non2xx"] = float(parts[-1])
        elif line.strip().startswith("Socket errors"):
            nums = [int(n) for n in re.findall(r"\d+", line)]
            result["socket_errors"] = float(sum(nums))
    return result


def run_wrk(
    port: int,
    path: str = "/",
    *,
    connections: int,
    seconds: int,
    headers: dict[str, str] | None = None,
    script: Path | None = None,
    host: str = "127.0.0.1",
) -> dict[str, float]:
    """``wrk -t1 -cN -dS --latency`` on the client CPU; the parsed output."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    if script is not None:
        cmd += ["-s", str(script)]
    cmd.append(f"http://{host}:{port}{path}")
    out = subprocess.run(
        pinned(cmd, CLIENT_CPU), capture_output=True, text=True, timeout=seconds + 30
    )
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed: {(out.stderr or out.stdout).strip()[:300]}")
    return parse_wrk(out.stdout)


def parse_h2load(output: str) -> dict[str, float]:
    result: dict[str, float] = {}
    for line in output.splitlines():
        parts = line.split()
        if line.startswith("finished in"):
            result["rps"] = float(parts[3])
        elif line.startswith("requests:"):
            result["requests"] = float(parts[1])
            result["succeeded"] = float(parts[7])
            result["failed"] = float(parts[9]) + float(parts[11]) + float(parts[13])
        elif line.startswith("status codes:"):
            result["non2xx"] = sum(float(parts[i]) for i in (4, 6, 8))
        elif line.startswith("time for request:"):
            result["min_ms"] = parse_duration(parts[3])
            result["max_ms"] = parse_duration(parts[4])
            result["mean_ms"] = parse_duration(parts[5])
            result["sd_ms"] = parse_duration(parts[6])
    return result


def h2load(port: int, *options: str, timeout: float = 60) -> dict[str, float]:
    """``h2load OPTIONS http://127.0.0.1:PORT/`` on the client CPU; the parsed output."""
    cmd = pinned(["h2load", *options, f"http://127.0.0.1:{port}/"], CLIENT_CPU)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"h2load failed: {(out.stderr or out.stdout).strip()[:300]}")
    return parse_h2load(out.stdout)


# --- the Node load client (WebSocket echo, SSE, idle WebSockets) ---------------------

LOAD_JS = BENCH / "clients" / "load.js"


def check_node_client() -> None:
    require_tool("node", "sudo apt-get install -y nodejs (Node 18+)")
    if not (BENCH / "node_modules" / "ws").is_dir():
        die("bench/node_modules/ws is missing: run `bash bench/setup.sh`")


def node_client(args: list[str], timeout: float) -> dict[str, float]:
    """Run ``node clients/load.js ARGS`` on the client CPU; its JSON result line."""
    cmd = pinned(["node", str(LOAD_JS), *args], CLIENT_CPU)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(
            f"load client printed nothing (rc {out.returncode}): {out.stderr[-300:]}"
        )
    result = json.loads(lines[-1])
    if "error" in result:
        raise RuntimeError(f"load client: {result['error']}")
    if result.get("mode") == "sse" and not result.get("streams"):
        raise RuntimeError(f"no event stream started; answers other than 200: {result['refused']}")
    return result


# --- memory per idle connection ------------------------------------------------------

KEEPALIVE_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def read_one_response(sock: socket.socket) -> None:
    """Read one content-length response (the plaintext app) off a keep-alive socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(4096)
        if not data:
            raise ConnectionError("closed before the response head")
        buf += data
    head, _, body = buf.partition(b"\r\n\r\n")
    match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    length = int(match.group(1)) if match else 0
    while len(body) < length:
        data = sock.recv(4096)
        if not data:
            raise ConnectionError("closed mid-body")
        body += data


def idle_http_memory(server: Server, count: int) -> dict[str, float]:
    """RSS growth per idle keep-alive connection (each made one GET / first).

    ``server`` runs the plaintext app and answered already. Raise the fd limit
    (:func:`raise_fd_limit`) before starting the server for counts near 1,000+.
    """
    # Warm the server's code paths on short-lived connections first.
    for _ in range(3):
        warm = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(20)]
        for sock in warm:
            sock.sendall(KEEPALIVE_REQUEST)
        for sock in warm:
            read_one_response(sock)
            sock.close()
    time.sleep(0.5)
    before = server.rss_kib()
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            socks.append(sock)
            sock.sendall(KEEPALIVE_REQUEST)
            read_one_response(sock)
        time.sleep(1.0)
        after = server.rss_kib()
        alive = 0
        for sock in socks:  # still open? (a server may have closed idle ones)
            sock.setblocking(False)
            try:
                alive += sock.recv(1) != b""
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
    finally:
        for sock in socks:
            sock.close()
    return {
        "rss_before_kib": before,
        "rss_after_kib": after,
        "per_conn_kib": (after - before) / count,
        "alive": alive,
    }


def idle_ws_memory(server: Server, count: int, deflate: bool) -> dict[str, float]:
    """RSS growth per idle WebSocket (each made one echo), with the client's deflate offer."""
    time.sleep(0.3)
    before = server.rss_kib()
    cmd = pinned(
        ["node", str(LOAD_JS), "idle", f"ws://127.0.0.1:{server.port}/ws", str(count)]
        + (["deflate"] if deflate else []),
        CLIENT_CPU,
    )
    client = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert client.stdout is not None
        line = client.stdout.readline()
        if not line.startswith("{"):
            raise RuntimeError(
                f"idle client died: {client.stderr.read()[-300:] if client.stderr else ''}"
            )
        info = json.loads(line)
        if "error" in info:
            raise RuntimeError(f"idle client: {info['error']}")
        time.sleep(1.0)
        after = server.rss_kib()
    finally:
        if client.stdin is not None:
            client.stdin.close()  # the client closes its sockets and exits
        try:
            client.wait(timeout=10)
        except subprocess.TimeoutExpired:
            client.kill()  # by the Popen we hold
            client.wait()
    return {
        "rss_before_kib": before,
        "rss_after_kib": after,
        "per_conn_kib": (after - before) / count,
        "deflate_negotiated": info.get("deflate", 0),
    }


# --- rounds and tables ---------------------------------------------------------------


def best_of(results: list[dict[str, float]], key: str = "rps") -> dict[str, Any]:
    """The round with the highest ``key``, with ``rounds``, ``{key}_all`` (every round)
    and ``spread`` (how far the worst round fell below the best, as a fraction)."""
    best = max(results, key=lambda r: r[key])
    top = best[key]
    return {
        **best,
        "rounds": len(results),
        f"{key}_all": [r[key] for r in results],
        "spread": (top - min(r[key] for r in results)) / top if top else 0.0,
    }


def fmt_ratio(value: float | None, base: float | None) -> str:
    """``value / base`` as ``1.23x``, or ``n/a`` when either is missing or NaN."""
    if value is None or not base or value != value or base != base:
        return "n/a"
    return f"{value / base:.2f}x"


def md_table(header: Sequence[str], rows: Sequence[Sequence[object]], align: str = "") -> list[str]:
    """Markdown table lines; ``align`` has one letter per column, ``l`` or ``r`` (default:
    the first column left, the others right)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    for row in rows:
        cells = [str(c) for c in row] + [""] * (len(header) - len(row))
        lines.append("| " + " | ".join(cells) + " |")
    return lines
