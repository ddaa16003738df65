"""``pagi-server --interface {pagi,asgi,asgi2,wsgi}``: the runner wraps the app in a bridge.

The bridges live in pagi-tools; the server imports them lazily, like the
default app, and says how to install pagi-tools when they are missing.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_subprocess import ServerProcess, free_port, write_app

from pagi.server import run
from pagi.server.runner import wrap_interface

ASGI_STREAMING = """
async def app(scope, receive, send):
    assert scope["type"] == "http", scope["type"]
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for i in range(3):
        await send({"type": "http.response.body", "body": b"part%d;" % i, "more_body": True})
    await send({"type": "http.response.body", "body": b"end", "more_body": False})
"""


def test_interface_asgi_streams_every_chunk_and_without_it_the_error_says_how(
    tmp_path: Path,
) -> None:
    source = write_app(tmp_path, "asgi_app.py", ASGI_STREAMING)
    port = free_port()
    server = ServerProcess([str(source), "--interface", "asgi", "--port", str(port)], tmp_path)
    try:
        server.wait_port(port)
        response = httpx.get(f"http://127.0.0.1:{port}/")
        assert (response.status_code, response.text) == (200, "part0;part1;part2;end")
    finally:
        server.stop()
    port = free_port()
    server = ServerProcess([str(source), "--port", str(port)], tmp_path)
    try:
        server.wait_port(port)
        # The head is held until the first body, so the refusal is a clean 500,
        # never a 200 carrying only the first chunk.
        response = httpx.get(f"http://127.0.0.1:{port}/")
        assert response.status_code == 500
    finally:
        server.stop()
    assert "'more_body' is ASGI's spelling; PAGI uses 'more'" in server.stderr
    assert "--interface asgi" in server.stderr


def test_bad_interface_is_a_usage_error(tmp_path: Path) -> None:
    from server_subprocess import run_cli

    result = run_cli(["--interface", "rack", "x.py"], tmp_path)
    assert result.returncode == 2
    assert "--interface" in result.stderr


def test_missing_pagi_tools_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pagi.tools.asgi", None)  # import raises ImportError
    with pytest.raises(SystemExit) as info:
        wrap_interface(lambda *a: None, "asgi")
    assert "pip install pagi-tools" in str(info.value)
    assert "--interface asgi" in str(info.value)


def test_pagi_interface_returns_the_app_itself() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None: ...

    assert wrap_interface(app, "pagi") is app


def test_runner_wraps_for_any_server_class_and_does_not_pass_interface_on() -> None:
    """``-s`` runner apps get the bridged app too; the option is the runner's."""
    seen: dict[str, Any] = {}

    class Recorder:
        def __init__(self, **options: Any) -> None:
            seen.update(options)

        def run(self) -> None:
            pass

    async def asgi_app(scope: Any, receive: Any, send: Any) -> None: ...

    run(asgi_app, server=Recorder, interface="asgi", env="production")
    assert "interface" not in seen
    from pagi.tools.asgi import ASGIApp

    assert isinstance(seen["app"], ASGIApp)
    assert seen["app"].app is asgi_app
    run(asgi_app, server=Recorder, interface="asgi2", env="production")
    assert seen["app"].asgi_version == "2"
