"""docs/install.md, followed to the letter: wheels built, pip-installed into a fresh venv, served.

It needs the package index (for anyio, h2, ...) and takes ~20 s, so it runs
only with ``--install-check`` (``.ci/run`` passes it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "examples" / "hello" / "app.py"
WHEELS = {"pagi", "pagi_spec", "pagi_server", "pagi_tools"}


@pytest.fixture(autouse=True)
def _only_when_asked(request: pytest.FixtureRequest) -> None:
    if not request.config.getoption("--install-check"):
        pytest.skip("builds and installs wheels (~20 s): pass --install-check")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(*args: str | Path, cwd: Path = ROOT) -> None:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"


@pytest.mark.timeout(300)
def test_the_four_wheels_install_with_pip_and_serve_hello(tmp_path: Path) -> None:
    # `uv run` names itself in $UV (uv may have been started as `python3 -m uv`).
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv is neither in $UV nor on PATH"
    dist = tmp_path / "dist"
    _run(uv, "build", "--all-packages", "--wheel", "-o", dist)
    wheels = sorted(dist.glob("*.whl"))
    assert {w.name.split("-")[0] for w in wheels} == WHEELS

    venv = tmp_path / "venv"
    # The base interpreter, not the workspace's venv: nothing leaks in from it.
    base = getattr(sys, "_base_executable", sys.executable)
    _run(base, "-m", "venv", venv)
    _run(venv / "bin" / "pip", "install", "--quiet", *wheels)

    port = _free_port()
    log = tmp_path / "server.log"
    # Served from outside the clone, so only the venv can provide pagi.
    clean_env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(venv / "bin" / "pagi-server"), str(APP), "--port", str(port)],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**clean_env, "PAGI_ENV": "production"},
        )
    try:
        deadline = time.monotonic() + 15
        response = None
        while response is None:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
            except httpx.TransportError:
                time.sleep(0.05)
        assert response.status_code == 200
        assert response.text == "Hello, world!\n"
        # The server that answered is the installed one, not the workspace's.
        where = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import pagi.server; print(pagi.server.__file__)"],
            cwd=tmp_path,
            env=clean_env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert where.startswith(str(venv)), where
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
