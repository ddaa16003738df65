"""Deployment options over real processes (issue 16): ``--log-config``,
``--user``/``--group`` and ``--bind fd://N``.

Each test waits for a port or a log line, never for a fixed time.
"""

from __future__ import annotations

import json
import os
import pwd
import socket
import time
from pathlib import Path

import httpx
import pytest
from server_subprocess import ServerProcess, free_port, run_cli, write_app

IDS_APP = """
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
    body = f"{os.getpid()} {os.getuid()} {os.getgid()}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
"""


def wait_text(path: Path, needle: str, proc: ServerProcess, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if needle in text:
            return text
        if proc.proc.poll() is not None:
            raise AssertionError(f"server exited {proc.proc.returncode}: {proc.stderr}")
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} never appeared in {path}: {proc.stderr}")


# --- --log-config -------------------------------------------------------------------------


def _log_config(log_file: Path) -> dict[str, object]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"tagged": {"format": "TAGGED %(levelname)s %(name)s %(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": str(log_file),
                "formatter": "tagged",
            }
        },
        "root": {"level": "INFO", "handlers": ["file"]},
    }


def _write_toml(config: dict[str, object], path: Path) -> None:
    # The shape above only, by hand: the standard library reads TOML but cannot write it.
    lines = ["version = 1", "disable_existing_loggers = false", ""]
    lines += ["[formatters.tagged]", f"format = {json.dumps(config_format(config))}", ""]
    handler = config["handlers"]["file"]  # type: ignore[index]
    lines += ["[handlers.file]"] + [f"{k} = {json.dumps(v)}" for k, v in handler.items()]
    lines += ["", "[root]", 'level = "INFO"', 'handlers = ["file"]', ""]
    path.write_text("\n".join(lines))


def config_format(config: dict[str, object]) -> str:
    return str(config["formatters"]["tagged"]["format"])  # type: ignore[index]


@pytest.mark.parametrize("ext", ["json", "toml", "yaml"])
def test_log_config_file_routes_the_error_log(tmp_path: Path, ext: str) -> None:
    write_app(tmp_path, "ids.py", IDS_APP)
    log_file = tmp_path / "server.log"
    config = _log_config(log_file)
    path = tmp_path / f"logging.{ext}"
    if ext == "json":
        path.write_text(json.dumps(config))
    elif ext == "toml":
        _write_toml(config, path)
    else:
        yaml = pytest.importorskip("yaml", reason="--log-config .yaml needs PyYAML")
        path.write_text(yaml.safe_dump(config))
    port = free_port()
    proc = ServerProcess(["ids.py", "--port", str(port), "--log-config", str(path)], tmp_path)
    try:
        text = wait_text(log_file, "pagi-server listening on", proc)
        assert f"TAGGED INFO pagi.server pagi-server listening on http://127.0.0.1:{port}" in text
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
    finally:
        proc.stop()
    assert proc.proc.returncode == 0
    assert "listening on" not in proc.stderr  # the file's handler replaced the default one
    assert "TAGGED INFO pagi.server received SIGTERM: draining" in log_file.read_text()


def test_log_config_that_dictconfig_refuses_names_the_file(tmp_path: Path) -> None:
    write_app(tmp_path, "ids.py", IDS_APP)
    path = tmp_path / "logging.json"
    path.write_text(json.dumps({"version": 1, "handlers": {"h": {"class": "no.such.Handler"}}}))
    done = run_cli(["ids.py", "--log-config", str(path)], tmp_path)
    assert done.returncode == 2
    assert f"--log-config {path}" in done.stderr
    assert "Traceback" not in done.stderr


# --- --user / --group ---------------------------------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize(
    ("flag", "name", "message"),
    [
        ("--user", "pagi-no-such-user", "--user pagi-no-such-user: no such user"),
        ("--group", "pagi-no-such-group", "--group pagi-no-such-group: no such group"),
    ],
)
def test_unknown_user_or_group_is_named_and_exits_2(
    tmp_path: Path, workers: str, flag: str, name: str, message: str
) -> None:
    write_app(tmp_path, "ids.py", IDS_APP)
    done = run_cli(
        ["ids.py", "--port", str(free_port()), "--workers", workers, flag, name], tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="as root the switch succeeds")
def test_switching_user_without_root_is_refused_clearly(tmp_path: Path) -> None:
    write_app(tmp_path, "ids.py", IDS_APP)
    done = run_cli(["ids.py", "--port", str(free_port()), "--user", "root"], tmp_path)
    assert done.returncode == 2, done.stderr
    assert "cannot switch to user root" in done.stderr and "needs root" in done.stderr


@pytest.mark.skipif(
    os.geteuid() != 0, reason="a real privilege drop needs the tests to run as root"
)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_root_drops_to_nobody_after_binding_and_serves(tmp_path: Path, workers: str) -> None:
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user named nobody on this machine")
    write_app(tmp_path, "ids.py", IDS_APP)
    port = free_port()
    proc = ServerProcess(
        ["ids.py", "--port", str(port), "--workers", workers, "--user", "nobody"], tmp_path
    )
    try:
        proc.wait_port(port)
        pid, uid, gid = httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text.split()
    finally:
        proc.stop()
    assert (int(uid), int(gid)) == (nobody.pw_uid, nobody.pw_gid)
    if workers == "1":
        assert int(pid) == proc.proc.pid  # the process that bound the port as root
    else:
        assert int(pid) != proc.proc.pid  # a worker forked after the supervisor dropped
    assert f"running as uid {nobody.pw_uid} gid {nobody.pw_gid}" in proc.stderr
    assert proc.proc.returncode == 0, proc.stderr


# --- --bind fd://N ------------------------------------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
def test_bind_fd_serves_on_an_inherited_socket_beside_a_tcp_address(
    tmp_path: Path, workers: str
) -> None:
    write_app(tmp_path, "ids.py", IDS_APP)
    inherited = socket.create_server(("127.0.0.1", 0))
    fd_port = inherited.getsockname()[1]
    fd = inherited.fileno()
    tcp_port = free_port()
    proc = ServerProcess(
        [
            "ids.py",
            "--workers",
            workers,
            "--bind",
            f"fd://{fd}",
            "--bind",
            f"127.0.0.1:{tcp_port}",
        ],
        tmp_path,
        pass_fds=(fd,),
    )
    inherited.close()  # only the server holds it now
    try:
        proc.wait_port(fd_port)
        proc.wait_port(tcp_port)
        via_fd = httpx.get(f"http://127.0.0.1:{fd_port}/", timeout=5)
        via_tcp = httpx.get(f"http://127.0.0.1:{tcp_port}/", timeout=5)
    finally:
        proc.stop()
    assert via_fd.status_code == via_tcp.status_code == 200
    assert proc.proc.returncode == 0, proc.stderr
    with pytest.raises(OSError):  # closed with the server: nobody else held it
        socket.create_connection(("127.0.0.1", fd_port), timeout=1).close()


def test_bind_fd_that_is_not_open_is_an_error(tmp_path: Path) -> None:
    write_app(tmp_path, "ids.py", IDS_APP)
    done = run_cli(["ids.py", "--bind", "fd://987"], tmp_path)
    assert done.returncode != 0
    assert "987" in done.stderr
    assert "Traceback" not in done.stderr
