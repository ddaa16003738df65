"""``--workers N``: the pre-fork supervisor, in real processes (server-digest 1.3, 8.8)."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from server_subprocess import (
    WORKER_APP,
    ServerProcess,
    children,
    free_port,
    run_cli,
    wait_children,
    write_app,
)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def get(port: int, path: str = "/") -> dict:  # type: ignore[type-arg]
    return json.loads(httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10).text)


@pytest.fixture
def workers(tmp_path: Path):  # type: ignore[no-untyped-def]
    write_app(tmp_path, "wapp.py", WORKER_APP)
    port = free_port()
    log = tmp_path / "access.log"
    proc = ServerProcess(
        [
            "wapp.py",
            "--workers",
            "2",
            "--port",
            str(port),
            "--max-body-size",
            "5",
            "--access-log",
            str(log),
            "--access-log-format",
            "%m %U worker-log",
            "--lifespan",
            "on",
            "--shutdown-timeout",
            "5",
        ],
        tmp_path,
    )
    try:
        proc.wait_port(port)
        wait_children(proc.proc.pid, 2)
        yield proc, port, log
    finally:
        proc.stop()


def test_two_workers_serve_requests(workers) -> None:  # type: ignore[no-untyped-def]
    proc, port, _ = workers
    kids = children(proc.proc.pid)
    pids: set[int] = set()
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):  # the kernel decides who accepts; a few rounds see both
            pids |= {r["pid"] for r in pool.map(lambda _: get(port, "/block"), range(4))}
            if len(pids) == 2:
                break
    assert len(pids) == 2
    assert pids == kids
    assert proc.proc.pid not in pids


def test_every_option_reaches_the_workers(workers) -> None:  # type: ignore[no-untyped-def]
    """Options reach every worker, and each worker ran the lifespan protocol itself (R-LIFE-1)."""
    _, port, log = workers
    seen = {}
    for _ in range(4):
        response = httpx.post(f"http://127.0.0.1:{port}/big", content=b"x" * 50)
        assert response.status_code == 413  # --max-body-size 5
        data = get(port)
        seen[data["pid"]] = data["lifespan"]
    for info in seen.values():
        assert info["is_worker"] == 1
        assert info["worker_num"] in (1, 2)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "worker-log" not in log.read_text():
        time.sleep(0.05)
    assert "GET / worker-log" in log.read_text()


def test_killed_worker_is_respawned(workers) -> None:  # type: ignore[no-untyped-def]
    proc, port, _ = workers
    before = children(proc.proc.pid)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    after = before
    while time.monotonic() < deadline:
        after = children(proc.proc.pid)
        if len(after) == 2 and victim not in after:
            break
        time.sleep(0.05)
    assert len(after) == 2 and victim not in after
    assert proc.proc.poll() is None
    get(port)


def test_sighup_restarts_every_worker(workers) -> None:  # type: ignore[no-untyped-def]
    proc, port, _ = workers
    before = children(proc.proc.pid)
    proc.signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    after = before
    while time.monotonic() < deadline:
        after = children(proc.proc.pid)
        if len(after) == 2 and not after & before:
            break
        time.sleep(0.05)
    assert len(after) == 2 and not after & before
    assert get(port)["pid"] in after


def test_sigterm_stops_all_workers(workers) -> None:  # type: ignore[no-untyped-def]
    proc, _, _ = workers
    kids = children(proc.proc.pid)
    proc.signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert not any(os.path.exists(f"/proc/{pid}") for pid in kids)


def test_ctrl_c_to_the_process_group_drains_once(tmp_path: Path) -> None:
    # A terminal's Ctrl-C signals every process in the group; workers leave it to the
    # supervisor, so an in-flight request still completes (no "second signal" exit).
    write_app(tmp_path, "wapp.py", WORKER_APP)
    port = free_port()
    proc = ServerProcess(
        ["wapp.py", "--workers", "2", "--port", str(port)], tmp_path, start_new_session=True
    )
    try:
        proc.wait_port(port)
        wait_children(proc.proc.pid, 2)
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(get, port, "/block")
            proc.wait_path(tmp_path / "block-started", timeout=10)
            os.killpg(proc.proc.pid, signal.SIGINT)
            assert future.result(10)["pid"] != proc.proc.pid
        assert proc.wait(15) == 0
    finally:
        proc.stop()


FAILING_APP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})
"""


def test_startup_failure_in_workers_exits_3_without_respawning(tmp_path: Path) -> None:
    write_app(tmp_path, "fail.py", FAILING_APP)
    started = time.monotonic()
    result = run_cli(["fail.py", "--workers", "2", "--port", str(free_port())], tmp_path)
    assert result.returncode == 3
    assert time.monotonic() - started < 15
    assert "no database" in result.stderr
    assert result.stderr.count("respawning") == 0
