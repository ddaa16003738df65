"""A mixed soak against pagi-server: memory and descriptors stay flat (issue 15, item 3).

Not part of the test suite. Run from the repo root::

    uv run python bench/soak.py                     # 30 min, the first 3 of them warm-up
    uv run python bench/soak.py --minutes 3 --warmup-minutes 1

The script starts ``.venv/bin/python -m pagi.server pagi_soak:app`` (the app
is ``bench/apps/pagi_soak.py``) on a free loopback port, one worker unless
``--workers N``, and drives it from one asyncio event loop with a few
clients per kind of traffic, each pausing between operations so the load
stays moderate (a soak is about stability, not throughput):

* ``keepalive``: HTTP/1.1 connections making 20-80 GETs each; one in five
  then idles past the server's keep-alive timeout and must see the server
  close it;
* ``upload``: POST bodies of 64 KiB-1 MiB (content-length or chunked, random
  bytes) whose length and CRC-32 the app sends back;
* ``websocket``: sessions (half of them offering permessage-deflate) that
  exchange 5-40 text/binary messages of 1 B-64 KiB, check the echoes and close
  with a close handshake;
* ``sse``: streams read for 5-30 events then left, or a finite stream read to
  its end; event ids must be consecutive;
* ``slow``: a request head and a 16 KiB body trickled in small pieces, or a
  0.5-2 MiB response read 8 KiB at a time through an 8 KiB receive buffer;
* ``abort``: connections dropped (FIN or RST, alternately) mid-head, mid-body,
  right after the request, mid-response, mid-WebSocket and mid-SSE.

Every operation is checked (status, lengths, CRCs, echoes, event ids). An
unexpected outcome is counted as an error of its kind with its message; the
drops the ``abort`` client causes on purpose are counted apart as expected.

Every ``--sample-seconds`` the server's RSS (``VmRSS``, the server process
plus its children) and open descriptors (``/proc/PID/fd``) are sampled. At
the end the load stops, the clients' connections close, and the script waits
(up to 60 s) for the descriptors to come back.

Criteria (the exit status is 1 if any fails):

* descriptors after the load are at most the baseline (measured after
  startup and one request) plus ``--fd-allowance`` (2);
* RSS over the samples taken after the warm-up: max/min at most
  ``1 + --rss-tolerance`` (5%); the least-squares slope is reported too;
* no unexpected error of any kind, the server still answers after the load,
  no ERROR/CRITICAL line or traceback in its log, and it exits 0 on SIGTERM.

``--minutes`` is the whole load, warm-up included. The report goes to
``bench/results/soak-latest.{json,md}`` (and timestamped copies), the
server's log to ``bench/results/logs/``. Only the server this script
starts is signalled, by its pid.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import shlex
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
APPS = BENCH / "apps"
RESULTS = BENCH / "results"
PYTHON = ROOT / ".venv" / "bin" / "python"

KEEPALIVE_TIMEOUT = 5.0  # passed to the server; the keepalive client idles past it
OP_TIMEOUT = 60.0  # any single operation taking longer is an error
SETTLE_TIMEOUT = 60.0
PATTERN = bytes(range(256)) * 256  # what /big sends, repeated
MAX_ERROR_SAMPLES = 20


# --- bookkeeping --------------------------------------------------------------------------
class Expected(Exception):
    """An operation ended the way it was meant to end early (a drop we caused)."""


@dataclass
class Kind:
    ops: int = 0
    ok: int = 0
    expected: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: list[tuple[float, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ops": self.ops,
            "ok": self.ok,
            "expected": dict(self.expected),
            "expected_total": sum(self.expected.values()),
            "errors": dict(self.errors),
            "errors_total": sum(self.errors.values()),
            "error_samples": self.error_samples,
        }


@dataclass
class Sample:
    t: float  # seconds since the load started
    phase: str  # warmup, load, settle
    rss_kib: int
    fds: int
    processes: int
    server_cpu_s: float
    client_cpu_s: float
    ops: int

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


# --- /proc ---------------------------------------------------------------------------------
def tree(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(entry)] = int(fields[1])
    found = [pid]
    for candidate in found:
        found.extend(p for p, parent in parents.items() if parent == candidate)
    return found


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- a minimal HTTP/1.1 client --------------------------------------------------------------
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def open_conn(port: int, rcvbuf: int | None = None) -> Conn:
    if rcvbuf is None:
        return await asyncio.open_connection("127.0.0.1", port)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: the window
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock, limit=rcvbuf)


async def close_conn(writer: asyncio.StreamWriter, *, reset: bool = False) -> None:
    """FIN (waiting for the close), or RST when ``reset`` (SO_LINGER 0, then abort)."""
    if reset:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        return
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


def request_head(method: str, path: str, headers: Sequence[tuple[str, str]] = ()) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    raw = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = raw[:-4].decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ValueError(f"bad status line {status_line!r}")
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def read_chunk(reader: asyncio.StreamReader) -> bytes:
    """One chunk of a chunked body; ``b""`` for the last one (its CRLF consumed too)."""
    size_line = await reader.readuntil(b"\r\n")
    size = int(size_line.split(b";")[0], 16)
    data = await reader.readexactly(size + 2)
    if data[-2:] != b"\r\n":
        raise ValueError("chunk not followed by CRLF")
    return data[:-2]


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while chunk := await read_chunk(reader):
            parts.append(chunk)
        return b"".join(parts)
    raise ValueError(f"response without framing: {headers}")


async def roundtrip(conn: Conn, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    reader, writer = conn
    writer.write(head + body)
    await writer.drain()
    status, headers = await read_head(reader)
    return status, await read_body(reader, headers)


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def pattern_crc(size: int) -> int:
    whole, rest = divmod(size, len(PATTERN))
    crc = 0
    for _ in range(whole):
        crc = zlib.crc32(PATTERN, crc)
    return zlib.crc32(PATTERN[:rest], crc)


# --- the load ---------------------------------------------------------------------------------
class Load:
    def __init__(self, port: int, rng: random.Random) -> None:
        self.port = port
        self.rng = rng
        self.kinds: dict[str, Kind] = {
            name: Kind() for name in ("keepalive", "upload", "websocket", "sse", "slow", "abort")
        }
        self.stopping = asyncio.Event()
        self.started = time.monotonic()
        self._abort_turn = 0

    # keepalive ------------------------------------------------------------------------
    async def keepalive(self) -> None:
        reader, writer = conn = await open_conn(self.port)
        try:
            for _ in range(self.rng.randint(20, 80)):
                status, body = await roundtrip(conn, request_head("GET", "/"))
                expect(status == 200 and body.startswith(b"ok "), f"GET / -> {status} {body!r}")
                await asyncio.sleep(self.rng.uniform(0, 0.02))
            if self.rng.random() < 0.2:
                # Idle past the keep-alive timeout: the server must close its end.
                await asyncio.sleep(KEEPALIVE_TIMEOUT + 1.5)
                rest = await asyncio.wait_for(reader.read(1), 5)
                expect(rest == b"", f"idle connection not closed by the server ({rest!r})")
                self.kinds["keepalive"].expected["closed by the server when idle"] += 1
        finally:
            await close_conn(writer)

    # upload -----------------------------------------------------------------------------
    async def upload(self) -> None:
        reader, writer = conn = await open_conn(self.port)
        try:
            for _ in range(self.rng.randint(1, 4)):
                size = self.rng.randint(64 * 1024, 1024 * 1024)
                data = self.rng.randbytes(size)
                want = f"{size} {zlib.crc32(data)}".encode()
                if self.rng.random() < 0.5:
                    head = request_head("POST", "/upload", [("content-length", str(size))])
                    status, body = await roundtrip(conn, head, data)
                else:
                    writer.write(
                        request_head("POST", "/upload", [("transfer-encoding", "chunked")])
                    )
                    offset = 0
                    while offset < size:
                        piece = data[offset : offset + self.rng.randint(8 * 1024, 64 * 1024)]
                        offset += len(piece)
                        writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
                        await writer.drain()
                    writer.write(b"0\r\n\r\n")
                    await writer.drain()
                    status, headers = await read_head(reader)
                    body = await read_body(reader, headers)
                expect(status == 200 and body == want, f"upload {size} -> {status} {body!r}")
        finally:
            await close_conn(writer)

    # websocket ------------------------------------------------------------------------
    def _ws(self, compress: bool) -> Any:
        return connect(
            f"ws://127.0.0.1:{self.port}/ws",
            compression="deflate" if compress else None,
            max_size=1 << 20,
            open_timeout=10,
            close_timeout=10,
            ping_interval=None,
        )

    async def _ws_exchange(self, ws: ClientConnection, count: int) -> None:
        for _ in range(count):
            size = self.rng.choice((1, 16, 100, 1000, 4096, 65536))
            message: str | bytes
            if self.rng.random() < 0.5:
                message = "".join(self.rng.choices("abcdefghé€", k=size))
            else:
                message = self.rng.randbytes(size)
            await ws.send(message)
            echo = await ws.recv()
            expect(echo == message, f"WebSocket echo differs ({type(message).__name__} {size})")

    async def websocket(self) -> None:
        async with self._ws(self.rng.random() < 0.5) as ws:
            await self._ws_exchange(ws, self.rng.randint(5, 40))
        expect(ws.close_code == 1000, f"WebSocket closed with {ws.close_code}")

    # sse ------------------------------------------------------------------------------------
    async def _sse_open(self, query: str) -> Conn:
        reader, writer = conn = await open_conn(self.port)
        try:
            writer.write(request_head("GET", f"/sse?{query}", [("accept", "text/event-stream")]))
            status, headers = await read_head(reader)
            expect(status == 200, f"SSE -> {status}")
            expect(
                headers.get("content-type", "").startswith("text/event-stream"),
                f"SSE content-type {headers.get('content-type')!r}",
            )
            expect(headers.get("transfer-encoding") == "chunked", "SSE not chunked")
        except BaseException:
            await close_conn(writer, reset=True)
            raise
        return conn

    async def _sse_events(self, reader: asyncio.StreamReader, want: int | None) -> int:
        """Read events until ``want`` of them (None: to the end of the stream); their count."""
        buffer = b""
        seen = 0
        while want is None or seen < want:
            chunk = await read_chunk(reader)
            if not chunk:
                expect(want is None, f"SSE stream ended after {seen} events")
                expect(buffer == b"", f"SSE stream ended mid-event {buffer!r}")
                break
            buffer += chunk
            *blocks, buffer = buffer.split(b"\n\n")
            for block in blocks:
                if block.startswith(b":"):
                    continue  # a comment
                seen += 1
                expect(block == b"id: %d\ndata: event %d" % (seen, seen), f"SSE event {block!r}")
        return seen

    async def sse(self) -> None:
        finite = self.rng.random() < 0.3
        count = self.rng.randint(5, 30)
        reader, writer = await self._sse_open(f"n={count if finite else 0}&ms=10")
        try:
            got = await self._sse_events(reader, None if finite else count)
            expect(got == count, f"SSE: {got} events of {count}")
            if finite:
                rest = await asyncio.wait_for(reader.read(1), 5)
                expect(rest == b"", "connection still open after the SSE stream ended")
        finally:
            await close_conn(writer)

    # slow ----------------------------------------------------------------------------------
    async def slow(self) -> None:
        if self.rng.random() < 0.5:
            await self._slow_upload()
        else:
            await self._slow_read()

    async def _slow_upload(self) -> None:
        reader, writer = await open_conn(self.port)
        try:
            size = 16 * 1024
            data = self.rng.randbytes(size)
            head = request_head("POST", "/upload", [("content-length", str(size))])
            for byte in range(len(head)):
                writer.write(head[byte : byte + 1])
                await writer.drain()
                await asyncio.sleep(0.004)
            for offset in range(0, size, 512):
                writer.write(data[offset : offset + 512])
                await writer.drain()
                await asyncio.sleep(0.01)
            status, headers = await read_head(reader)
            body = await read_body(reader, headers)
            want = f"{size} {zlib.crc32(data)}".encode()
            expect(status == 200 and body == want, f"slow upload -> {status} {body!r}")
        finally:
            await close_conn(writer)

    async def _slow_read(self) -> None:
        kib = self.rng.randint(512, 2048)
        reader, writer = await open_conn(self.port, rcvbuf=8192)
        try:
            writer.write(request_head("GET", f"/big?kib={kib}"))
            await writer.drain()
            status, headers = await read_head(reader)
            expect(status == 200, f"slow read -> {status}")
            left = int(headers["content-length"])
            expect(left == kib * 1024, f"slow read: content-length {left}")
            crc = 0
            while left:
                piece = await reader.read(min(8192, left))
                expect(piece != b"", f"slow read: EOF with {left} bytes to go")
                crc = zlib.crc32(piece, crc)
                left -= len(piece)
                await asyncio.sleep(0.005)
            expect(crc == pattern_crc(kib * 1024), "slow read: body differs")
        finally:
            await close_conn(writer)

    # abort ----------------------------------------------------------------------------------
    async def abort(self) -> None:
        cases: list[tuple[str, Callable[[bool], Awaitable[None]]]] = [
            ("mid-head", self._abort_mid_head),
            ("mid-body", self._abort_mid_body),
            ("after the request", self._abort_after_request),
            ("mid-response", self._abort_mid_response),
            ("mid-WebSocket", self._abort_mid_websocket),
            ("mid-SSE", self._abort_mid_sse),
        ]
        self._abort_turn += 1
        name, case = cases[self._abort_turn % len(cases)]
        reset = (self._abort_turn // len(cases)) % 2 == 1
        await case(reset)
        raise Expected(f"{name} ({'RST' if reset else 'FIN'})")

    async def _abort_mid_head(self, reset: bool) -> None:
        _, writer = await open_conn(self.port)
        writer.write(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nx-padding: aaaa")
        await writer.drain()
        await asyncio.sleep(0.02)
        await close_conn(writer, reset=reset)

    async def _abort_mid_body(self, reset: bool) -> None:
        _, writer = await open_conn(self.port)
        writer.write(request_head("POST", "/upload", [("content-length", str(1 << 20))]))
        writer.write(self.rng.randbytes(100 * 1024))
        await writer.drain()
        await asyncio.sleep(0.02)
        await close_conn(writer, reset=reset)

    async def _abort_after_request(self, reset: bool) -> None:
        _, writer = await open_conn(self.port)
        writer.write(request_head("GET", "/big?kib=4096"))
        await writer.drain()
        await close_conn(writer, reset=reset)

    async def _abort_mid_response(self, reset: bool) -> None:
        reader, writer = await open_conn(self.port)
        try:
            writer.write(request_head("GET", "/big?kib=4096"))
            await writer.drain()
            status, _ = await read_head(reader)
            expect(status == 200, f"GET /big -> {status}")
            await reader.readexactly(64 * 1024)
        finally:
            await close_conn(writer, reset=reset)

    async def _abort_mid_websocket(self, reset: bool) -> None:
        ws = await self._ws(self.rng.random() < 0.5)
        try:
            await self._ws_exchange(ws, 3)
            await ws.send(self.rng.randbytes(1000))  # its echo is never read
        finally:
            transport = ws.transport
            sock = transport.get_extra_info("socket")
            if reset and sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if reset:
                transport.abort()
            else:
                transport.close()  # a FIN without a Close frame
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.wait_closed(), 5)

    async def _abort_mid_sse(self, reset: bool) -> None:
        reader, writer = await self._sse_open("n=0&ms=10")
        try:
            await self._sse_events(reader, 3)
        finally:
            await close_conn(writer, reset=reset)

    # running ------------------------------------------------------------------------------
    async def actor(self, name: str, pause: tuple[float, float]) -> None:
        operation: Callable[[], Awaitable[None]] = getattr(self, name)
        kind = self.kinds[name]
        while not self.stopping.is_set():
            kind.ops += 1
            try:
                await asyncio.wait_for(operation(), OP_TIMEOUT)
            except Expected as exc:
                kind.expected[str(exc)] += 1
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}"[:200]
                kind.errors[message] += 1
                if len(kind.error_samples) < MAX_ERROR_SAMPLES:
                    kind.error_samples.append((round(time.monotonic() - self.started, 1), message))
            else:
                kind.ok += 1
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.rng.uniform(*pause))

    def total_ops(self) -> int:
        return sum(k.ops for k in self.kinds.values())


#: Clients per kind and the pause range between their operations (seconds).
ACTORS: list[tuple[str, int, tuple[float, float]]] = [
    ("keepalive", 4, (0.05, 0.2)),
    ("upload", 2, (0.2, 0.5)),
    ("websocket", 2, (0.1, 0.3)),
    ("sse", 2, (0.1, 0.3)),
    ("slow", 2, (0.2, 0.5)),
    ("abort", 2, (0.1, 0.3)),
]


# --- the server -----------------------------------------------------------------------------
class Server:
    def __init__(
        self, port: int, workers: int, loop: str, log_path: Path, env: dict[str, str]
    ) -> None:
        self.port = port
        self.command = [
            str(PYTHON),
            *("-m", "pagi.server", "pagi_soak:app", "--app-dir", str(APPS)),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)),
            *("--loop", loop, "--no-access-log", "-E", "production"),
            *("--keepalive-timeout", str(KEEPALIVE_TIMEOUT), "--shutdown-timeout", "10"),
        ]
        self.log_path = log_path
        self._log = open(log_path, "wb")  # closed in stop()
        self.env = env
        self.proc = subprocess.Popen(
            self.command,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
        self.pid = self.proc.pid

    def pids(self) -> list[int]:
        return tree(self.pid)

    def rss_kib(self) -> int:
        return sum(rss_kib(pid) for pid in self.pids())

    def fds(self) -> int:
        return sum(fd_count(pid) for pid in self.pids())

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL of the pid and its children after 20 s; the exit status."""
        code: int | None = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(20)
            except subprocess.TimeoutExpired:
                for pid in reversed(self.pids()):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.proc.wait()
        else:
            code = self.proc.returncode
        self._log.close()
        return code

    def log_problems(self) -> dict[str, Any]:
        text = self.log_path.read_text(errors="replace").splitlines()
        bad = [line for line in text if " ERROR " in line or " CRITICAL " in line]
        return {
            "error_lines": len(bad),
            "tracebacks": sum(1 for line in text if "Traceback (most recent call last)" in line),
            "warning_lines": sum(1 for line in text if " WARNING " in line),
            "first_errors": bad[:10],
        }


async def probe(port: int) -> bool:
    try:
        conn = await asyncio.wait_for(open_conn(port), 2)
    except (OSError, asyncio.TimeoutError):
        return False
    try:
        status, body = await asyncio.wait_for(roundtrip(conn, request_head("GET", "/")), 5)
        return status == 200 and body.startswith(b"ok ")
    except (OSError, asyncio.TimeoutError, ValueError, asyncio.IncompleteReadError):
        return False
    finally:
        await close_conn(conn[1])


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(seconds, value)`` points, per minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 60


# --- the run ----------------------------------------------------------------------------------
async def soak(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while not await probe(server.port):
        if server.proc.poll() is not None:
            code = server.proc.returncode
            raise SystemExit(f"the server exited with {code}: see {server.log_path}")
        if time.monotonic() > deadline:
            raise SystemExit(f"the server did not answer within 20 s: see {server.log_path}")
        await asyncio.sleep(0.2)
    await asyncio.sleep(1)  # the probe's connection closes on the server too
    baseline_fds = server.fds()
    start_rss = server.rss_kib()
    print(
        f"server pid {server.pid} on port {server.port}: RSS {start_rss} KiB, {baseline_fds} fds",
        flush=True,
    )

    load = Load(server.port, random.Random(args.seed))
    samples: list[Sample] = []
    total = args.minutes * 60
    warmup = args.warmup_minutes * 60
    cpu0_server, cpu0_client = server.cpu(), client_cpu()

    def sample(phase: str) -> Sample:
        s = Sample(
            t=round(time.monotonic() - load.started, 1),
            phase=phase,
            rss_kib=server.rss_kib(),
            fds=server.fds(),
            processes=len(server.pids()),
            server_cpu_s=round(server.cpu() - cpu0_server, 2),
            client_cpu_s=round(client_cpu() - cpu0_client, 2),
            ops=load.total_ops(),
        )
        samples.append(s)
        return s

    actors = [
        asyncio.create_task(load.actor(name, pause))
        for name, count, pause in ACTORS
        for _ in range(count * args.scale)
    ]
    next_sample = load.started
    while True:
        now = time.monotonic()
        elapsed = now - load.started
        if elapsed >= total:
            break
        if now >= next_sample:
            s = sample("warmup" if elapsed < warmup else "load")
            errors = sum(sum(k.errors.values()) for k in load.kinds.values())
            print(
                f"{s.t:7.0f}s {s.phase:6} RSS {s.rss_kib:7d} KiB  fds {s.fds:4d}  ops {s.ops:7d}"
                f"  errors {errors}  CPU server {s.server_cpu_s:.0f}s client {s.client_cpu_s:.0f}s",
                flush=True,
            )
            next_sample += args.sample_seconds
        if server.proc.poll() is not None:
            print(f"the server exited with {server.proc.returncode}", flush=True)
            break
        await asyncio.sleep(min(1.0, max(0.0, next_sample - time.monotonic())))
    load_end = sample("load")
    load_seconds = load_end.t

    # Stop: every client finishes its operation and closes its connections.
    load.stopping.set()
    _, pending = await asyncio.wait(actors, timeout=OP_TIMEOUT + 10)
    for task in pending:
        task.cancel()
    stuck = len(pending)
    alive_after = server.proc.poll() is None and await probe(server.port)

    settle_started = time.monotonic()
    while time.monotonic() - settle_started < SETTLE_TIMEOUT:
        if server.fds() <= baseline_fds + args.fd_allowance:
            break
        await asyncio.sleep(0.5)
    settle_seconds = round(time.monotonic() - settle_started, 1)
    await asyncio.sleep(1)
    final = sample("settle")

    measured = [s for s in samples if s.phase == "load" and s.t >= warmup]
    rss_values: list[int] = [s.rss_kib for s in measured]
    after_warmup = measured[0].rss_kib if measured else None
    low = min(rss_values, default=0)
    high = max(rss_values, default=0)
    ratio = high / low if low else None
    slope = slope_per_minute([(s.t, s.rss_kib) for s in measured])
    kinds = {name: kind.as_dict() for name, kind in load.kinds.items()}
    unexpected = sum(k["errors_total"] for k in kinds.values())
    return {
        "baseline_fds": baseline_fds,
        "start_rss_kib": start_rss,
        "after_warmup_rss_kib": after_warmup,
        "end_of_load_rss_kib": load_end.rss_kib,
        "final_rss_kib": final.rss_kib,
        "rss_min_kib": low or None,
        "rss_max_kib": high or None,
        "rss_max_min_ratio": round(ratio, 4) if ratio else None,
        "rss_slope_kib_per_min": round(slope, 2),
        "measured_samples": len(measured),
        "end_of_load_fds": load_end.fds,
        "max_fds": max(s.fds for s in samples),
        "final_fds": final.fds,
        "settle_seconds": settle_seconds,
        "load_seconds": load_seconds,
        "server_cpu_pct": round(100 * load_end.server_cpu_s / load_seconds, 1),
        "client_cpu_pct": round(100 * load_end.client_cpu_s / load_seconds, 1),
        "clients_stuck_at_stop": stuck,
        "alive_after_load": alive_after,
        "kinds": kinds,
        "unexpected_errors": unexpected,
        "samples": [s.as_dict() for s in samples],
    }


def source_state() -> str:
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return result.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", "packages/pagi-server")
    return f"{commit}{' + uncommitted edits in packages/pagi-server' if dirty else ''}"


def markdown(report: dict[str, Any]) -> str:
    r = report["results"]
    lines = [
        f"# pagi-server soak ({report['started']})",
        "",
        f"`{report['command']}`",
        "",
        f"Server: `{report['server_command']}`"
        + "".join(f" {name}={value}" for name, value in report["server_env"].items())
        + f" (code: {report['source']}); "
        f"{report['cpus']} CPUs. Load {r['load_seconds'] / 60:.1f} min, the first "
        f"{report['options']['warmup_minutes']} min warm-up; server CPU "
        f"{r['server_cpu_pct']}% of a core, client CPU {r['client_cpu_pct']}%.",
        "",
        "## Criteria",
        "",
        "| criterion | value | limit | pass |",
        "| --- | --- | --- | --- |",
    ]
    for c in report["criteria"]:
        verdict = "yes" if c["ok"] else "**NO**"
        lines.append(f"| {c['name']} | {c['value']} | {c['limit']} | {verdict} |")
    lines += [
        "",
        "## Memory and descriptors",
        "",
        "| | RSS (KiB) | fds |",
        "| --- | --- | --- |",
        f"| after startup (baseline) | {r['start_rss_kib']} | {r['baseline_fds']} |",
        f"| first sample after warm-up | {r['after_warmup_rss_kib']} | |",
        f"| min / max after warm-up | {r['rss_min_kib']} / {r['rss_max_kib']} |"
        f" max {r['max_fds']} |",
        f"| end of load | {r['end_of_load_rss_kib']} | {r['end_of_load_fds']} |",
        f"| after the clients left ({r['settle_seconds']} s) | {r['final_rss_kib']} |"
        f" {r['final_fds']} |",
        "",
        f"RSS max/min after warm-up: **{r['rss_max_min_ratio']}** over {r['measured_samples']} "
        f"samples; least-squares slope **{r['rss_slope_kib_per_min']} KiB/min**.",
        "",
        "## Operations",
        "",
        "| kind | ops | ok | expected drops | unexpected errors |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, k in r["kinds"].items():
        expected = ", ".join(f"{label}: {n}" for label, n in sorted(k["expected"].items()))
        errors = "; ".join(f"{msg}: {n}" for msg, n in k["errors"].items()) or "0"
        lines.append(f"| {name} | {k['ops']} | {k['ok']} | {expected or '-'} | {errors} |")
    log = report["server_log"]
    lines += [
        "",
        f"Server log ({report['server_log_path']}): {log['error_lines']} ERROR/CRITICAL lines, "
        f"{log['tracebacks']} tracebacks, {log['warning_lines']} warnings; exit status "
        f"{report['server_exit']} on SIGTERM.",
        "",
        "## Samples (one a minute)",
        "",
        "| t (s) | phase | RSS (KiB) | fds | ops |",
        "| --- | --- | --- | --- | --- |",
    ]
    last_minute = -1
    for s in r["samples"]:
        minute = int(s["t"] // 60)
        if minute != last_minute or s["phase"] == "settle":
            last_minute = minute
            lines.append(f"| {s['t']} | {s['phase']} | {s['rss_kib']} | {s['fds']} | {s['ops']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30, help="load, warm-up included")
    parser.add_argument("--warmup-minutes", type=float, default=3)
    parser.add_argument("--sample-seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--loop", choices=("asyncio", "uvloop", "trio"), default="asyncio")
    parser.add_argument("--scale", type=int, default=1, help="clients per kind, multiplied")
    parser.add_argument("--rss-tolerance", type=float, default=0.05)
    parser.add_argument("--fd-allowance", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the server (e.g. MALLOC_ARENA_MAX=2); repeatable",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the report")
    args = parser.parse_args()
    if args.warmup_minutes >= args.minutes:
        parser.error("--warmup-minutes must be shorter than --minutes")
    if not PYTHON.exists():
        parser.error(f"{PYTHON} is missing: run `uv sync` first")

    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    log_path = args.out / "logs" / f"soak-{stamp}.log"
    env = dict(item.split("=", 1) for item in args.server_env)
    source = source_state()  # what the server runs, before anyone commits meanwhile
    server = Server(free_port(), args.workers, args.loop, log_path, env)
    try:
        results = asyncio.run(soak(args, server))
    finally:
        exit_status = server.stop()

    criteria = [
        {
            "name": "fds after the load <= baseline + allowance",
            "value": results["final_fds"],
            "limit": results["baseline_fds"] + args.fd_allowance,
            "ok": results["final_fds"] <= results["baseline_fds"] + args.fd_allowance,
        },
        {
            "name": "RSS max/min after warm-up",
            "value": results["rss_max_min_ratio"],
            "limit": round(1 + args.rss_tolerance, 4),
            "ok": results["rss_max_min_ratio"] is not None
            and results["rss_max_min_ratio"] <= 1 + args.rss_tolerance,
        },
        {
            "name": "unexpected errors",
            "value": results["unexpected_errors"],
            "limit": 0,
            "ok": results["unexpected_errors"] == 0,
        },
        {
            "name": "server answers after the load",
            "value": results["alive_after_load"],
            "limit": True,
            "ok": results["alive_after_load"],
        },
        {
            "name": "clients stuck at the end",
            "value": results["clients_stuck_at_stop"],
            "limit": 0,
            "ok": results["clients_stuck_at_stop"] == 0,
        },
    ]
    log = server.log_problems()
    criteria += [
        {
            "name": "ERROR lines + tracebacks in the server log",
            "value": log["error_lines"] + log["tracebacks"],
            "limit": 0,
            "ok": log["error_lines"] + log["tracebacks"] == 0,
        },
        {
            "name": "exit status on SIGTERM",
            "value": exit_status,
            "limit": 0,
            "ok": exit_status == 0,
        },
    ]
    report = {
        "started": stamp,
        "command": "uv run python bench/soak.py " + shlex.join(sys.argv[1:]),
        "server_env": server.env,
        "server_command": shlex.join(
            [os.path.relpath(server.command[0], ROOT), *server.command[1:]]
        ).replace(str(ROOT) + "/", ""),
        "source": source,
        "cpus": os.cpu_count(),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "criteria": criteria,
        "server_exit": exit_status,
        "server_log": log,
        "server_log_path": os.path.relpath(log_path, ROOT),
        "results": results,
    }
    text = markdown(report)
    for name in (f"soak-{stamp}", "soak-latest"):
        (args.out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
        (args.out / f"{name}.md").write_text(text)
    print()
    print(text)
    failed = [c["name"] for c in criteria if not c["ok"]]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
