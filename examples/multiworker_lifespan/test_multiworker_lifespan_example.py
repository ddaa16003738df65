"""Two workers over a real pagi-server: each one's startup and, after SIGTERM, its shutdown."""

from __future__ import annotations

from pathlib import Path

import httpx
from example_harness import serve, wait


def test_each_worker_starts_and_shuts_down(tmp_path: Path) -> None:
    out = tmp_path / "lifespan"
    out.mkdir()
    env = {"LIFESPAN_DIR": str(out)}

    def pids(step: str) -> set[int]:
        return {int(p.name.split("-")[1]) for p in out.glob(f"{step}-*")}

    with serve("multiworker_lifespan/app.py", tmp_path, "--workers", "2", env=env) as server:
        started = wait(
            "two workers to start", lambda: len(pids("startup")) == 2 and pids("startup")
        )
        assert server.proc.pid not in started  # the supervisor serves nothing itself
        answered = httpx.get(server.url + "/").json()
        assert answered["pid"] in started
        assert pids("shutdown") == set()
    # serve() sent SIGTERM and checked a clean exit (code 0, no traceback).
    assert pids("shutdown") == started
    log = server.log()
    for pid in started:
        assert log.index(f"worker {pid} startup") < log.index(f"worker {pid} shutdown")
