"""Lifespan over a real server (spec-digest section 7, R-LIFE-*)."""

from __future__ import annotations

import logging
import socket
from typing import Any

import anyio
import httpx
import pytest
from server_helpers import hello, read_response, until

from pagi.server import LifespanFailure, Server

pytestmark = pytest.mark.anyio


def lifespan_app(
    log: list[str],
    *,
    startup: str = "complete",
    shutdown: str = "complete",
    startup_gate: anyio.Event | None = None,
    on_startup: Any = None,
) -> Any:
    """An app whose lifespan replies as told and records what happened, in order."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            log.append("lifespan-called")
            while True:
                event = await receive()
                log.append(event["type"])
                if event["type"] == "lifespan.startup":
                    if startup_gate is not None:
                        await startup_gate.wait()  # a slow startup, as long as the test says
                    if on_startup is not None:
                        on_startup(scope)
                    if startup == "complete":
                        await send({"type": "lifespan.startup.complete"})
                    elif startup == "failed":
                        await send({"type": "lifespan.startup.failed", "message": "db is down"})
                        return
                    elif startup == "hang":
                        await anyio.sleep_forever()
                    log.append("startup-replied")
                else:
                    if shutdown == "failed":
                        await send({"type": "lifespan.shutdown.failed", "message": "flush lost"})
                    else:
                        await send({"type": "lifespan.shutdown.complete"})
                    log.append("shutdown-replied")
                    return
        log.append("request")
        await hello(scope, receive, send)

    return app


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(url)


async def test_startup_completes_before_first_connection_is_served_R_LIFE_10() -> None:
    # The socket is bound and listening before serve() runs, so the client can connect
    # during a slow startup; the request must still wait for startup.complete.
    log: list[str] = []
    gate = anyio.Event()
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = Server(
        lifespan_app(log, startup_gate=gate),
        sockets=[sock],
        lifespan="on",
        access_log=None,
        quiet=True,
        shutdown_timeout=2,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        await until(lambda: "lifespan.startup" in log, "the app to receive lifespan.startup")
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            # Negative check: give a wrong server the time to answer before startup is done.
            await anyio.sleep(0.2)
            assert "request" not in log
            gate.set()
            response = await read_response(stream)
        server.request_shutdown()
    assert response.startswith(b"HTTP/1.1 200")
    assert log.index("startup-replied") < log.index("request")


async def test_state_is_shallow_copied_into_each_request_R_LIFE_30_33(serve: Any) -> None:
    shared: list[str] = []
    seen: list[dict[str, Any]] = []

    def fill(scope: dict[str, Any]) -> None:
        scope["state"]["shared"] = shared
        scope["state"]["name"] = "startup"

    inner = lifespan_app([], on_startup=fill)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append(scope["state"])
            scope["state"]["shared"].append(scope["path"])
            scope["state"]["name"] = scope["path"]  # a top-level key: private to this copy
        await inner(scope, receive, send)

    async with serve(app, lifespan="on") as running, httpx.AsyncClient() as client:
        await client.get(running.url + "/a")
        await client.get(running.url + "/b")
    assert seen[0] is not seen[1]
    assert seen[0]["shared"] is seen[1]["shared"] is shared
    assert shared == ["/a", "/b"]
    assert seen[0]["name"] == "/a" and seen[1]["name"] == "/b"


async def test_lifespan_scope_keys_single_process_R_LIFE_2(serve: Any) -> None:
    scopes: list[dict[str, Any]] = []
    async with serve(lifespan_app([], on_startup=scopes.append), lifespan="on"):
        pass
    scope = scopes[0]
    assert scope["type"] == "lifespan"
    assert scope["pagi"]["version"] == "0.3"
    assert isinstance(scope["pagi"]["spec_version"], str)
    assert scope["pagi"]["is_worker"] == 0
    assert type(scope["pagi"]["is_worker"]) is int
    assert scope["pagi"].get("worker_num") is None
    assert isinstance(scope["state"], dict)


async def test_lifespan_scope_keys_in_a_worker_R_LIFE_2() -> None:
    scopes: list[dict[str, Any]] = []
    sock = socket.create_server(("127.0.0.1", 0))
    server = Server(
        lifespan_app([], on_startup=scopes.append),
        sockets=[sock],
        worker_num=2,
        lifespan="on",
        access_log=None,
        quiet=True,
    )
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        server.request_shutdown()
    assert scopes[0]["pagi"]["is_worker"] == 1
    assert type(scopes[0]["pagi"]["is_worker"]) is int
    assert scopes[0]["pagi"]["worker_num"] == 2


async def test_startup_failed_raises_and_port_never_accepts_R_LIFE_11() -> None:
    log: list[str] = []
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    server = Server(
        lifespan_app(log, startup="failed"),
        port=port,
        lifespan="auto",
        access_log=None,
        quiet=True,
    )
    with pytest.raises(LifespanFailure, match="db is down"):
        await server.serve()
    with pytest.raises(OSError):
        await anyio.connect_tcp("127.0.0.1", port)
    assert "request" not in log


@pytest.mark.parametrize("mode", ["auto", "on", "off"])
async def test_startup_failed_aborts_in_every_mode_but_off_R_LIFE_11(mode: str) -> None:
    server = Server(
        lifespan_app([], startup="failed"), port=0, lifespan=mode, access_log=None, quiet=True
    )
    if mode == "off":
        async with anyio.create_task_group() as tg:
            await tg.start(server.serve)
            server.request_shutdown()
        return
    with pytest.raises(LifespanFailure):
        await server.serve()


async def raising_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        raise RuntimeError("no lifespan here")
    await hello(scope, receive, send)


async def returning_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        return
    await hello(scope, receive, send)


@pytest.mark.parametrize("app", [raising_app, returning_app], ids=["raises", "returns"])
async def test_declined_lifespan_in_auto_mode_continues_R_LIFE_20_21(
    serve: Any, app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pagi.server")
    async with serve(app, lifespan="auto") as running:
        response = await _get(running.url + "/")
    assert response.status_code == 200
    notes = [r for r in caplog.records if "not supported" in r.getMessage()]
    assert notes and notes[0].levelno == logging.INFO


@pytest.mark.parametrize("app", [raising_app, returning_app], ids=["raises", "returns"])
async def test_declined_lifespan_in_on_mode_fails_R_LIFE_20(app: Any) -> None:
    server = Server(app, port=0, lifespan="on", access_log=None, quiet=True)
    with pytest.raises(LifespanFailure, match="does not support lifespan"):
        await server.serve()


async def test_declined_lifespan_gets_no_shutdown_event_R_LIFE_21(serve: Any) -> None:
    calls: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            calls.append(await receive())
            return
        await hello(scope, receive, send)

    async with serve(app, lifespan="auto"):
        pass
    assert calls == [{"type": "lifespan.startup"}]


async def test_mode_off_never_calls_app_with_lifespan(serve: Any) -> None:
    log: list[str] = []
    async with serve(lifespan_app(log), lifespan="off") as running:
        response = await _get(running.url + "/")
    assert response.status_code == 200
    assert log == ["request"]


async def test_startup_timeout_fails_without_hanging_R_LIFE_22() -> None:
    server = Server(
        lifespan_app([], startup="hang"),
        port=0,
        lifespan="auto",
        lifespan_startup_timeout=0.2,
        access_log=None,
        quiet=True,
    )
    with anyio.fail_after(3):
        with pytest.raises(LifespanFailure, match="did not answer"):
            await server.serve()


async def test_shutdown_sent_after_connections_drained_R_LIFE_13_14(serve: Any) -> None:
    log: list[str] = []
    inner = lifespan_app(log)

    request_started = anyio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            log.append("request-start")
            request_started.set()
            await anyio.sleep(0.3)  # in flight while the drain begins
            await hello(scope, receive, send)
            log.append("request-end")
            return
        await inner(scope, receive, send)

    async with anyio.create_task_group() as tg:
        async with serve(app, lifespan="on") as running:
            tg.start_soon(_get, running.url + "/")
            with anyio.fail_after(5):
                await request_started.wait()
    assert log.index("request-end") < log.index("lifespan.shutdown")
    assert log[-1] == "shutdown-replied"


async def test_shutdown_failed_is_logged_R_LIFE_15(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve(lifespan_app([], shutdown="failed"), lifespan="on"):
        pass
    errors = [r for r in caplog.records if "flush lost" in r.getMessage()]
    assert errors and errors[0].levelno >= logging.WARNING


async def test_shutdown_timeout_bounds_lifespan_shutdown(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await anyio.sleep_forever()

    with anyio.fail_after(3):
        async with serve(app, lifespan="on", shutdown_timeout=0.2):
            pass
    assert any("lifespan.shutdown" in r.getMessage() for r in caplog.records)


async def test_lifespan_task_raising_after_startup_is_logged_R_LIFE_23(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            raise RuntimeError("background job died")
        await hello(scope, receive, send)

    def logged() -> bool:
        errors = [r.exc_info[1] for r in caplog.records if r.exc_info]
        return any("background job died" in str(error) for error in errors)

    async with serve(app, lifespan="on") as running:
        await until(logged, "the lifespan task's error to be logged")
        response = await _get(running.url + "/")  # keeps serving, degraded
    assert response.status_code == 200
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors
    assert any("background job died" in str(r.exc_info[1]) for r in errors if r.exc_info)


async def test_clean_return_after_startup_is_fine_R_LIFE_12(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            return
        await hello(scope, receive, send)

    async with serve(app, lifespan="on") as running:
        response = await _get(running.url + "/")
    assert response.status_code == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_bad_lifespan_event_fails_startup() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.shutdown.complete"})  # wrong reply to startup

    server = Server(app, port=0, lifespan="on", access_log=None, quiet=True)
    with pytest.raises(LifespanFailure):
        await server.serve()


async def test_bind_failure_after_startup_still_runs_shutdown_R_LIFE_14() -> None:
    log: list[str] = []
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        server = Server(lifespan_app(log), port=port, lifespan="on", access_log=None, quiet=True)
        with pytest.raises(OSError):
            await server.serve()
    assert log[-2:] == ["lifespan.shutdown", "shutdown-replied"]
