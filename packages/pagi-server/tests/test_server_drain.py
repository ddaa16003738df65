"""Graceful drain: Server.request_shutdown() and shutdown_timeout (server-digest 1.4)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from server_helpers import hello, read_response, until
from server_subprocess import PID_APP, ServerProcess, free_port, write_app

from pagi.server import Server

pytestmark = pytest.mark.anyio


class SlowApp:
    """Answers ``hello`` after ``delay`` seconds, or once ``release`` is set when no delay.

    ``started`` is set when a request is in the app, so a test starts the
    drain exactly while it is in flight.
    """

    def __init__(self, delay: float | None = None) -> None:
        self.delay = delay
        self.events: list[str] = []
        self.started = anyio.Event()
        self.release = anyio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.events.append("start")
        self.started.set()
        if self.delay is None:
            await self.release.wait()
        else:
            await anyio.sleep(self.delay)  # the in-flight work the drain must wait for
        await hello(scope, receive, send)
        self.events.append("end")

    async def wait_started(self) -> None:
        with anyio.fail_after(5):
            await self.started.wait()


async def test_in_flight_request_completes_then_server_stops(serve: Any) -> None:
    app = SlowApp(0.4)
    results: list[httpx.Response] = []

    async def fetch(url: str) -> None:
        async with httpx.AsyncClient() as client:
            results.append(await client.get(url))

    async with anyio.create_task_group() as tg:
        async with serve(app, shutdown_timeout=5) as running:
            tg.start_soon(fetch, running.url + "/")
            await app.wait_started()
            running.server.request_shutdown()
        app.events.append("serve returned")
    assert results[0].status_code == 200
    assert results[0].text == "hello"
    # The app finished its response before serve() returned, and the port is closed.
    assert app.events == ["start", "end", "serve returned"]
    with pytest.raises(OSError):
        await anyio.connect_tcp(running.host, running.port)


async def test_response_to_in_flight_request_says_connection_close(serve: Any) -> None:
    app = SlowApp()
    async with serve(app, shutdown_timeout=5) as running:
        stream = await running.connect()
        await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await app.wait_started()
        running.server.request_shutdown()
        await until(lambda: running.server.ctx.draining, "the drain to start")
        app.release.set()
        response = await read_response(stream)
        assert response.startswith(b"HTTP/1.1 200")
        assert b"connection: close" in response.lower()
        with anyio.fail_after(2):
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                while True:
                    await stream.receive()
        await stream.aclose()


async def test_new_connection_refused_once_shutdown_starts(serve: Any) -> None:
    app = SlowApp()  # held in the app until the test has seen the listener closed
    async with serve(app, shutdown_timeout=5) as running:
        stream = await running.connect()
        await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await app.wait_started()
        running.server.request_shutdown()
        with anyio.fail_after(5):
            while True:  # the listener closes as the drain starts, not after it
                try:
                    probe = await anyio.connect_tcp(running.host, running.port)
                except OSError:
                    break
                await probe.aclose()
                await anyio.sleep(0.01)  # poll interval
        assert app.events == ["start"]  # the request is still in flight
        app.release.set()
        response = await read_response(stream)
        assert response.startswith(b"HTTP/1.1 200")
        await stream.aclose()


async def test_idle_keepalive_connections_close_promptly(serve: Any) -> None:
    async with serve(hello, shutdown_timeout=10, keepalive_timeout=30) as running:
        stream = await running.connect()
        await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = await read_response(stream)
        assert response.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        running.server.request_shutdown()
        with anyio.fail_after(2):
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                while True:
                    await stream.receive()
        assert time.monotonic() - started < 1.0
        await stream.aclose()


async def test_shutdown_timeout_aborts_with_server_shutdown_reason_R_CONN(serve: Any) -> None:
    reasons: list[Any] = []
    started = anyio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        connection = scope["pagi.connection"]
        connection.on_disconnect(lambda reason: reasons.append(("callback", reason)))
        started.set()
        try:
            await anyio.sleep(30)
        finally:
            reasons.append(("reason", connection.disconnect_reason()))
            reasons.append(("connected", connection.is_connected()))

    t0 = time.monotonic()
    async with serve(app, shutdown_timeout=0.3) as running:
        stream = await running.connect()
        await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await started.wait()
        running.server.request_shutdown()
    assert time.monotonic() - t0 < 3
    assert ("callback", "server_shutdown") in reasons
    assert ("reason", "server_shutdown") in reasons
    assert ("connected", False) in reasons
    await stream.aclose()


async def test_request_shutdown_before_serve_stops_right_after_start() -> None:
    server = Server(hello, port=0, access_log=None, quiet=True, lifespan="off")
    server.request_shutdown()
    with anyio.fail_after(3):
        await server.serve()


# --- signals, in a real process -----------------------------------------------------------


def _fetch_in_thread(url: str, results: list[Any]) -> threading.Thread:
    def fetch() -> None:
        try:
            results.append(httpx.get(url, timeout=10))
        except Exception as exc:
            results.append(exc)

    thread = threading.Thread(target=fetch)
    thread.start()
    return thread


def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    write_app(tmp_path, "pid.py", PID_APP)
    port = free_port()
    proc = ServerProcess(["pid.py", "--port", str(port), "--lifespan", "on"], tmp_path)
    try:
        proc.wait_port(port)
        results: list[Any] = []
        thread = _fetch_in_thread(f"http://127.0.0.1:{port}/slow", results)
        proc.wait_path(tmp_path / "slow-started")  # the request is in the app's 1 s sleep
        proc.signal(signal.SIGTERM)
        thread.join(10)
        assert proc.wait(10) == 0
    finally:
        proc.stop()
    (response,) = results
    assert isinstance(response, httpx.Response), response
    assert response.status_code == 200
    assert response.text == str(proc.proc.pid)
    assert "draining" in proc.stderr


def test_second_sigint_forces_exit(tmp_path: Path) -> None:
    write_app(tmp_path, "pid.py", PID_APP)
    port = free_port()
    proc = ServerProcess(["pid.py", "--port", str(port), "--shutdown-timeout", "30"], tmp_path)
    try:
        proc.wait_port(port)
        results: list[Any] = []
        thread = _fetch_in_thread(f"http://127.0.0.1:{port}/hang", results)
        proc.wait_path(tmp_path / "hang-started")
        proc.signal(signal.SIGINT)
        proc.wait_stderr("received SIGINT: draining")
        assert proc.proc.poll() is None  # still draining the hanging request
        started = time.monotonic()
        proc.signal(signal.SIGINT)
        code = proc.wait(5)
        assert time.monotonic() - started < 3
        assert code != 0
        thread.join(10)
    finally:
        proc.stop()
    # The hanging request was cut off: an error, or the 503 a request still waiting
    # for its response gets when the server stops.
    assert isinstance(results[0], Exception) or results[0].status_code == 503
