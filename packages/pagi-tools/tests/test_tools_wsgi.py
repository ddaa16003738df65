"""pagi.tools.wsgi.WSGIApp: WSGI (PEP 3333) apps as PAGI apps (docs/spec/wsgi.md, R-PSGI-*).

In memory through the test client on asyncio and trio; Flask over a real
pagi-server is in test_tools_bridges_frameworks.py.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from pagi.spec import EventError
from pagi.tools.testing import AsyncTestClient
from pagi.tools.wsgi import FileWrapper, WSGIApp

pytestmark = pytest.mark.anyio


def _spy(app: Any, sent: list[dict[str, Any]]) -> Any:
    async def spy(scope: Any, receive: Any, send: Any) -> None:
        async def record(event: Any) -> None:
            sent.append(dict(event))
            await send(event)

        await app(scope, receive, record)

    return spy


async def test_environ_is_built_from_the_scope_r_psgi_2() -> None:
    """R-PSGI-2, R-CORE-60: one call per request with an environ built from the scope."""
    calls: list[dict[str, Any]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        calls.append(environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    client = AsyncTestClient(WSGIApp(app), lifespan="off", root_path="/mount",
                             headers={"x-a": "1", "x_b": "spoof"})  # fmt: skip
    async with client:
        await client.post("/mount/caf%C3%A9/x?q=1", content=b"body",
                          headers={"content-type": "text/x"})  # fmt: skip
    assert len(calls) == 1
    env = calls[0]
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == "/mount"
    assert env["PATH_INFO"] == "/café/x".encode().decode("latin-1")  # a WSGI native string
    assert env["QUERY_STRING"] == "q=1"
    assert (env["CONTENT_TYPE"], env["CONTENT_LENGTH"]) == ("text/x", "4")
    assert env["HTTP_X_A"] == "1"
    assert "HTTP_X_B" not in env  # names with '_' are dropped
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("testserver", "80")
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("127.0.0.1", "50000")
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["wsgi.version"] == (1, 0)
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.input_terminated"] is True
    assert env["wsgi.multithread"] is True


async def test_status_and_headers_map_to_one_start_r_psgi_10() -> None:
    """R-PSGI-10: status and headers become one http.response.start, names lower-cased."""
    sent: list[dict[str, Any]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(
            "404 Not Found", [("X-One", "1"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
        )
        return [b"missing"]

    async with AsyncTestClient(_spy(WSGIApp(app), sent), lifespan="off") as client:
        response = await client.get("/")
    assert response.status_code == 404
    starts = [e for e in sent if e["type"] == "http.response.start"]
    assert starts == [{"type": "http.response.start", "status": 404,
                       "headers": [(b"x-one", b"1"), (b"set-cookie", b"a=1"),
                                   (b"set-cookie", b"b=2")]}]  # fmt: skip
    # R-PSGI-11: a one-item list is one final body event.
    assert sent[1:] == [{"type": "http.response.body", "body": b"missing", "more": False}]


async def test_streamed_body_write_first_and_last_more_false_r_psgi_11() -> None:
    """R-PSGI-11: chunks go out as yielded, write() bytes first, the last with more=False."""
    sent: list[dict[str, Any]] = []
    released = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        write = start_response("200 OK", [])
        write(b"w1;")

        def body() -> Any:
            yield b"c1;"
            yield b""  # empty chunks are skipped
            released.wait(5)
            yield b"c2"

        return body()

    async with AsyncTestClient(_spy(WSGIApp(app), sent), lifespan="off") as client:
        async with client.stream("GET", "/") as response:
            chunks = response.aiter_bytes()
            first = await chunks.__anext__()
            assert first == b"w1;"  # streamed before the app finished
            released.set()
            rest = b"".join([c async for c in chunks])
    assert first + rest == b"w1;c1;c2"
    bodies = [(e["body"], e["more"]) for e in sent if e["type"] == "http.response.body"]
    assert bodies == [(b"w1;", True), (b"c1;", True), (b"c2", True), (b"", False)]


async def test_request_body_is_streamed_not_buffered_whole() -> None:
    """wsgi.input pulls one chunk at a time: the app sees data before the body has all come."""
    pulled: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        first = stream.read(10)
        line = stream.readline()
        pulled.append(len(first) + len(line))
        rest = stream.read()
        start_response("200 OK", [])
        return [b"%d %d %d" % (len(first), len(line), len(rest))]

    body = b"0123456789abc\n" + b"z" * 200_000
    async with AsyncTestClient(WSGIApp(app), lifespan="off") as client:
        response = await client.post("/", content=body, chunk_size=4096)
    assert response.text == f"10 4 {len(body) - 14}"
    assert pulled == [14]


async def test_file_wrapper_becomes_a_file_body_and_is_closed(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    target.write_bytes(b"0123456789" * 5000)
    sent: list[dict[str, Any]] = []
    handles: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Length", str(50000 - 7))])
        fh = open(target, "rb")  # closed by the wrapper (PEP 3333)
        fh.seek(7)
        handles.append(fh)
        return environ["wsgi.file_wrapper"](fh)

    async with AsyncTestClient(_spy(WSGIApp(app), sent), lifespan="off") as client:
        response = await client.get("/")
    assert response.content == target.read_bytes()[7:]
    assert [e["type"] for e in sent] == ["http.response.start", "http.response.body"]
    assert sent[1]["fh"] is handles[0] and "offset" not in sent[1]  # from its position
    assert handles[0].closed


async def test_file_wrapper_around_a_non_file_is_iterated() -> None:
    import io

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [])
        return FileWrapper(io.BytesIO(b"x" * 20000), 4096)

    async with AsyncTestClient(WSGIApp(app), lifespan="off") as client:
        assert (await client.get("/")).content == b"x" * 20000


async def test_error_before_start_propagates_and_the_iterable_is_closed() -> None:
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Any:
            raise ValueError("boom in the app")

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [])
        return Body()

    async with AsyncTestClient(WSGIApp(app), lifespan="off") as client:
        with pytest.raises(ValueError, match="boom in the app"):
            await client.get("/")
    assert closed == [True]


async def test_start_response_twice_without_exc_info_raises_pep_3333() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        start_response("500 Oops", [])
        return [b""]

    async with AsyncTestClient(WSGIApp(app), lifespan="off") as client:
        with pytest.raises(RuntimeError, match="second time without exc_info"):
            await client.get("/")


async def test_exc_info_replaces_status_before_the_head_and_reraises_after() -> None:
    def before(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        try:
            raise KeyError("x")
        except KeyError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"sorry"]

    def after(environ: dict[str, Any], start_response: Any) -> Any:
        write = start_response("200 OK", [])
        write(b"partial")
        try:
            raise KeyError("late")
        except KeyError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b""]

    async with AsyncTestClient(WSGIApp(before), lifespan="off") as client:
        response = await client.get("/")
        assert (response.status_code, response.text) == (500, "sorry")
    async with AsyncTestClient(WSGIApp(after), lifespan="off") as client:
        with pytest.raises(KeyError, match="late"):
            await client.get("/")


async def test_bad_header_bytes_meet_the_spec_validator() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("X-Bad", "a\r\nInjected: 1")])
        return [b""]

    async with AsyncTestClient(WSGIApp(app), lifespan="off") as client:
        with pytest.raises(EventError, match="R-HTTP-30"):
            await client.get("/")


async def test_client_disconnect_stops_iteration_and_closes() -> None:
    produced: list[int] = []
    closed = threading.Event()

    class Endless:
        def __iter__(self) -> Any:
            n = 0
            while n < 100_000:
                produced.append(n)
                n += 1
                yield b"x" * 1024

        def close(self) -> None:
            closed.set()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [])
        return Endless()

    async with AsyncTestClient(WSGIApp(app), lifespan="off") as client:
        async with client.stream("GET", "/") as response:
            await response.aiter_bytes().__anext__()
        # Leaving the block disconnected the client.
    assert closed.wait(5)
    assert len(produced) < 100_000


async def test_websocket_and_lifespan_are_refused() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise AssertionError("never called")

    with pytest.raises(RuntimeError, match="cannot serve a 'lifespan' scope"):
        await WSGIApp(app)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]


def test_max_threads_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_threads"):
        WSGIApp(lambda e, s: [], max_threads=0)
