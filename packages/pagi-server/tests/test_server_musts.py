"""Server-side MUST and MUST NOT requirements no other test exercised, over real sockets.

Each test names the requirement ids it checks (the meta-test
``packages/pagi-spec/tests/test_spec_musts_tested.py`` reads them).
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from typing import Any

import anyio
import h2.events
import httpx
import pytest
from h2_client import H2Client, request_headers
from hyperframe.frame import PushPromiseFrame
from server_helpers import echo_scope, hello, read_response, read_until_close
from ws_client import RawWS

pytestmark = pytest.mark.anyio

GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
SSE_GET = b"GET /events HTTP/1.1\r\nHost: a\r\nAccept: text/event-stream\r\n\r\n"
_PERMITTED = (dict, list, tuple, str, bytes, int, float, bool, type(None))


def _only_permitted_types(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _only_permitted_types(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_only_permitted_types(v) for v in value)
    return isinstance(value, _PERMITTED)


def _body_json(raw: bytes) -> dict[str, Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    if b"transfer-encoding: chunked" in head.lower():
        out, rest = b"", body
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if not size:
                break
            out, rest = out + rest[:size], rest[size + 2 :]
        body = out
    parsed: dict[str, Any] = json.loads(body)
    return parsed


async def _raw_json(running: Any, request: bytes) -> dict[str, Any]:
    stream = await running.connect()
    await stream.send(request)
    return _body_json(await read_response(stream))


class ScopeRecorder:
    """Records every scope; answers http with hello, accepts websockets, opens SSE streams."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        self.scopes.append(scope)
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                kind = event["type"].rsplit(".", 1)[1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        elif scope["type"] == "http":
            await hello(scope, receive, send)
        elif scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1000})
        else:
            await send({"type": "sse.start", "status": 200})
            await send({"type": "sse.send", "data": "one"})


# --- scope contents ------------------------------------------------------------------------


async def test_cookie_headers_merge_into_one_unparsed_entry_R_CK_2_R_CK_3(serve: Any) -> None:
    async with serve(echo_scope) as running:
        data = await _raw_json(
            running, b"GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nCookie: b=2; c=3\r\n\r\n"
        )
    cookies = [value for name, value in data["headers"] if name == "cookie"]
    assert cookies == ["a=1; b=2; c=3"]
    assert not any("cookie" in key for key in data if key != "headers")  # never parsed


async def test_h2_cookie_crumbs_merge_into_one_entry_R_CK_2(serve: Any) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append([v for n, v in scope["headers"] if n == b"cookie"])
        await hello(scope, receive, send)

    async with serve(app) as running:
        client = H2Client(await running.connect())
        await client.start()
        sid = await client.request(
            request_headers(extra=((b"cookie", b"a=1"), (b"cookie", b"b=2; c=3")))
        )
        await client.until(lambda _: sid in client.ended())
    assert seen == [[b"a=1; b=2; c=3"]]


async def test_query_string_is_raw_undecoded_bytes_R_ENC_4(serve: Any) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["query_string"])
        await hello(scope, receive, send)

    async with serve(app) as running:
        stream = await running.connect()
        await stream.send(b"GET /p?a=%20b&c=%E2%82%AC+d&e HTTP/1.1\r\nHost: a\r\n\r\n")
        await read_response(stream)
    assert seen == [b"a=%20b&c=%E2%82%AC+d&e"]


async def test_header_values_pass_exactly_as_received_R_ENC_6(serve: Any) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.extend(scope["headers"])
        await hello(scope, receive, send)

    async with serve(app) as running:
        stream = await running.connect()
        await stream.send(
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Mixed-Case: MiXeD  Inner\tTab\r\n"
            b"X-Obs: caf\xe9\r\nX-Dup: 1\r\nX-Dup: 2\r\n\r\n"
        )
        await read_response(stream)
    assert (b"x-mixed-case", b"MiXeD  Inner\tTab") in seen  # value untouched, name lower-cased
    assert (b"x-obs", b"caf\xe9") in seen  # obs-text passed through as bytes
    assert [v for n, v in seen if n == b"x-dup"] == [b"1", b"2"]


async def test_method_is_upper_case_R_HTTP_2(serve: Any) -> None:
    async with serve(echo_scope) as running:
        for method in (b"GET", b"PURGE", b"POST"):
            length = b"Content-Length: 0\r\n" if method == b"POST" else b""
            data = await _raw_json(
                running, method + b" / HTTP/1.1\r\nHost: a\r\n" + length + b"\r\n"
            )
            assert data["method"] == method.decode() == data["method"].upper()


async def test_scope_keys_and_extensions_R_CORE_4_R_CORE_21_R_CORE_22_R_EXT_3_R_HTTP_4_R_HTTP_5(
    serve: Any,
) -> None:
    """No pagi.features anywhere; extensions is a dict of plain data; only documented keys;
    pagi.connection on every http scope (HTTP/1.1 and HTTP/2); no tls extension without TLS."""
    app = ScopeRecorder()
    async with serve(app, lifespan="on") as running:
        async with httpx.AsyncClient() as client:
            await client.get(running.url)
        async with httpx.AsyncClient(http1=False, http2=True) as client:
            await client.get(running.url)
        ws, _ = await RawWS.open(running)
        await ws.recv_close()
        stream = await running.connect()
        await stream.send(SSE_GET)
        with anyio.fail_after(5):
            while b"data: one" not in await stream.receive():
                pass
    kinds = [scope["type"] for scope in app.scopes]
    assert sorted(set(kinds)) == ["http", "lifespan", "sse", "websocket"]
    documented = {
        "http": {
            "type", "pagi", "http_version", "method", "scheme", "path", "raw_path", "query_string",
            "root_path", "headers", "client", "server", "extensions", "state",
            "pagi.connection", "pagi.transport",
        },
        "sse": {
            "type", "pagi", "http_version", "method", "scheme", "path", "raw_path", "query_string",
            "root_path", "headers", "client", "server", "extensions", "state", "pagi.transport",
        },
        "websocket": {
            "type", "pagi", "http_version", "scheme", "path", "raw_path", "query_string",
            "root_path", "headers", "client", "server", "subprotocols", "extensions", "state",
            "pagi.transport",
        },
        "lifespan": {"type", "pagi", "state"},
    }  # fmt: skip
    for scope in app.scopes:
        assert "pagi.features" not in scope
        assert set(scope) <= documented[scope["type"]], set(scope) - documented[scope["type"]]
        if scope["type"] != "lifespan":
            assert isinstance(scope["extensions"], dict)
            assert _only_permitted_types(scope["extensions"])
            assert "tls" not in scope["extensions"]
        if scope["type"] == "http":
            connection = scope["pagi.connection"]
            assert connection is not None
    assert sorted(s["http_version"] for s in app.scopes if s["type"] == "http") == ["1.1", "2"]


async def test_sse_is_never_inferred_from_the_path_R_SSE_3(serve: Any) -> None:
    app = ScopeRecorder()
    async with serve(app) as running, httpx.AsyncClient() as client:
        for path in ("/events", "/sse", "/stream.sse"):
            assert (await client.get(running.url + path)).text == "hello"
    assert [scope["type"] for scope in app.scopes] == ["http"] * 3


async def test_lifespan_scope_has_no_transport_it_cannot_measure_R_FLOW_2(serve: Any) -> None:
    """A lifespan scope has no outbound buffer, so the key is absent; every scope that has
    one gets a handle whose reading is a real byte count."""
    app = ScopeRecorder()
    async with serve(app, lifespan="on") as running, httpx.AsyncClient() as client:
        await client.get(running.url)
    by_type = {scope["type"]: scope for scope in app.scopes}
    assert "pagi.transport" not in by_type["lifespan"]
    assert isinstance(by_type["http"]["pagi.transport"].buffered_amount(), int)


async def test_state_is_seeded_when_supported_R_LIFE_35(serve: Any) -> None:
    """This server supports state: the lifespan scope and every request scope carry it."""
    app = ScopeRecorder()
    async with serve(app, lifespan="on") as running, httpx.AsyncClient() as client:
        await client.get(running.url)
    assert all(isinstance(scope["state"], dict) for scope in app.scopes)


async def test_server_never_touches_the_state_namespace_R_LIFE_31_R_LIFE_3(serve: Any) -> None:
    """The lifespan namespace is only copied: its keys are never read past the copy nor
    changed; lifespan and requests run on the same event loop."""
    namespace: dict[str, Any] = {}
    loops: list[Any] = []

    def current_loop() -> Any:
        if "trio" in sys.modules and _on_trio():
            import trio

            return trio.lowlevel.current_trio_token()
        import asyncio

        return asyncio.get_running_loop()

    class Watched(dict):  # type: ignore[type-arg]
        def __setitem__(self, key: Any, value: Any) -> None:  # changed after the copy?
            raise AssertionError(f"server wrote {key!r} into the namespace")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        loops.append(current_loop())
        if scope["type"] == "lifespan":
            await receive()
            scope["state"]["db"] = Watched(pool=1)
            namespace.update(scope["state"])
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert scope["state"]["db"] is namespace["db"]  # shallow: same inner object
        scope["state"]["per_request"] = True  # visible to this request only
        await hello(scope, receive, send)

    async with serve(app, lifespan="on") as running, httpx.AsyncClient() as client:
        for _ in range(2):
            assert (await client.get(running.url)).text == "hello"
    assert set(namespace) == {"db"} and dict(namespace["db"]) == {"pool": 1}
    assert len(loops) == 3 and loops[0] is loops[1] is loops[2]


def _on_trio() -> bool:
    import sniffio

    return sniffio.current_async_library() == "trio"


async def test_shared_objects_are_in_the_scope_before_the_app_runs_R_MW_8(serve: Any) -> None:
    seen: list[bool] = []

    def middleware(inner: Any) -> Any:
        async def wrapped(scope: Any, receive: Any, send: Any) -> None:
            seen.append(all(k in scope for k in ("pagi.connection", "pagi.transport", "state")))
            await inner(dict(scope, marker=True), receive, send)

        return wrapped

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["pagi.connection"].is_connected())
        await hello(scope, receive, send)

    async with serve(middleware(inner)) as running, httpx.AsyncClient() as client:
        await client.get(running.url)
    assert seen == [True, True]


# --- the application interface ---------------------------------------------------------------


async def test_receive_and_send_are_awaitable_callables_R_CORE_11_R_CORE_12(serve: Any) -> None:
    checks: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            receive("extra")
        except TypeError:
            checks["receive takes no argument"] = True
        pending = receive()
        checks["receive awaitable"] = inspect.isawaitable(pending)
        checks["event"] = await pending
        started = send({"type": "http.response.start", "status": 200})
        checks["send awaitable"] = inspect.isawaitable(started)
        await started
        await send({"type": "http.response.body", "body": b"ok"})

    async with serve(app) as running, httpx.AsyncClient() as client:
        assert (await client.post(running.url, content=b"x")).text == "ok"
    assert checks["receive takes no argument"] and checks["receive awaitable"]
    assert checks["send awaitable"]
    assert checks["event"] == {"type": "http.request", "body": b"x", "more": False}


async def test_app_called_once_per_scope_R_CORE_13(serve: Any) -> None:
    app = ScopeRecorder()
    async with serve(app, lifespan="on") as running:
        stream = await running.connect()
        await stream.send(GET * 3)  # three pipelined requests on one connection
        raw = b""
        with anyio.fail_after(5):
            while raw.count(b"hello") < 3:
                raw += await stream.receive()
        ws, _ = await RawWS.open(running)
        await ws.recv_close()
        await ws.close()
    assert [s["type"] for s in app.scopes] == ["lifespan", "http", "http", "http", "websocket"]
    assert app.calls == 5


async def test_return_value_means_nothing_R_CORE_42(serve: Any, caplog: Any) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> Any:
        await hello(scope, receive, send)
        return {"status": 500, "body": "ignored"}

    async with serve(app) as running, httpx.AsyncClient() as client:
        response = await client.get(running.url)
        again = await client.get(running.url)  # keep-alive survives: nothing went wrong
    assert (response.status_code, response.text, again.text) == (200, "hello", "hello")
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("how", ["raise", "return"])
async def test_declined_http_scope_gets_the_500_backstop_R_CORE_44_R_HERR_11(
    serve: Any, how: str
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if how == "raise":
            raise RuntimeError("http is not supported")

    async with serve(app) as running:
        stream = await running.connect()
        await stream.send(GET)
        raw = await read_until_close(stream)
    assert raw.startswith(b"HTTP/1.1 500 ") and b"connection: close" in raw.lower()


async def test_unsupported_scope_types_are_handled_promptly_R_CORE_16_R_CORE_17_R_ERR_6(
    serve: Any,
) -> None:
    """An app that only speaks http: a websocket or SSE request gets an error and a prompt
    close, lifespan (auto) carries on, and the server keeps serving http."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError(f"unsupported {scope['type']}")
        await hello(scope, receive, send)

    async with serve(app, lifespan="auto") as running:
        ws, head = await RawWS.open(running)
        assert not head.startswith(b"HTTP/1.1 101"), head
        await ws.expect_eof()
        stream = await running.connect()
        await stream.send(SSE_GET)
        raw = await read_until_close(stream)
        assert raw.startswith(b"HTTP/1.1 500 "), raw[:40]
        async with httpx.AsyncClient() as client:
            assert (await client.get(running.url)).text == "hello"


# --- pagi.connection -------------------------------------------------------------------------


async def test_connection_interface_is_complete_R_CONN_2_R_CONN_3(serve: Any) -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        conn = scope["pagi.connection"]
        for name in ("is_connected", "disconnect_reason", "on_disconnect", "response_started"):
            seen[name] = callable(getattr(conn, name, None))
        seen["values"] = (conn.is_connected(), conn.disconnect_reason(), conn.response_started())
        await hello(scope, receive, send)
        seen["after"] = conn.response_started()

    async with serve(app) as running, httpx.AsyncClient() as client:
        await client.get(running.url)
    assert seen == {
        "is_connected": True,
        "disconnect_reason": True,
        "on_disconnect": True,
        "response_started": True,
        "values": (True, None, False),
        "after": True,
    }


async def test_success_fires_only_on_complete_in_order_R_CONN_10_R_CONN_41(serve: Any) -> None:
    log: list[Any] = []
    finished = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        conn = scope["pagi.connection"]
        conn.on_complete(lambda: log.append("first"))
        conn.on_complete(lambda: log.append("second"))
        conn.on_disconnect(lambda reason: log.append(("disconnect", reason)))
        await hello(scope, receive, send)
        log.append(("reason", conn.disconnect_reason()))
        finished.set()

    async with serve(app) as running, httpx.AsyncClient() as client:
        await client.get(running.url)
        with anyio.fail_after(5):
            await finished.wait()
    assert log == ["first", "second", ("reason", None)]


async def test_disconnect_fires_only_on_disconnect_R_CONN_10_R_CONN_12_R_CONN_30_R_CONN_32(
    serve: Any,
) -> None:
    """The app waits on the connection, not on receive: the state flips as soon as the
    socket closes, callbacks run in order, a late one runs at once, and it never flips back."""
    log: list[Any] = []
    registered = anyio.Event()
    finished = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        conn = scope["pagi.connection"]
        conn.on_complete(lambda: log.append("complete"))
        conn.on_disconnect(lambda reason: log.append(("a", reason, conn.is_connected())))
        conn.on_disconnect(lambda reason: log.append(("b", reason)))
        registered.set()
        with anyio.fail_after(5):
            await conn.disconnect_future()
        conn.on_disconnect(lambda reason: log.append(("late", reason)))
        event = await receive()
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"too late"})
        log.append((event["type"], conn.is_connected(), conn.disconnect_reason()))
        finished.set()

    async with serve(app) as running:
        stream = await running.connect()
        await stream.send(GET)
        with anyio.fail_after(5):
            await registered.wait()
        await stream.aclose()
        with anyio.fail_after(5):
            await finished.wait()
    assert log == [
        ("a", "client_closed", False),
        ("b", "client_closed"),
        ("late", "client_closed"),
        ("http.disconnect", False, "client_closed"),
    ]


async def test_client_gone_mid_body_R_CORE_50_R_HTTP_15_R_HTTP_60_R_HTTP_61(serve: Any) -> None:
    """The client leaves mid-body: http.disconnect arrives and later sends are no-ops."""
    results: dict[str, Any] = {}
    reading = anyio.Event()
    finished = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        conn = scope["pagi.connection"]
        first = await receive()  # part of the body
        reading.set()
        second = await receive()
        results["events"] = [first["type"], second["type"]]
        results["connected"] = conn.is_connected()
        try:
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.body", "body": b"x" * 10_000})
            results["send"] = "no-op"
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            results["send"] = repr(exc)
        finished.set()

    async with serve(app) as running:
        stream = await running.connect()
        await stream.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
        with anyio.fail_after(5):
            await reading.wait()
        await stream.aclose()
        with anyio.fail_after(5):
            await finished.wait()
    assert results == {
        "events": ["http.request", "http.disconnect"],
        "connected": False,
        "send": "no-op",
    }


async def test_websocket_and_sse_clients_leaving_deliver_disconnect_R_CORE_50(serve: Any) -> None:
    events: dict[str, str] = {}
    done = {"websocket": anyio.Event(), "sse": anyio.Event()}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
        else:
            await send({"type": "sse.start", "status": 200})
            await send({"type": "sse.send", "data": "hi"})
        while True:
            event = await receive()
            if event["type"].endswith("disconnect"):
                events[kind] = event["type"]
                done[kind].set()
                return

    async with serve(app) as running:
        ws, _ = await RawWS.open(running)
        await ws.aclose()  # dropped socket, no close frame
        stream = await running.connect()
        await stream.send(SSE_GET)
        with anyio.fail_after(5):
            while b"data: hi" not in await stream.receive():
                pass
        await stream.aclose()
        with anyio.fail_after(5):
            for event in done.values():
                await event.wait()
    assert events == {"websocket": "websocket.disconnect", "sse": "sse.disconnect"}


async def test_connection_is_released_promptly_after_cancellation_R_CORE_52(serve: Any) -> None:
    cleaned = anyio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        event = await receive()  # the body never comes: the client leaves instead
        assert event["type"] == "http.disconnect"
        cleaned.set()  # the app's own cancellation handling is done; the server's starts

    async with serve(app) as running:
        stream = await running.connect()
        await stream.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")
        with anyio.fail_after(5):
            while not running.server.ctx.connections:
                await anyio.sleep(0.01)
        await stream.aclose()
        with anyio.fail_after(5):
            await cleaned.wait()
            while running.server.ctx.connections:
                await anyio.sleep(0.01)


# --- response bodies ---------------------------------------------------------------------------


async def test_content_encoding_is_left_to_the_app_R_HTTP_22(serve: Any) -> None:
    payload = b"\x1f\x8bnot-really-gzip"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-encoding", b"gzip"), (b"content-length", b"17")],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async with serve(app) as running:
        stream = await running.connect()
        await stream.send(b"GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: br, identity\r\n\r\n")
        raw = await read_response(stream)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"\r\ncontent-encoding: gzip\r\n" in head.lower() and body == payload


def _open_fds_to(path: str) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == path:
                count += 1
        except OSError:
            pass
    return count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
async def test_file_bodies_stream_and_close_R_HFILE_1_R_HFILE_4(serve: Any, tmp_path: Any) -> None:
    """A 3 MB file reaches the client whole and the server holds no descriptor to it after."""
    data = os.urandom(1024) * 3 * 1024
    path = tmp_path / "big.bin"
    path.write_bytes(data)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "file": str(path)})

    async with serve(app) as running, httpx.AsyncClient() as client:
        for _ in range(3):
            response = await client.get(running.url)
            assert response.content == data
        assert _open_fds_to(str(path)) == 0


async def test_file_that_cannot_be_opened_fails_the_send_R_HFILE_6(
    serve: Any, tmp_path: Any
) -> None:
    errors: list[type[BaseException]] = []
    locked = tmp_path / "locked.bin"
    locked.write_bytes(b"secret")
    locked.chmod(0)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        target = tmp_path / "missing.bin" if scope["path"] == "/missing" else locked
        await send({"type": "http.response.start", "status": 200})
        try:
            await send({"type": "http.response.body", "file": str(target)})
        except OSError as exc:
            errors.append(type(exc))
            await send({"type": "http.response.body", "body": b"fallback"})

    async with serve(app) as running, httpx.AsyncClient() as client:
        assert (await client.get(running.url + "/missing")).text == "fallback"
        locked_response = await client.get(running.url + "/locked")
    assert errors[0] is FileNotFoundError
    if os.geteuid() != 0:  # root reads any file
        assert errors[1] is PermissionError and locked_response.text == "fallback"


# --- HTTP/2 ------------------------------------------------------------------------------------


async def test_h2_streams_become_pagi_events_R_H2_2_R_H2_3_R_H2_5_R_DATA_7(serve: Any) -> None:
    """Apps see PAGI event dicts (str keys only), never frames."""
    events: dict[str, list[Any]] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got = events.setdefault(scope["path"], [])
        while True:
            event = await receive()
            got.append(event)
            if not event.get("more"):
                break
        await hello(scope, receive, send)

    async with serve(app) as running:
        client = H2Client(await running.connect())
        await client.start()
        bare = await client.request(request_headers(b"/bare"))
        body = await client.request(request_headers(b"/body", b"POST"), body=b"abc")
        await client.until(lambda _: {bare, body} <= client.ended())
    assert events["/bare"] == [{"type": "http.request", "body": b"", "more": False}]
    first = events["/body"][0]
    assert first["type"] == "http.request"
    assert b"".join(e["body"] for e in events["/body"]) == b"abc"
    assert events["/body"][-1]["more"] is False
    for event in [*events["/bare"], *events["/body"]]:
        assert isinstance(event, dict) and set(event) <= {"type", "body", "more"}
        assert all(isinstance(key, str) for key in event)


async def test_client_push_promise_is_a_connection_error_R_H2_8(serve: Any) -> None:
    async with serve(hello) as running:
        client = H2Client(await running.connect(), validate=False)
        await client.start()
        sid = await client.request(request_headers(), end=False)
        frame = PushPromiseFrame(sid)
        frame.promised_stream_id = 2
        frame.data = b""
        frame.flags.add("END_HEADERS")
        await client.send_raw(frame)
        await client.until(lambda _: client.goaway() is not None)
    goaway = client.goaway()
    assert goaway is not None and goaway.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert not any(isinstance(e, h2.events.PushedStreamReceived) for e in client.seen)
