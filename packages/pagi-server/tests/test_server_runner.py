"""The runner contract (spec-digest section 9, R-RUN-*) and app loading."""

from __future__ import annotations

import os
import socket
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from server_helpers import echo_scope, hello, read_until_close
from server_subprocess import write_app

from pagi.server import Server, run
from pagi.server.app_loading import AppLoadError, load_object
from pagi.server.runner import default_app, load_app, wrap_for_env


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory with an importable app module, on sys.path, cleaned up afterwards."""
    name = f"runner_app_{time.monotonic_ns()}"
    write_app(
        tmp_path,
        f"{name}.py",
        """
        async def app(scope, receive, send):
            pass

        async def other(scope, receive, send):
            pass

        class Factory:
            async def made(self, scope, receive, send):
                pass

        factory = Factory()
        not_callable = 42
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    prefixes = ("runner_app_", "fake_srv_mod", "pagi_app_")
    for module in [n for n in sys.modules if n.startswith(prefixes)]:
        sys.modules.pop(module, None)


def _module_name(app_dir: Path) -> str:
    return next(p.stem for p in app_dir.glob("runner_app_*.py"))


# --- app loading ---------------------------------------------------------------------


def test_load_module_colon_attr(app_dir: Path) -> None:
    name = _module_name(app_dir)
    assert load_app(f"{name}:other").__name__ == "other"


def test_load_module_default_attr_is_app(app_dir: Path) -> None:
    name = _module_name(app_dir)
    assert load_app(name).__name__ == "app"


def test_load_dotted_attr(app_dir: Path) -> None:
    name = _module_name(app_dir)
    assert load_app(f"{name}:factory.made").__name__ == "made"


def test_load_file_path_default_attr(app_dir: Path) -> None:
    path = next(app_dir.glob("runner_app_*.py"))
    assert load_app(str(path)).__name__ == "app"


def test_load_relative_file_path_with_attr(app_dir: Path) -> None:
    sub = app_dir / "sub"
    sub.mkdir()
    write_app(sub, "svc.py", "async def application(scope, receive, send):\n    pass\n")
    assert load_app("sub/svc.py:application").__name__ == "application"


def test_missing_module_names_it(app_dir: Path) -> None:
    with pytest.raises(AppLoadError, match="no_such_module_xyz"):
        load_app("no_such_module_xyz:app")


def test_missing_file_names_it(app_dir: Path) -> None:
    with pytest.raises(AppLoadError, match=r"nope/missing\.py"):
        load_app("nope/missing.py")


def test_missing_attribute_names_it(app_dir: Path) -> None:
    name = _module_name(app_dir)
    with pytest.raises(AppLoadError, match="'nothing_here'"):
        load_app(f"{name}:nothing_here")


def test_not_callable_is_refused(app_dir: Path) -> None:
    name = _module_name(app_dir)
    with pytest.raises(AppLoadError, match="not callable"):
        load_app(f"{name}:not_callable")


def test_server_class_loads_with_default_attr(app_dir: Path) -> None:
    assert load_object("pagi.server.server", default_attr="Server") is Server


# --- the runner contract ---------------------------------------------------------------


class FakeServer:
    """A swappable server (R-RUN-1, R-RUN-5): records what it was given."""

    instances: list[FakeServer] = []
    known = frozenset({"app", "host", "port", "quiet", "access_log", "loop_type", "max_body_size"})

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - self.known)
        if unknown:
            raise TypeError(f"unknown server option(s): {', '.join(unknown)}")
        self.options = options
        self.ran = False
        FakeServer.instances.append(self)

    def run(self) -> None:
        self.ran = True


@pytest.fixture
def fake_server() -> Iterator[type[FakeServer]]:
    FakeServer.instances = []
    yield FakeServer
    FakeServer.instances = []


def test_run_passes_common_options_R_RUN_2_9(fake_server: type[FakeServer]) -> None:
    run(
        hello,
        server=fake_server,
        host="::1",
        port=8123,
        quiet=True,
        loop_type="trio",
        access_log=None,
        max_body_size=5,
    )
    (instance,) = fake_server.instances
    assert instance.ran
    assert instance.options == {
        "app": hello,
        "host": "::1",
        "port": 8123,
        "quiet": True,
        "access_log": None,
        "loop_type": "trio",
        "max_body_size": 5,
    }


def test_run_leaves_access_log_out_when_not_given_R_RUN_2(fake_server: type[FakeServer]) -> None:
    run(hello, server=fake_server)
    assert "access_log" not in fake_server.instances[0].options
    assert fake_server.instances[0].options["host"] == "127.0.0.1"
    assert fake_server.instances[0].options["port"] == 5000


FAKE_SERVER_MODULE = """
made = []


class Server:
    def __init__(self, **options):
        self.options = options
        made.append(self)

    def run(self):
        self.options["ran"] = True
"""


def test_run_loads_server_class_from_string_R_RUN_8(app_dir: Path) -> None:
    write_app(app_dir, "fake_srv_mod.py", FAKE_SERVER_MODULE)
    run(hello, server="fake_srv_mod")  # default attribute: Server
    run(hello, server="fake_srv_mod:Server", port=1)
    made = sys.modules["fake_srv_mod"].made
    assert [m.options["port"] for m in made] == [5000, 1]
    assert all(m.options["ran"] for m in made)


def test_unknown_server_option_raises_type_error_naming_it_R_RUN_4() -> None:
    with pytest.raises(TypeError, match="bogus_option"):
        Server(hello, bogus_option=1)
    with pytest.raises(TypeError, match="also_bad"):
        run(hello, server=Server, also_bad=True)


def test_server_accepts_every_common_option_R_RUN_2() -> None:
    server = Server(
        app=hello, host="127.0.0.1", port=0, quiet=True, access_log=None, loop_type="asyncio"
    )
    assert server.access_log is None
    assert server.config.port == 0


def test_env_development_wraps_with_lint(monkeypatch: pytest.MonkeyPatch) -> None:
    class Lint:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await self.app(scope, receive, send)

    middleware = types.ModuleType("pagi.tools.middleware")
    lint = types.ModuleType("pagi.tools.middleware.lint")
    lint.Lint = Lint  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pagi.tools.middleware", middleware)
    monkeypatch.setitem(sys.modules, "pagi.tools.middleware.lint", lint)
    wrapped = wrap_for_env(hello, "development")
    assert isinstance(wrapped, Lint) and wrapped.app is hello
    assert wrap_for_env(hello, "production") is hello
    assert wrap_for_env(hello, "none") is hello


def test_env_development_without_pagi_tools_runs_unwrapped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pagi.tools.middleware.lint", None)
    assert wrap_for_env(hello, "development") is hello


def test_run_sets_pagi_env(monkeypatch: pytest.MonkeyPatch, fake_server: type[FakeServer]) -> None:
    monkeypatch.setenv("PAGI_ENV", "x")
    run(hello, server=fake_server, env="production")
    assert os.environ["PAGI_ENV"] == "production"


def test_default_app_serves_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    class Directory:
        def __init__(self, root: str) -> None:
            self.root = root

    module = types.ModuleType("pagi.tools.apps.directory")
    module.Directory = Directory  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pagi.tools.apps", types.ModuleType("pagi.tools.apps"))
    monkeypatch.setitem(sys.modules, "pagi.tools.apps.directory", module)
    app = default_app()
    assert isinstance(app, Directory) and app.root == "."


def test_default_app_without_pagi_tools_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pagi.tools.apps.directory", None)
    with pytest.raises(SystemExit, match="pagi-tools"):
        default_app()


# --- listeners: Unix socket and inherited fd ------------------------------------------------


@pytest.mark.anyio
async def test_unix_socket_scope_server_is_path_none(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    server = Server(echo_scope, uds=path, access_log=None, quiet=True, lifespan="off")
    async with anyio.create_task_group() as tg:
        addresses = await tg.start(server.serve)
        assert addresses == [(path, None)]
        transport = httpx.AsyncHTTPTransport(uds=path)
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get("http://localhost/x")
        server.request_shutdown()
    scope = response.json()
    assert scope["server"] == [path, None]
    assert scope.get("client") is None
    assert not os.path.exists(path)  # removed on shutdown


@pytest.mark.anyio
async def test_stale_unix_socket_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # file left behind, nobody listening
    server = Server(hello, uds=str(path), access_log=None, quiet=True, lifespan="off")
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        async with await anyio.connect_unix(str(path)) as stream:  # the stale file was replaced
            await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            raw = await read_until_close(stream)
        server.request_shutdown()
    assert raw.startswith(b"HTTP/1.1 200") and raw.endswith(b"hello")
    assert not path.exists()  # and removed on shutdown


@pytest.mark.anyio
async def test_serves_on_inherited_fd() -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = Server(hello, fd=sock.detach(), access_log=None, quiet=True, lifespan="off")
    async with anyio.create_task_group() as tg:
        addresses = await tg.start(server.serve)
        assert addresses == [("127.0.0.1", port)]
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/")
        server.request_shutdown()
    assert response.text == "hello"
