"""Access log: presets, atoms, request time, refusal of unknown atoms (server-digest 1.8)."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from server_helpers import hello, read_response

from pagi.server import ConfigError, Server
from pagi.server.accesslog import PRESETS, AccessLog, compile_format

CLF_TIME = r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000"


def slow_hello(delay: float) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await anyio.sleep(delay)
        await hello(scope, receive, send)

    return app


async def _log_lines(
    serve: Any, fmt: str, path: str = "/p?q=1", app: Any = hello, **headers: str
) -> list[str]:
    buffer = io.StringIO()
    async with serve(app, access_log=buffer, access_log_format=fmt) as running:
        async with httpx.AsyncClient() as client:
            response = await client.get(running.url + path, headers=headers)
            assert response.status_code == 200
    return buffer.getvalue().splitlines()


@pytest.mark.anyio
async def test_clf_preset(serve: Any) -> None:
    (line,) = await _log_lines(serve, "clf")
    assert re.fullmatch(
        r"127\.0\.0\.1 - - \[" + CLF_TIME + r'\] "GET /p\?q=1 HTTP/1\.1" 200 5 \d+\.\d{3}s', line
    ), line


@pytest.mark.anyio
async def test_default_format_is_clf(serve: Any) -> None:
    buffer = io.StringIO()
    async with serve(hello, access_log=buffer) as running, httpx.AsyncClient() as client:
        await client.get(running.url + "/d")
    assert re.fullmatch(
        r'127\.0\.0\.1 - - \[.*\] "GET /d HTTP/1\.1" 200 5 .*s', buffer.getvalue().strip()
    )


@pytest.mark.anyio
async def test_combined_preset(serve: Any) -> None:
    (line,) = await _log_lines(
        serve, "combined", referer="http://ref.example/", **{"user-agent": "tester/1.0"}
    )
    assert re.fullmatch(
        r"127\.0\.0\.1 - - \["
        + CLF_TIME
        + r'\] "GET /p\?q=1 HTTP/1\.1" 200 5 "http://ref\.example/" "tester/1\.0"',
        line,
    ), line


@pytest.mark.anyio
async def test_common_preset(serve: Any) -> None:
    (line,) = await _log_lines(serve, "common")
    assert re.fullmatch(
        r"127\.0\.0\.1 - - \[" + CLF_TIME + r'\] "GET /p\?q=1 HTTP/1\.1" 200 5', line
    ), line


@pytest.mark.anyio
async def test_tiny_preset(serve: Any) -> None:
    (line,) = await _log_lines(serve, "tiny")
    assert re.fullmatch(r"GET /p\?q=1 200 \d+us", line), line


@pytest.mark.anyio
async def test_every_atom(serve: Any) -> None:
    fmt = "%h|%l|%u|%r|%m|%U|%q|%H|%s|%b|%B|%{X-Custom}i|%{missing}i|%%"
    (line,) = await _log_lines(serve, fmt, **{"x-custom": "abc"})
    assert line == "127.0.0.1|-|-|GET /p?q=1 HTTP/1.1|GET|/p|?q=1|HTTP/1.1|200|5|5|abc|-|%"


@pytest.mark.anyio
async def test_header_atom_is_case_insensitive(serve: Any) -> None:
    (line,) = await _log_lines(serve, "%{USER-agent}i", **{"user-agent": "UA/2"})
    assert line == "UA/2"


@pytest.mark.anyio
async def test_request_time_atoms(serve: Any) -> None:
    (line,) = await _log_lines(serve, "%d %D %T", app=slow_hello(0.25))
    seconds, micros, whole = line.split()
    assert 0.25 <= float(seconds) < 2
    assert 250_000 <= int(micros) < 2_000_000
    assert int(whole) in (0, 1)


@pytest.mark.anyio
async def test_zero_bytes_b_is_dash_and_capital_b_is_zero(serve: Any) -> None:
    async def empty(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    buffer = io.StringIO()
    async with serve(empty, access_log=buffer, access_log_format="%s %b %B") as running:
        async with httpx.AsyncClient() as client:
            await client.get(running.url + "/")
    assert buffer.getvalue() == "204 - 0\n"


@pytest.mark.anyio
async def test_one_line_per_keepalive_request_with_its_own_size(serve: Any) -> None:
    async def sized(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b"x" * int(scope["path"][1:])
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    buffer = io.StringIO()
    async with serve(sized, access_log=buffer, access_log_format="%U %B") as running:
        stream = await running.connect()
        for size in (3, 10):
            await stream.send(f"GET /{size} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            await read_response(stream)
        await stream.aclose()
    assert buffer.getvalue().splitlines() == ["/3 3", "/10 10"]


@pytest.mark.anyio
async def test_unix_socket_client_is_unix(tmp_path: Path) -> None:
    buffer = io.StringIO()
    path = str(tmp_path / "a.sock")
    server = Server(
        hello, uds=path, access_log=buffer, access_log_format="%h %U", quiet=True, lifespan="off"
    )
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=path)) as client:
            await client.get("http://localhost/u")
        server.request_shutdown()
    assert buffer.getvalue() == "unix /u\n"


@pytest.mark.anyio
async def test_access_log_none_writes_nothing(serve: Any) -> None:
    async with serve(hello, access_log=None) as running, httpx.AsyncClient() as client:
        await client.get(running.url + "/")
    assert running.server.access_log is None


@pytest.mark.parametrize("fmt", ["%Z", "%h %{Name}x", "%{Name", "%{}i", "trailing %", "%"])
def test_bad_formats_are_refused_at_startup(fmt: str) -> None:
    with pytest.raises(ValueError, match="access log"):
        compile_format(fmt)
    with pytest.raises(ConfigError, match="access_log_format"):
        Server(hello, access_log_format=fmt)


def test_presets_compile() -> None:
    for name in PRESETS:
        assert compile_format(name)


def test_broken_log_stream_does_not_raise() -> None:
    stream = io.StringIO()
    log = AccessLog(stream, "%U")
    stream.close()
    log.log({"type": "http", "path": "/"}, 200, 0, 0.0)


def test_websocket_scope_method_falls_back_to_type() -> None:
    stream = io.StringIO()
    AccessLog(stream, "%m %r").log(
        {"type": "websocket", "path": "/ws", "query_string": b"", "http_version": "1.1"},
        101,
        0,
        1.0,
    )
    assert stream.getvalue() == "WEBSOCKET WEBSOCKET /ws HTTP/1.1\n"
