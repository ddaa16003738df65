"""``pagi-server``: argument parsing, app forms, errors, runner options (R-RUN-*).

Most tests run ``cli.main`` in-process with a fake ``-s`` server that only
records what it was given; the ones that must see a real process (exit
status, signals, sockets) run ``python -m pagi.server`` in a subprocess.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_subprocess import PID_APP, ServerProcess, free_port, run_cli, write_app

from pagi.server import __version__
from pagi.server.cli import main
from pagi.server.config import ServerConfig

FAKE_SERVER = """
made = []


class Server:
    def __init__(self, **options):
        unknown = set(options) - {
            "app", "host", "port", "quiet", "access_log", "loop_type", "max_body_size",
            "shutdown_timeout", "uds",
        }
        if unknown:
            raise TypeError(f"unknown server option(s): {', '.join(sorted(unknown))}")
        self.options = options
        made.append(self)

    def run(self):
        self.options["ran"] = True
"""

APP_MODULE = """
async def app(scope, receive, send):
    pass


async def other(scope, receive, send):
    pass
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """cwd with ``cli_app_mod.py`` and ``cli_fake_srv.py``; modules forgotten afterwards."""
    write_app(tmp_path, "cli_app_mod.py", APP_MODULE)
    write_app(tmp_path, "cli_fake_srv.py", FAKE_SERVER)
    sub = tmp_path / "apps"
    sub.mkdir()
    write_app(sub, "svc.py", APP_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PAGI_ENV", "production")
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith(("cli_", "pagi_app_"))]:
        sys.modules.pop(name, None)


def made() -> list[Any]:
    return list(sys.modules["cli_fake_srv"].made)


def cli(*args: str) -> dict[str, Any]:
    """Run main() with the fake server; the options it was constructed with."""
    main(["-s", "cli_fake_srv:Server", *args])
    (server,) = made()
    assert server.options.pop("ran") is True
    return dict(server.options)


# --- app forms --------------------------------------------------------------------------


def test_module_colon_attr(workdir: Path) -> None:
    assert cli("cli_app_mod:other")["app"].__name__ == "other"


def test_module_default_attr_app(workdir: Path) -> None:
    assert cli("cli_app_mod")["app"].__name__ == "app"


def test_file_path(workdir: Path) -> None:
    assert cli("apps/svc.py")["app"].__name__ == "app"


def test_file_path_with_attr(workdir: Path) -> None:
    assert cli("apps/svc.py:other")["app"].__name__ == "other"


def test_app_option_form(workdir: Path) -> None:
    assert cli("--app", "cli_app_mod:other")["app"].__name__ == "other"


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("missing_mod_q:app", "missing_mod_q"),
        ("apps/missing.py", "missing.py"),
        ("cli_app_mod:nothing", "nothing"),
    ],
)
def test_load_errors_exit_non_zero_naming_the_target(workdir: Path, spec: str, named: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["-s", "cli_fake_srv:Server", spec])
    assert info.value.code not in (0, None)
    assert named in str(info.value.code)


def test_missing_module_in_a_real_process(tmp_path: Path) -> None:
    result = run_cli(["no_such_app_module:app"], tmp_path)
    assert result.returncode != 0
    assert "no_such_app_module" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_server_class_is_a_clear_error(workdir: Path) -> None:
    with pytest.raises(SystemExit, match="cli_app_mod"):
        main(["-s", "cli_app_mod:NoServer", "cli_app_mod"])


# --- options ------------------------------------------------------------------------------


def test_help_lists_every_option_with_defaults(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(ServerConfig):
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        assert flag in text, flag
    for flag, default in [
        ("--max-body-size", "10485760"),
        ("--max-header-size", "16384"),
        ("--max-connections", "1000"),
        ("--header-timeout", "10.0"),
        ("--keepalive-timeout", "5.0"),
        ("--shutdown-timeout", "30.0"),
        ("--lifespan-startup-timeout", "30.0"),
        ("--workers", "1"),
    ]:
        assert re.search(
            re.escape(flag) + r" \S+ .*?\(default: " + re.escape(default) + r"\)", text
        ), flag
    for runner_flag in (
        "--server",
        "--env",
        "--access-log",
        "--no-access-log",
        "--reload",
        "--version",
        "--loop",
        "--uds",
        "--fd",
    ):
        assert runner_flag in text


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_unknown_option_is_refused_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--no-such-flag", "x:app"])
    assert info.value.code == 2
    assert "--no-such-flag" in capsys.readouterr().err


def test_bad_option_value_is_refused_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--shutdown-timeout", "-1", "x:app"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--shutdown-timeout must not be negative" in err  # the flag, not the field
    assert "shutdown_timeout" not in err and "usage:" not in err


def test_unknown_access_log_atom_is_refused_at_startup(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--access-log-format", "%h %Z", "x:app"])
    assert info.value.code == 2
    assert "%Z" in capsys.readouterr().err


def test_swappable_server_gets_common_and_server_options_R_RUN_2_3(workdir: Path) -> None:
    options = cli(
        "cli_app_mod",
        "--host",
        "::1",
        "--port",
        "8111",
        "--quiet",
        "--loop",
        "trio",
        "--max-body-size",
        "77",
        "--no-access-log",
    )
    assert options.pop("app").__name__ == "app"
    assert options == {
        "host": "::1",
        "port": 8111,
        "quiet": True,
        "loop_type": "trio",
        "access_log": None,
        "max_body_size": 77,
    }


def test_swappable_server_defaults_R_RUN_2(workdir: Path) -> None:
    options = cli("cli_app_mod", "--env", "development")
    assert options["host"] == "127.0.0.1"
    assert options["port"] == 5000
    assert options["quiet"] is False
    # A hint (R-RUN-2): "auto" leaves the choice to the server (ours: uvloop when installed).
    assert options["loop_type"] == "auto"
    assert "access_log" not in options  # the server picks its own default


def test_production_disables_access_log_by_default(workdir: Path) -> None:
    assert cli("cli_app_mod", "--env", "production")["access_log"] is None


def test_swappable_server_refusing_an_option_names_it_R_RUN_4(workdir: Path) -> None:
    with pytest.raises(SystemExit, match="header_timeout"):
        main(["-s", "cli_fake_srv:Server", "cli_app_mod", "--header-timeout", "3"])


def _fake_lint(monkeypatch: pytest.MonkeyPatch) -> type:
    """A stand-in Lint middleware, found before any real one (sys.modules comes first)."""

    class Lint:
        def __init__(self, app: Any) -> None:
            self.app = app

    lint = types.ModuleType("pagi.tools.middleware.lint")
    lint.Lint = Lint  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pagi.tools.middleware", types.ModuleType("m"))
    monkeypatch.setitem(sys.modules, "pagi.tools.middleware.lint", lint)
    return Lint


def test_env_development_wraps_app_in_lint(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lint = _fake_lint(monkeypatch)
    app = cli("cli_app_mod", "--env", "development")["app"]
    assert isinstance(app, lint)
    assert os.environ["PAGI_ENV"] == "development"


def test_env_production_does_not_wrap(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_lint(monkeypatch)
    assert cli("cli_app_mod", "--env", "production")["app"].__name__ == "app"


def test_pagi_env_variable_is_the_default(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lint = _fake_lint(monkeypatch)
    monkeypatch.setenv("PAGI_ENV", "development")
    assert isinstance(cli("cli_app_mod")["app"], lint)


def test_no_app_serves_current_directory(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Directory:
        def __init__(self, root: str) -> None:
            self.root = root

    module = types.ModuleType("pagi.tools.apps.directory")
    module.Directory = Directory  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pagi.tools.apps", types.ModuleType("pagi.tools.apps"))
    monkeypatch.setitem(sys.modules, "pagi.tools.apps.directory", module)
    app = cli()["app"]
    assert isinstance(app, Directory) and app.root == "."


def test_no_app_without_directory_app_is_a_clear_error(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pagi.tools.apps.directory", None)
    with pytest.raises(SystemExit, match="pagi-tools"):
        main(["-s", "cli_fake_srv:Server"])


# --- reload ----------------------------------------------------------------------------------


def test_reload_without_watchfiles_is_a_clear_error(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "watchfiles", None)
    with pytest.raises(SystemExit, match=r"watchfiles.*pagi-server\[reload\]"):
        main(["--reload", "cli_app_mod"])


def test_reload_runs_the_server_under_watchfiles(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    watched: list[dict[str, Any]] = []
    started: list[list[str]] = []
    signals: list[int] = []
    fake = types.ModuleType("watchfiles")

    class DefaultFilter:
        def __call__(self, change: Any, path: str) -> bool:
            return True

    def watch(*paths: Any, **kwargs: Any) -> Any:
        watched.append({"paths": paths, **kwargs})
        yield {(1, str(workdir / "cli_app_mod.py"))}

    class FakeChild:
        def __init__(self, command: list[str], env: dict[str, str]) -> None:
            started.append(command)
            assert env["PAGI_RELOADER"] == "1"
            self.code: int | None = None

        def poll(self) -> int | None:
            return self.code

        def send_signal(self, signum: int) -> None:
            signals.append(signum)
            self.code = 0

        def kill(self) -> None:
            self.code = -9

        def wait(self) -> int:
            return 0

    fake.DefaultFilter = DefaultFilter  # type: ignore[attr-defined]
    fake.watch = watch  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "watchfiles", fake)
    monkeypatch.setattr(subprocess, "Popen", FakeChild)
    main(["--reload", "cli_app_mod:other", "--port", "8124", "--reload-exclude", "*_test.py"])
    (call,) = watched
    assert call["paths"] == (str(workdir),)
    keep = call["watch_filter"]
    assert keep(1, str(workdir / "a.py")) and not keep(1, str(workdir / "a_test.py"))
    assert not keep(1, str(workdir / "a.txt"))  # only *.py without --reload-include
    assert len(started) == 2  # the first server, then the one after the change
    command = started[0]
    assert "--reload" not in command and "--reload-exclude" not in command
    assert "cli_app_mod:other" in command and "8124" in command
    assert command[1:3] == ["-m", "pagi.server"]
    assert signals == [signal.SIGUSR2, signal.SIGTERM]  # a reload, then the final stop


@pytest.mark.skipif(importlib.util.find_spec("watchfiles") is None, reason="needs watchfiles")
def test_reload_restarts_on_change(tmp_path: Path) -> None:
    port = free_port()
    app = write_app(tmp_path, "rapp.py", PID_APP)
    proc = ServerProcess(
        ["rapp.py", "--reload", "--port", str(port)], tmp_path, start_new_session=True
    )
    try:
        proc.wait_port(port)
        first = httpx.get(f"http://127.0.0.1:{port}/").text
        # Nothing says when the watcher is watching: touch the file (at most once a
        # second) until the reloader reports the change, then wait for the new server.
        deadline = time.monotonic() + 15
        touched = 0.0
        while "changed; restarting" not in proc.stderr:
            assert time.monotonic() < deadline, proc.stderr
            if time.monotonic() - touched > 1.0:
                app.write_text(app.read_text() + "\n# touched\n")
                touched = time.monotonic()
            time.sleep(0.05)  # poll interval
        second = first
        while second == first and time.monotonic() < deadline:
            time.sleep(0.2)  # poll interval of a deadline-bounded wait
            try:
                second = httpx.get(f"http://127.0.0.1:{port}/", timeout=2).text
            except httpx.HTTPError:
                continue
        assert second != first, proc.stderr  # a new process answers
    finally:
        os.killpg(proc.proc.pid, signal.SIGTERM)
        proc.wait(15)


# --- real processes ----------------------------------------------------------------------


FAILING_APP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "cannot reach the database"})
"""


def test_startup_failure_exits_non_zero_with_message_R_LIFE_11(tmp_path: Path) -> None:
    write_app(tmp_path, "fail.py", FAILING_APP)
    port = free_port()
    result = run_cli(["fail.py", "--port", str(port)], tmp_path)
    assert result.returncode == 3
    assert "cannot reach the database" in result.stderr


ECHO_APP = """
import json


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    info = {"server": scope["server"], "client": scope.get("client"), "scheme": scope["scheme"]}
    body = json.dumps(info).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
"""


def test_uds_serves_on_a_unix_socket(tmp_path: Path) -> None:
    write_app(tmp_path, "echo.py", ECHO_APP)
    path = tmp_path / "app.sock"
    proc = ServerProcess(["echo.py", "--uds", str(path)], tmp_path)
    try:
        proc.wait_path(path)
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(path))) as client:
            data = client.get("http://localhost/").json()
    finally:
        proc.stop()
    assert data["server"] == [str(path), None]
    assert data["client"] is None
    assert proc.proc.returncode == 0
    assert not path.exists()


def test_fd_serves_on_an_inherited_socket(tmp_path: Path) -> None:
    write_app(tmp_path, "echo.py", ECHO_APP)
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    fd = sock.fileno()
    proc = ServerProcess(["echo.py", "--fd", str(fd)], tmp_path, pass_fds=(fd,))
    sock.close()
    try:
        proc.wait_port(port)
        data = httpx.get(f"http://127.0.0.1:{port}/").json()
    finally:
        proc.stop()
    assert data["server"] == ["127.0.0.1", port]


def test_loop_trio(tmp_path: Path) -> None:
    write_app(tmp_path, "pid.py", PID_APP)
    port = free_port()
    proc = ServerProcess(["pid.py", "--loop", "trio", "--port", str(port)], tmp_path)
    try:
        proc.wait_port(port)
        response = httpx.get(f"http://127.0.0.1:{port}/")
    finally:
        proc.stop()
    assert response.text == str(proc.proc.pid)
    assert proc.proc.returncode == 0


def test_access_log_file_gets_lines(tmp_path: Path) -> None:
    write_app(tmp_path, "pid.py", PID_APP)
    port = free_port()
    log = tmp_path / "access.log"
    proc = ServerProcess(
        [
            "pid.py",
            "--port",
            str(port),
            "--access-log",
            str(log),
            "--access-log-format",
            "%m %U%q %s %{X-Tag}i",
        ],
        tmp_path,
    )
    try:
        proc.wait_port(port)
        httpx.get(f"http://127.0.0.1:{port}/a?b=1", headers={"x-tag": "t1"})
        httpx.get(f"http://127.0.0.1:{port}/c")
    finally:
        proc.stop()
    assert log.read_text().splitlines() == ["GET /a?b=1 200 t1", "GET /c 200 -"]


def test_no_access_log_writes_none(tmp_path: Path) -> None:
    write_app(tmp_path, "pid.py", PID_APP)
    port = free_port()
    proc = ServerProcess(
        ["pid.py", "--port", str(port), "--env", "development", "--no-access-log"], tmp_path
    )
    try:
        proc.wait_port(port)
        httpx.get(f"http://127.0.0.1:{port}/unlogged")
    finally:
        proc.stop()
    assert "/unlogged" not in proc.stderr + proc.stdout


def test_development_logs_access_to_stderr(tmp_path: Path) -> None:
    write_app(tmp_path, "pid.py", PID_APP)
    port = free_port()
    proc = ServerProcess(["pid.py", "--port", str(port), "--env", "development"], tmp_path)
    try:
        proc.wait_port(port)
        httpx.get(f"http://127.0.0.1:{port}/logged")
    finally:
        proc.stop()
    assert "/logged" in proc.stderr


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    write_app(tmp_path, "pid.py", PID_APP)
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = run_cli(["pid.py", "--port", str(port)], tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot listen" in result.stderr


def test_help_in_a_real_process(tmp_path: Path) -> None:
    result = run_cli(["--help"], tmp_path)
    assert result.returncode == 0
    assert "--max-body-size" in result.stdout
