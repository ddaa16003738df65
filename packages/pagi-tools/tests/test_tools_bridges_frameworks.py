"""Proof: FastAPI, Starlette and Django (ASGI) and Flask (WSGI) on a real pagi-server.

Each framework is served by ``pagi-server --interface asgi|wsgi`` in a
subprocess (the path a user takes) and driven with httpx and websockets.
The servers run on asyncio: Django's async support is asyncio-only, and
the in-memory tests of the bridges (test_tools_asgi.py, test_tools_wsgi.py)
already run on both backends.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_process import free_port, serve_command
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

HERE = Path(__file__).resolve().parent
BIG = bytes(range(256)) * 1200  # 300 KiB: past any 64 KiB cut


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("framework-data")
    (data / "big.bin").write_bytes(BIG)
    (data / "static").mkdir()
    (data / "static" / "hello.txt").write_text("static hello\n")
    return data


def _serve(attr: str, interface: str, data: Path) -> Iterator[str]:
    port = free_port()
    log = data / f"{attr}.log"
    command = [sys.executable, "-m", "pagi.server", f"framework_apps:{attr}", "--port", str(port),
               "--interface", interface, "--env", "development", "--no-access-log",
               "--quiet"]  # fmt: skip
    env = {"FRAMEWORK_DATA": str(data)}
    with serve_command(command, port, cwd=HERE, env=env, log=log, start_timeout=30) as address:
        yield address
    errors = [line for line in log.read_text().splitlines() if "Traceback" in line]
    assert not errors, log.read_text()


@pytest.fixture(scope="module")
def fastapi_server(data_dir: Path) -> Iterator[str]:
    yield from _serve("fastapi_app", "asgi", data_dir)


@pytest.fixture(scope="module")
def starlette_server(data_dir: Path) -> Iterator[str]:
    yield from _serve("starlette_app", "asgi", data_dir)


@pytest.fixture(scope="module")
def django_server(data_dir: Path) -> Iterator[str]:
    yield from _serve("django_app", "asgi", data_dir)


@pytest.fixture(scope="module")
def flask_server(data_dir: Path) -> Iterator[str]:
    yield from _serve("flask_app", "wsgi", data_dir)


# --- FastAPI ------------------------------------------------------------------------


def test_fastapi_params_body_dependency_and_lifespan_state(fastapi_server: str) -> None:
    with httpx.Client(base_url=f"http://{fastapi_server}") as client:
        assert client.get("/items/42", params={"q": "x"}).json() == {"item_id": 42, "q": "x"}
        assert client.get("/items/nope").status_code == 422
        item = {"name": "pen", "price": 1.5}
        created = client.post("/items", json=item, headers={"x-token": "secret"})
        assert created.json() == {**item, "by": "secret"}
        assert client.post("/items", json=item, headers={"x-token": "no"}).status_code == 401
        assert (
            client.post("/items", json={"name": "pen"}, headers={"x-token": "secret"}).status_code
            == 422
        )
        assert client.get("/greeting").json() == {"greeting": "hello from lifespan"}
        assert client.post("/upload", content=BIG).json() == {"received": len(BIG)}


def test_fastapi_streaming_and_file_responses_are_whole(fastapi_server: str) -> None:
    with httpx.Client(base_url=f"http://{fastapi_server}") as client:
        streamed = client.get("/stream")
        assert (streamed.status_code, len(streamed.content)) == (200, 120_000)
        file = client.get("/file")  # FileResponse uses http.response.pathsend -> PAGI file body
        assert file.content == BIG
        assert file.headers["content-length"] == str(len(BIG))


def test_fastapi_websocket(fastapi_server: str) -> None:
    with connect(f"ws://{fastapi_server}/ws", proxy=None) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "fastapi says hi"


def test_fastapi_sse_request_is_served_as_http(fastapi_server: str) -> None:
    response = httpx.get(
        f"http://{fastapi_server}/items/1", headers={"accept": "text/event-stream"}
    )
    assert response.json() == {"item_id": 1, "q": None}


# --- Starlette ------------------------------------------------------------------------


def test_starlette_routes_middleware_static_and_websocket(starlette_server: str) -> None:
    with httpx.Client(base_url=f"http://{starlette_server}") as client:
        hello = client.get("/hello/world")
        assert (hello.text, hello.headers["x-stamp"]) == ("hello world", "starlette-middleware")
        assert client.post("/json", content=b"abc").json() == {"method": "POST", "body": "abc"}
        static = client.get("/static/hello.txt")
        assert (static.status_code, static.text) == (200, "static hello\n")
        assert client.get("/static/missing.txt").status_code == 404
        assert client.get("/nowhere").status_code == 404
    with connect(f"ws://{starlette_server}/ws", proxy=None) as ws:
        ws.send(b"abc")
        assert ws.recv(timeout=5) == b"cba"
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 4000


# --- Django -------------------------------------------------------------------------


def test_django_sync_and_async_views(django_server: str) -> None:
    with httpx.Client(base_url=f"http://{django_server}") as client:
        sync = client.get("/sync", params={"x": "1"})
        assert (sync.status_code, sync.text) == (200, "sync GET 1")
        result = client.post("/async", content=b"payload")
        assert result.json() == {"async": True, "body": "payload", "path": "/async"}
        assert client.get("/missing").status_code == 404


# --- Flask through WSGIApp ---------------------------------------------------------------


def test_flask_form_stream_download_and_upload(flask_server: str) -> None:
    with httpx.Client(base_url=f"http://{flask_server}") as client:
        form = client.post("/form", data={"name": "ada", "tag": ["a", "b"]})
        assert form.json() == {"name": "ada", "tags": ["a", "b"]}
        with client.stream("GET", "/stream") as streamed:
            assert "content-length" not in streamed.headers  # streamed, not buffered
            lines = [line for line in streamed.iter_lines() if line.startswith("line")]
        assert lines == ["line 0", "line 1", "line 2"]
        download = client.get("/download")
        assert download.content == BIG
        assert "attachment" in download.headers["content-disposition"]
        assert client.post("/upload", content=BIG).json() == {"received": len(BIG)}
