"""Maintenance, Healthcheck, RequestId (+ logging filter), Timing and AccessLog."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import anyio
import pytest

from pagi.spec import Receive, Scope, Send
from pagi.tools import SSE, PlainTextResponse, Request, Router, WebSocket
from pagi.tools.middleware import (
    AccessLog,
    Healthcheck,
    Maintenance,
    OptionError,
    RequestId,
    RequestIdFilter,
    Timing,
)
from pagi.tools.middleware.lint import Lint
from pagi.tools.middleware.request_id import request_id
from pagi.tools.testing import AsyncTestClient, SSEDeclined, WebSocketDenied

pytestmark = pytest.mark.anyio
log = logging.getLogger("test.ops")


def make_router() -> Router:
    router = Router()

    @router.get("/")
    async def home(request: Request) -> Any:
        log.warning("handling home")
        return PlainTextResponse(f"id={request.scope.get('pagi.request_id')}")

    @router.get("/admin/x")
    async def admin(request: Request) -> Any:
        return "admin"

    @router.get("/timed")
    async def timed(request: Request) -> Any:
        timing = request.scope["pagi.timing"]
        timing.add("db", 12.5, 'query "users"')
        with timing.measure("render"):
            pass
        return "ok"

    @router.get("/boom")
    async def boom(request: Request) -> Any:
        raise RuntimeError("x")

    @router.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close()

    @router.sse("/events")
    async def events(sse: SSE) -> None:
        await sse.start()
        await sse.send("hi")

    return router


# -- Maintenance ----------------------------------------------------------------------------


async def test_maintenance_answers_503_in_every_scope_type() -> None:
    client = AsyncTestClient(Lint(Maintenance(make_router(), enabled=True, retry_after=120)))
    got = await client.get("/")
    assert got.status_code == 503 and got.headers["retry-after"] == "120"
    with pytest.raises(WebSocketDenied) as denied:
        async with client.websocket("/ws"):
            pass
    assert denied.value.response.status_code == 503
    with pytest.raises(SSEDeclined) as declined:
        async with client.sse("/events"):
            pass
    assert declined.value.response.status_code == 503


async def test_maintenance_switch_and_bypasses() -> None:
    state = {"on": False}

    async def enabled(scope: Scope) -> bool:
        return state["on"]

    app = Maintenance(
        make_router(),
        enabled=enabled,
        bypass_ips=["10.0.0.0/8"],
        bypass_paths=["/admin", re.compile(r"/heal")],
    )
    client = AsyncTestClient(app)
    assert (await client.get("/")).status_code == 200
    state["on"] = True
    got = await client.get("/")
    assert got.status_code == 503 and "retry-after" not in got.headers
    assert (await client.get("/admin/x")).status_code == 200
    assert (await client.get("/administrator")).status_code == 503
    assert (await AsyncTestClient(app, client=("10.1.2.3", 1)).get("/")).status_code == 200


def test_maintenance_bad_options() -> None:
    with pytest.raises(OptionError, match="'bypass_ips'"):
        Maintenance(make_router(), bypass_ips=["not an ip"])
    with pytest.raises(OptionError, match="'retry_after'"):
        Maintenance(make_router(), retry_after=-1)
    with pytest.raises(OptionError, match="'bypass_paths'"):
        Maintenance(make_router(), bypass_paths=["admin"])


# -- Healthcheck ------------------------------------------------------------------------------


async def test_healthcheck_runs_checks_concurrently_with_timing() -> None:
    async def slow_ok() -> bool:
        await anyio.sleep(0.2)
        return True

    def sync_ok() -> None:
        time.sleep(0.2)

    app = Healthcheck(make_router(), live_path="/live", checks={"db": slow_ok, "cache": sync_ok})
    client = AsyncTestClient(Lint(app))
    began = time.perf_counter()
    got = await client.get("/health")
    assert time.perf_counter() - began < 0.39  # concurrently, not one after the other
    assert got.status_code == 200
    assert got.headers["cache-control"].startswith("no-cache, no-store")
    body = got.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"db", "cache"}
    assert body["checks"]["db"]["status"] == "ok" and body["checks"]["db"]["duration_ms"] >= 150
    live = (await client.get("/live")).json()
    assert live["status"] == "ok" and "checks" not in live
    assert (await client.get("/")).status_code == 200  # other paths reach the app


async def test_healthcheck_failures_and_timeouts_give_503() -> None:
    async def hangs() -> None:
        await anyio.sleep(10)

    def broken() -> None:
        raise ConnectionError("db down")

    app = Healthcheck(
        make_router(),
        ready_path="/ready",
        checks={"hang": hangs, "broken": broken, "no": lambda: False},
        timeout=0.1,
    )
    got = await AsyncTestClient(app).get("/ready")
    assert got.status_code == 503
    checks = got.json()["checks"]
    assert checks["hang"]["error"].startswith("timed out")
    assert checks["broken"]["error"] == "ConnectionError: db down"
    assert checks["no"]["status"] == "fail"


def test_healthcheck_bad_options() -> None:
    with pytest.raises(OptionError, match="'path'"):
        Healthcheck(make_router(), path="health")
    with pytest.raises(OptionError, match="'checks'"):
        Healthcheck(make_router(), checks={"x": 1})  # type: ignore[dict-item]
    with pytest.raises(OptionError, match="'timeout'"):
        Healthcheck(make_router(), timeout=0)


# -- RequestId ------------------------------------------------------------------------------


async def test_request_id_in_scope_logs_and_response(caplog: pytest.LogCaptureFixture) -> None:
    caplog.handler.addFilter(RequestIdFilter())
    client = AsyncTestClient(Lint(RequestId(make_router())))
    got = await client.get("/", headers={"x-request-id": "client-chosen"})
    rid = got.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid)  # not trusted by default
    assert got.text == f"id={rid}"
    record = next(r for r in caplog.records if r.getMessage() == "handling home")
    assert record.request_id == rid  # type: ignore[attr-defined]
    assert request_id.get() is None  # reset after the request
    other = await client.get("/")
    assert other.headers["x-request-id"] != rid


async def test_request_id_trusts_valid_incoming_ids_only() -> None:
    client = AsyncTestClient(RequestId(make_router(), trust_incoming=True, generator=lambda: "gen"))
    assert (await client.get("/", headers={"x-request-id": "abc-123"})).text == "id=abc-123"
    assert (await client.get("/", headers={"x-request-id": "bad id!"})).text == "id=gen"
    assert (await client.get("/", headers={"x-request-id": "x" * 129})).text == "id=gen"
    async with client.sse("/events") as session:
        assert session.headers["x-request-id"] == "gen"


def test_request_id_bad_options() -> None:
    with pytest.raises(OptionError, match="'header'"):
        RequestId(make_router(), header="bad header")
    with pytest.raises(OptionError, match="'generator'"):
        RequestId(make_router(), generator="uuid")  # type: ignore[arg-type]


# -- Timing and AccessLog -------------------------------------------------------------------


async def test_timing_header_with_app_metrics() -> None:
    got = await AsyncTestClient(Lint(Timing(make_router()))).get("/timed")
    value = got.headers["server-timing"]
    assert 'db;dur=12.500;desc="query \\"users\\""' in value
    assert re.search(r"render;dur=[\d.]+", value)
    assert re.search(r"total;dur=[\d.]+$", value)


async def test_access_log_formats(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pagi.tools.access")
    client = AsyncTestClient(AccessLog(make_router()), raise_app_exceptions=False)
    await client.get("/?q=1", headers={"referer": "http://ref", "user-agent": 'a"b'})
    line = caplog.records[-1].getMessage()
    assert re.fullmatch(
        r'127\.0\.0\.1 - - \[.+\] "GET /\?q=1 HTTP/1\.1" 200 \d+ "http://ref" "a%22b"', line
    ), line
    with pytest.raises(RuntimeError):
        await AsyncTestClient(AccessLog(make_router())).get("/boom")
    assert '"GET /boom HTTP/1.1" 500 -' in caplog.records[-1].getMessage()
    logger = logging.getLogger("test.access")
    caplog.set_level(logging.INFO, "test.access")
    await AsyncTestClient(AccessLog(make_router(), logger=logger, format="tiny")).get("/admin/x")
    record = caplog.records[-1]
    assert record.name == "test.access"
    assert re.fullmatch(r"GET /admin/x 200 [\d.]+", record.getMessage())


def test_timing_and_access_log_bad_options() -> None:
    with pytest.raises(OptionError, match="'format'"):
        AccessLog(make_router(), format="fancy")
    with pytest.raises(OptionError, match="'header'"):
        Timing(make_router(), header="a b")


async def test_all_pass_lifespan_through() -> None:
    app: Any = make_router()
    for factory in (Maintenance, Healthcheck, RequestId, Timing, AccessLog):
        app = factory(app)
    async with AsyncTestClient(app, lifespan="on") as client:
        assert (await client.get("/admin/x")).status_code == 200


async def passthrough(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("x")(scope, receive, send)
