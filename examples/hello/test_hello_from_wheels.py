"""docs/install.md, followed to the letter: wheels built, pip-installed into a fresh venv, served.

It needs the package index (for anyio, h2, ...) and takes ~20 s, plus about
a minute and a half for the compiled (mypyc) pagi-server wheel, which needs a C
compiler, so it runs only with ``--install-check`` (``.ci/run`` passes it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "examples" / "hello" / "app.py"
WHEELS = {"pagi", "pagi_spec", "pagi_server", "pagi_tools"}


@pytest.fixture(autouse=True)
def _only_when_asked(request: pytest.FixtureRequest) -> None:
    if not request.config.getoption("--install-check"):
        pytest.skip("builds and installs wheels (~2 min): pass --install-check")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(*args: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=None if env is None else {**os.environ, **env},
    )
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"


def _uv() -> str:
    # `uv run` names itself in $UV (uv may have been started as `python3 -m uv`).
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv is neither in $UV nor on PATH"
    return uv


def _build_wheels(dist: Path) -> list[Path]:
    _run(_uv(), "build", "--all-packages", "--wheel", "-o", dist)
    wheels = sorted(dist.glob("*.whl"))
    assert {w.name.split("-")[0] for w in wheels} == WHEELS
    return wheels


def _install_and_serve_hello(tmp_path: Path, wheels: list[Path]) -> tuple[str, str]:
    """pip-install ``wheels`` into a fresh venv, serve hello from it: (server log, python -c).

    The second item is what the venv's Python prints for ``pagi.server.__file__``
    and ``pagi.server.compiled``, run from outside the clone.
    """
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
            [
                str(venv / "bin" / "python"),
                "-c",
                "import pagi.server; print(pagi.server.__file__, pagi.server.compiled)",
            ],
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
    return log.read_text(), where


@pytest.mark.timeout(300)
def test_the_four_wheels_install_with_pip_and_serve_hello(tmp_path: Path) -> None:
    wheels = _build_wheels(tmp_path / "dist")
    # Pure wheels, even from a tree holding an in-place mypyc build (it is gitignored).
    for wheel in wheels:
        assert wheel.name.endswith("-py3-none-any.whl"), wheel.name
        with zipfile.ZipFile(wheel) as archive:
            assert not [n for n in archive.namelist() if n.endswith((".so", ".pyd"))], wheel
    log, where = _install_and_serve_hello(tmp_path, wheels)
    assert "pure Python" in log and where.endswith(" False\n"), (log, where)


@pytest.mark.timeout(900)
def test_a_compiled_server_wheel_installs_with_pip_and_serves_hello(tmp_path: Path) -> None:
    """docs/install.md's compiled wheel: PAGI_COMPILE=1 builds pagi-server with mypyc."""
    pure = _build_wheels(tmp_path / "dist")
    compiled_dist = tmp_path / "compiled"
    _run(
        _uv(),
        "build",
        "--package",
        "pagi-server",
        "--wheel",
        "-o",
        compiled_dist,
        env={"PAGI_COMPILE": "1"},
    )
    (server_wheel,) = compiled_dist.glob("*.whl")
    assert not server_wheel.name.endswith("-none-any.whl"), server_wheel.name  # a platform wheel
    with zipfile.ZipFile(server_wheel) as archive:
        names = archive.namelist()
    # Each compiled module beside its source (the fallback), plus mypyc's shared library.
    assert any(
        n.startswith("pagi/server/protocols/http1_parser.") and n.endswith(".so") for n in names
    )
    assert "pagi/server/protocols/http1_parser.py" in names
    assert any(n.startswith("pagi_server__mypyc.") for n in names)

    wheels = [w for w in pure if not w.name.startswith("pagi_server-")] + [server_wheel]
    log, where = _install_and_serve_hello(tmp_path, wheels)
    assert "compiled (mypyc)" in log and where.endswith(" True\n"), (log, where)
