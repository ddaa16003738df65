"""``--metrics-bind`` (issue 16, item 5): scraped from real processes and parsed.

Every wait is on something observable (a port, a gauge in a scrape, a
worker's pid in a response); the scrapes themselves must never show up in
the counts.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_subprocess import ServerProcess, free_port, write_app

parser = pytest.importorskip("prometheus_client.parser")

APP = """
import os


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "sse":
        await send({"type": "sse.start", "status": 200})
        await send({"type": "sse.send", "data": "hello"})
        while (await receive())["type"] != "sse.disconnect":
            pass
        return
    body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
"""


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the endpoint, keyed by name and labels."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_metric(port: int, name: str, expected: float, **labels: str) -> dict[Any, float]:
    deadline = time.monotonic() + 10
    while True:
        samples = scrape(port)
        if value(samples, name, **labels) == expected:
            return samples
        if time.monotonic() > deadline:
            got = value(samples, name, **labels)
            raise AssertionError(f"{name}{labels} is {got}, expected {expected}")
        time.sleep(0.05)


def raw_request(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data:
                break
        return data


def test_single_process_counts_requests_connections_sessions_and_rejections(
    tmp_path: Path,
) -> None:
    write_app(tmp_path, "mapp.py", APP)
    port, mport = free_port(), free_port()
    proc = ServerProcess(
        [
            "mapp.py",
            "--port",
            str(port),
            "--metrics-bind",
            f"127.0.0.1:{mport}",
            "--max-header-size",
            "1024",
            "--max-connections",
            "1",
        ],
        tmp_path,
    )
    try:
        proc.wait_port(port)
        proc.wait_port(mport)
        for _ in range(3):
            assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
        wait_metric(mport, "pagi_server_connections", 0, protocol="http/1.1")

        big = b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 2000 + b"\r\n\r\n"
        assert raw_request(port, big).startswith(b"HTTP/1.1 431")
        wait_metric(mport, "pagi_server_connections", 0, protocol="http/1.1")

        # One idle connection fills --max-connections 1; the next one gets 503.
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            wait_metric(mport, "pagi_server_connections", 1, protocol="http/1.1")
            refused = raw_request(port, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            assert refused.startswith(b"HTTP/1.1 503")
        wait_metric(mport, "pagi_server_connections", 0, protocol="http/1.1")

        with httpx.stream(
            "GET", f"http://127.0.0.1:{port}/", headers={"accept": "text/event-stream"}, timeout=5
        ) as events:
            lines = events.iter_lines()  # kept: a dropped iterator closes the response
            assert next(lines) == "data: hello"
            wait_metric(mport, "pagi_server_sessions", 1, type="sse")
        samples = wait_metric(mport, "pagi_server_sessions", 0, type="sse")

        http11 = {"type": "http", "protocol": "HTTP/1.1"}
        assert value(samples, "pagi_server_requests_total", status="200", **http11) == 3
        latency = "pagi_server_request_duration_seconds_count"
        assert value(samples, latency, protocol="HTTP/1.1") == 3
        assert value(samples, "pagi_server_response_bytes_total", **http11) == 3 * len(
            str(proc.proc.pid)
        )
        assert value(samples, "pagi_server_session_duration_seconds_count", type="sse") == 1
        assert (
            value(samples, "pagi_server_rejections_total", kind="header_too_large", status="431")
            == 1
        )
        assert value(samples, "pagi_server_rejections_total", kind="unavailable", status="503") == 1
        assert value(samples, "pagi_server_workers") == 1
        # The scrapes above were served by the metrics listener, never counted.
        again = scrape(mport)
        assert value(again, "pagi_server_requests_total", status="200", **http11) == 3
    finally:
        proc.stop()
    assert proc.proc.returncode == 0, proc.stderr


def test_workers_add_up_and_the_run_directory_is_removed(tmp_path: Path) -> None:
    write_app(tmp_path, "mapp.py", APP)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    port, mport = free_port(), free_port()
    proc = ServerProcess(
        ["mapp.py", "--workers", "2", "--port", str(port), "--metrics-bind", f"127.0.0.1:{mport}"],
        tmp_path,
        env={"TMPDIR": str(scratch)},
    )
    try:
        proc.wait_port(port)
        proc.wait_port(mport)
        assert [p.name[:13] for p in scratch.iterdir()] == ["pagi-metrics-"]
        pids: dict[str, int] = {}
        sent = 0
        while len(pids) < 2:  # new connections until both workers have answered
            assert sent < 400, f"one worker answered every request: {pids}"
            pid = httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text
            pids[pid] = pids.get(pid, 0) + 1
            sent += 1
        http11 = {"type": "http", "protocol": "HTTP/1.1"}
        samples = wait_metric(mport, "pagi_server_requests_total", sent, status="200", **http11)
        assert value(samples, "pagi_server_workers") == 2
        assert (
            value(samples, "pagi_server_request_duration_seconds_count", protocol="HTTP/1.1")
            == sent
        )
    finally:
        proc.stop()
    assert proc.proc.returncode == 0, proc.stderr
    assert list(scratch.iterdir()) == []


def test_without_prometheus_client_the_error_names_the_extra(tmp_path: Path) -> None:
    write_app(tmp_path, "mapp.py", APP)
    code = (
        "import sys; sys.modules['prometheus_client'] = None; "
        "from pagi.server.cli import main; sys.exit(main())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "mapp.py", "--port", "0", "--metrics-bind", "127.0.0.1:0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=20,
        env={**os.environ, "PAGI_ENV": "production"},
    )
    assert done.returncode == 2, done.stderr
    assert "pagi-server[metrics]" in done.stderr
    assert "Traceback" not in done.stderr


def test_metrics_bind_must_be_host_and_port(tmp_path: Path) -> None:
    write_app(tmp_path, "mapp.py", APP)
    done = subprocess.run(
        [sys.executable, "-m", "pagi.server", "mapp.py", "--metrics-bind", "unix:/tmp/m.sock"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 2
    assert "--metrics-bind" in done.stderr and "HOST:PORT" in done.stderr
