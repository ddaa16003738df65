"""Operating pagi-server (issue 16): the bugs found running it, configuration, process model.

Real processes where the behaviour is about processes and signals; the
in-process server where a socket is enough.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from server_helpers import echo_scope, read_until_close, serve_app
from server_subprocess import (
    PID_APP,
    WORKER_APP,
    ServerProcess,
    children,
    free_port,
    run_cli,
    wait_children,
    write_app,
)

from pagi.server import Server
from pagi.server.app_loading import load_object
from pagi.server.cli import main
from pagi.server.lifespan import LifespanFailure

trustme = pytest.importorskip("trustme")

# --- helpers ---------------------------------------------------------------------------------


def wait_for(predicate: Any, timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def pid_of(port: int) -> int:
    return int(httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text)


@pytest.fixture(scope="module")
def ca() -> Any:
    return trustme.CA()


@pytest.fixture
def certs(ca: Any, tmp_path: Path) -> dict[str, Path]:
    server = ca.issue_cert("127.0.0.1", "localhost")
    paths = {"cert": tmp_path / "cert.pem", "key": tmp_path / "key.pem", "ca": tmp_path / "ca.pem"}
    server.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    for blob in server.cert_chain_pems[1:]:
        blob.write_to_path(str(paths["cert"]), append=True)
    server.private_key_pem.write_to_path(str(paths["key"]))
    ca.cert_pem.write_to_path(str(paths["ca"]))
    return paths


# --- bugs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
def test_bad_certificate_path_is_named_and_never_respawned(tmp_path: Path, workers: str) -> None:
    write_app(tmp_path, "app.py", PID_APP)
    started = time.monotonic()
    done = run_cli(
        [
            "app.py",
            "--workers",
            workers,
            "--port",
            str(free_port()),
            "--ssl-certfile",
            "missing.pem",
            "--ssl-keyfile",
            "missing.key",
        ],
        tmp_path,
    )
    assert done.returncode == 2
    assert "--ssl-certfile missing.pem: no such file" in done.stderr
    assert "Traceback" not in done.stderr and "respawning" not in done.stderr
    assert time.monotonic() - started < 10


def test_bad_certificate_content_is_named(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("not a certificate\n")
    write_app(tmp_path, "app.py", PID_APP)
    done = run_cli(["app.py", "--ssl-certfile", "c.pem", "--ssl-keyfile", "c.pem"], tmp_path)
    assert done.returncode == 2
    assert "--ssl-certfile c.pem" in done.stderr and "PEM" in done.stderr


def test_port_in_use_with_workers_is_one_line(tmp_path: Path) -> None:
    write_app(tmp_path, "app.py", PID_APP)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_cli(["app.py", "--workers", "2", "--port", str(port)], tmp_path)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_worker_failing_at_startup_stops_the_supervisor(tmp_path: Path) -> None:
    write_app(tmp_path, "app.py", "raise RuntimeError('import-time failure')\n")
    done = run_cli(["app.py", "--workers", "2", "--port", str(free_port())], tmp_path)
    assert done.returncode != 0
    assert done.stderr.count("respawning") == 0


SHUTDOWN_LOGGING_APP = PID_APP.replace(
    '                await send({"type": "lifespan.shutdown.complete"})',
    '                open("shutdown-ran", "a").write("x")\n'
    '                await send({"type": "lifespan.shutdown.complete"})',
)


def test_sighup_single_process_drains_and_restarts_in_place(tmp_path: Path) -> None:
    write_app(tmp_path, "app.py", SHUTDOWN_LOGGING_APP)
    port = free_port()
    proc = ServerProcess(["app.py", "--port", str(port), "--lifespan", "on"], tmp_path)
    try:
        proc.wait_port(port)
        first = pid_of(port)
        proc.signal(signal.SIGHUP)
        wait_for(lambda: (tmp_path / "shutdown-ran").exists(), what="lifespan shutdown")
        wait_for(lambda: proc.stderr.count("listening on") >= 2, what="the restarted server")
        assert pid_of(port) == first  # the same process, re-executed with its socket
        assert proc.proc.poll() is None
        proc.signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert "Ctrl-C again stops at once" in proc.stderr
        assert "up to 30s" in proc.stderr
    finally:
        proc.stop()


def test_signals_in_single_process_do_not_stop_it(tmp_path: Path) -> None:
    write_app(tmp_path, "app.py", PID_APP)
    port = free_port()
    proc = ServerProcess(["app.py", "--port", str(port)], tmp_path)
    try:
        proc.wait_port(port)
        for signum in (signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR2, signal.SIGUSR1):
            proc.signal(signum)
        wait_for(lambda: "log files reopened" in proc.stderr, what="USR1")
        wait_for(lambda: proc.stderr.count("ignored") >= 3, what="the warnings")
        assert pid_of(port) == proc.proc.pid
    finally:
        proc.stop()


@pytest.mark.anyio
async def test_proxy_headers_apply_on_unix_sockets(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    async with serve_app(echo_scope, uds=path, proxy_headers=True):
        transport = httpx.AsyncHTTPTransport(uds=path)
        async with httpx.AsyncClient(transport=transport) as client:
            reply = await client.get(
                "http://x/",
                headers={"x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https"},
            )
        data = reply.json()
    assert data["client"] == ["203.0.113.7", 0]
    assert data["scheme"] == "https"


@pytest.mark.anyio
async def test_no_server_header_also_on_server_generated_responses() -> None:
    async with serve_app(echo_scope, server_header=False) as server:
        stream = await server.connect()
        await stream.send(b"BAD\r\n\r\n")
        head = await read_until_close(stream)
    assert head.startswith(b"HTTP/1.1 400") and b"server:" not in head.lower()


def test_help_texts(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "a string of %-atoms" in text  # not %-formatted by argparse
    assert "(default: None)" not in text and "(default: )" not in text
    assert "-b BACKLOG, --backlog" in text and "-w WORKERS, --workers" in text
    assert "-p PORT, --port" in text


def test_server_class_as_dotted_module_class() -> None:
    assert load_object("pagi.server.server.Server", default_attr="Server") is Server


@pytest.mark.anyio
async def test_lifespan_raising_after_startup_received_is_a_failure() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            raise RuntimeError("db is down")

    server = Server(app, port=0, access_log=None, quiet=True, lifespan="auto")
    with pytest.raises(LifespanFailure, match=r"raised during lifespan startup.*db is down"):
        await server.serve()


def test_access_log_bad_path_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--access-log", "/no/such/dir/access.log", "x:app"])
    assert info.value.code == 2
    assert "--access-log /no/such/dir/access.log: No such file" in capsys.readouterr().err


@pytest.mark.anyio
async def test_request_waiting_at_shutdown_timeout_gets_503() -> None:
    entered = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        entered.set()
        await anyio.sleep(30)

    async with serve_app(app, shutdown_timeout=0.2) as server:
        stream = await server.connect()
        await stream.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        await entered.wait()
        server.server.request_shutdown()
        reply = await read_until_close(stream)
    assert reply.startswith(b"HTTP/1.1 503"), reply


@pytest.mark.anyio
async def test_plain_http_on_the_tls_port_gets_400(
    certs: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", "pagi.server")
    async with serve_app(
        echo_scope, ssl_certfile=str(certs["cert"]), ssl_keyfile=str(certs["key"])
    ) as server:
        stream = await server.connect()
        await stream.send(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        reply = await read_until_close(stream)
    assert reply.startswith(b"HTTP/1.0 400") and b"speaks HTTPS" in reply
    assert any("plain HTTP" in r.getMessage() for r in caplog.records)


# --- TLS options ---------------------------------------------------------------------------------


def _client_context(ca: Any, cert: Any | None = None, max_version: Any = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if cert is not None:
        cert.configure_cert(context)
    if max_version is not None:
        context.maximum_version = max_version
    return context


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["optional", "required"])
async def test_client_certificates(ca: Any, certs: dict[str, Path], mode: str) -> None:
    client_cert = ca.issue_cert("alice@example.com", common_name="alice")
    async with serve_app(
        echo_scope,
        ssl_certfile=str(certs["cert"]),
        ssl_keyfile=str(certs["key"]),
        ssl_ca_certs=str(certs["ca"]),
        ssl_cert_reqs=mode,
    ) as server:
        url = f"https://127.0.0.1:{server.port}/"
        async with httpx.AsyncClient(verify=_client_context(ca, client_cert)) as client:
            data = (await client.get(url)).json()
        assert data["extensions"]["tls"]["client_cert_name"].startswith("CN=alice,")
        assert data["extensions"]["tls"]["client_cert_chain"]
        async with httpx.AsyncClient(verify=_client_context(ca)) as client:
            if mode == "required":
                with pytest.raises(httpx.HTTPError):
                    await client.get(url)
            else:
                data = (await client.get(url)).json()
                assert data["extensions"]["tls"]["client_cert_name"] is None


@pytest.mark.anyio
async def test_min_version_and_key_password(ca: Any, tmp_path: Path) -> None:
    server_cert = ca.issue_cert("127.0.0.1")
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(server_cert.private_key_pem.bytes(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret"),
    )
    (tmp_path / "key.pem").write_bytes(encrypted)
    server_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    options = {"ssl_certfile": str(tmp_path / "cert.pem"), "ssl_keyfile": str(tmp_path / "key.pem")}
    async with serve_app(
        echo_scope, ssl_keyfile_password="s3cret", ssl_min_version="1.3", **options
    ) as server:
        url = f"https://127.0.0.1:{server.port}/"
        async with httpx.AsyncClient(verify=_client_context(ca)) as client:
            assert (await client.get(url)).json()["extensions"]["tls"]["tls_version"] == 0x0304
        old = _client_context(ca, max_version=ssl.TLSVersion.TLSv1_2)
        async with httpx.AsyncClient(verify=old) as client:
            with pytest.raises(httpx.HTTPError):
                await client.get(url)


# --- configuration ---------------------------------------------------------------------------


def test_precedence_cli_env_file_default_and_print_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "environ", os.environ.copy())  # --env-file writes to it
    (tmp_path / "pyproject.toml").write_text(
        "[tool.pagi-server]\nport = 7001\nmax-body-size = 11\nkeepalive_timeout = 7.5\n"
        'header = ["x-a: 1"]\n'
    )
    (tmp_path / ".env").write_text("PAGI_MAX_BODY_SIZE=22\nPAGI_HTTP2=false\n")
    main(["--env-file", ".env", "--keepalive-timeout", "9", "--print-config"])
    out = capsys.readouterr().out
    lines = {line.split(" = ")[0]: line for line in out.splitlines() if " = " in line}
    assert lines["port"] == "port = 7001  # pyproject.toml [tool.pagi-server]"
    assert lines["max-body-size"] == "max-body-size = 22  # environment PAGI_MAX_BODY_SIZE"
    assert lines["keepalive-timeout"] == "keepalive-timeout = 9.0  # command line"
    assert lines["http2"] == "http2 = false  # environment PAGI_HTTP2"
    assert lines["header"] == 'header = ["x-a: 1"]  # pyproject.toml [tool.pagi-server]'
    assert lines["backlog"] == "backlog = 2048  # default"


def test_config_file_unknown_key_suggests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pagi.toml").write_text("max-body-sise = 3\n")
    with pytest.raises(SystemExit) as info:
        main(["--config", str(tmp_path / "pagi.toml"), "--print-config"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown option 'max-body-sise'; did you mean 'max-body-size'?" in err


def test_bad_env_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PAGI_WORKERS", "many")
    with pytest.raises(SystemExit):
        main(["--print-config"])
    assert "environment PAGI_WORKERS: workers = 'many'" in capsys.readouterr().err


def test_headers_date_factory_app_dir_json_logs(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    write_app(
        tmp_path / "lib",
        "made.py",
        """
        def make():
            async def app(scope, receive, send):
                if scope["type"] != "http":
                    raise RuntimeError("http only")
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"made"})
            return app
        """,
    )
    port = free_port()
    proc = ServerProcess(
        [
            "made:make",
            "--factory",
            "--app-dir",
            "lib",
            "-p",
            str(port),
            "--no-date-header",
            "--header",
            "x-frame-options: DENY",
            "--log-format",
            "json",
            "--access-log",
            "-",
        ],
        tmp_path,
    )
    try:
        proc.wait_port(port)
        reply = httpx.get(f"http://127.0.0.1:{port}/p?q=1", headers={"x-request-id": "r-1"})
        assert reply.text == "made"
        assert reply.headers["x-frame-options"] == "DENY" and "date" not in reply.headers
        records = wait_for(
            lambda: [
                json.loads(line) for line in proc.stderr.splitlines() if '"pagi.access"' in line
            ],
            what="the access record",
        )
    finally:
        proc.stop()
    for line in proc.stderr.splitlines():
        json.loads(line)  # every line of the error and access logs is JSON
    (access,) = records
    assert access["path"] == "/p" and access["status"] == 200 and access["request_id"] == "r-1"
    assert access["bytes"] == 4 and access["protocol"] == "HTTP/1.1" and "duration_ms" in access


# --- listeners -------------------------------------------------------------------------------


def test_several_binds_and_uds_mode(tmp_path: Path) -> None:
    write_app(tmp_path, "app.py", PID_APP)
    port = free_port()
    sock_path = tmp_path / "s.sock"
    proc = ServerProcess(
        [
            "app.py",
            "--bind",
            f"127.0.0.1:{port}",
            "--bind",
            f"unix:{sock_path}",
            "--uds-mode",
            "660",
        ],
        tmp_path,
    )
    try:
        proc.wait_port(port)
        proc.wait_path(sock_path)
        assert oct(sock_path.stat().st_mode & 0o777) == "0o660"
        transport = httpx.HTTPTransport(uds=str(sock_path))
        with httpx.Client(transport=transport) as client:
            assert int(client.get("http://x/").text) == proc.proc.pid
        assert pid_of(port) == proc.proc.pid
    finally:
        proc.stop()
    assert not sock_path.exists()


def test_systemd_socket_activation(tmp_path: Path) -> None:
    write_app(tmp_path, "app.py", PID_APP)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    fd = listener.fileno()
    out = (tmp_path / "sd.err").open("wb")
    proc = subprocess.Popen(
        ["sh", "-c", f'LISTEN_PID=$$ LISTEN_FDS=1 exec "{sys.executable}" -m pagi.server app.py'],
        cwd=tmp_path,
        stderr=out,
        env={**os.environ, "PAGI_ENV": "production"},
        pass_fds=(fd, 3),  # 3 as well: kept open after preexec_fn put the socket there
        preexec_fn=lambda: os.dup2(fd, 3),
    )
    listener.close()
    try:
        log = tmp_path / "sd.err"

        def listening_or_dead() -> bool:
            return b"listening on" in log.read_bytes() or proc.poll() is not None

        wait_for(listening_or_dead, what="listen")
        assert proc.poll() is None, log.read_text()  # a server that died says why
        assert pid_of(port) == proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        out.close()


# --- workers -----------------------------------------------------------------------------------


def _worker_server(tmp_path: Path, *extra: str) -> tuple[ServerProcess, int]:
    write_app(tmp_path, "wapp.py", WORKER_APP)
    port = free_port()
    proc = ServerProcess(
        ["wapp.py", "--workers", "2", "--port", str(port), "--shutdown-timeout", "5", *extra],
        tmp_path,
    )
    proc.wait_port(port)
    wait_children(proc.proc.pid, 2)
    wait_for(lambda: proc.stderr.count("listening on") >= 2, what="workers ready")
    return proc, port


def _hammer(port: int, stop: threading.Event, results: list[Any]) -> None:
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            try:
                reply = client.get(f"http://127.0.0.1:{port}/", headers={"connection": "close"})
                results.append(reply.json()["pid"] if reply.status_code == 200 else reply)
            except httpx.HTTPError as exc:
                results.append(exc)


def test_ttin_ttou_change_the_worker_count(tmp_path: Path) -> None:
    proc, _ = _worker_server(tmp_path)
    try:
        proc.signal(signal.SIGTTIN)
        wait_children(proc.proc.pid, 3)
        proc.signal(signal.SIGTTOU)
        wait_children(proc.proc.pid, 2)
        proc.signal(signal.SIGUSR2)  # logged, not fatal
        wait_for(lambda: "SIGUSR2 ignored" in proc.stderr, what="USR2")
        assert proc.proc.poll() is None
    finally:
        proc.stop()


@pytest.mark.parametrize(
    "extra",
    [("--max-requests", "15", "--max-requests-jitter", "5"), ("--reuse-port",)],
    ids=["max-requests", "rolling-sighup-reuse-port"],
)
def test_workers_replaced_under_load_without_a_failed_request(
    tmp_path: Path, extra: tuple[str, ...]
) -> None:
    proc, port = _worker_server(tmp_path, *extra)
    before = children(proc.proc.pid)
    results: list[Any] = []
    stop = threading.Event()
    thread = threading.Thread(target=_hammer, args=(port, stop, results))
    thread.start()
    try:
        if "--reuse-port" in extra:
            wait_for(lambda: len(results) > 10, what="some requests")
            proc.signal(signal.SIGHUP)
            wait_for(lambda: not (children(proc.proc.pid) & before), what="all workers replaced")
            wait_for(lambda: len(set(results[-20:]) - before) >= 1, what="answers from new ones")
        else:
            wait_for(lambda: len({r for r in results if isinstance(r, int)}) >= 4, 30, "recycle")
    finally:
        stop.set()
        thread.join(15)
        proc.stop()
    failures = [r for r in results if not isinstance(r, int)]
    assert failures == []
    assert len(results) > 20


def _post_block(port: int) -> None:
    try:
        httpx.post(f"http://127.0.0.1:{port}/block", timeout=10)
    except httpx.HTTPError:
        pass  # its worker is killed: no answer is the expected outcome


def test_worker_timeout_kills_a_blocked_worker(tmp_path: Path) -> None:
    app = WORKER_APP.replace("time.sleep(0.4)", "time.sleep(30)")
    write_app(tmp_path, "wapp.py", app)
    port = free_port()
    proc = ServerProcess(
        ["wapp.py", "--workers", "2", "--port", str(port), "--worker-timeout", "1"], tmp_path
    )
    try:
        proc.wait_port(port)
        wait_for(lambda: proc.stderr.count("listening on") >= 2, what="workers ready")
        before = children(proc.proc.pid)
        threading.Thread(target=_post_block, args=(port,), daemon=True).start()
        wait_for(lambda: (tmp_path / "block-started").exists(), what="a blocked worker")
        wait_for(lambda: "sent no heartbeat" in proc.stderr, 10, "the kill")
        wait_for(lambda: len(children(proc.proc.pid) - before) == 1, what="a replacement")
        assert "worker" in proc.stderr and "--worker-timeout 1" in proc.stderr
    finally:
        proc.stop()
