"""The toolkit over real sockets: pagi-server in a subprocess, httpx and websockets as clients.

This proves that what the in-memory test client accepts, the real server
serves the same way. The server runs with ``--env development``, so every
event also passes the Lint middleware on the way.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_process import pagi_server
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

APP = Path(__file__).with_name("tools_server_app.py")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("served") / "data.txt"
    data.write_bytes(b"0123456789" * 10)
    with pagi_server(APP, env={"PAGI_TOOLS_TEST_FILE": str(data)}) as address:
        yield address


def test_text_cookies_and_query(server: str) -> None:
    with httpx.Client(base_url=f"http://{server}") as client:
        r = client.get("/hello", params={"name": "wire"})
        assert (r.status_code, r.text) == (200, "hello wire")
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        assert r.headers["set-cookie"] == "seen=1; Path=/; HttpOnly; SameSite=Lax"
        r = client.post("/echo", content=b"payload")
        assert r.json() == {"body": "payload", "cookies": {"seen": "1"}}


def test_multipart_upload(server: str) -> None:
    r = httpx.post(
        f"http://{server}/echo", data={"field": "v"}, files={"file": ("a.txt", b"contents")}
    )
    assert r.json() == {"field": "v", "file": "contents"}


def test_file_ranges_and_conditionals(server: str) -> None:
    with httpx.Client(base_url=f"http://{server}") as client:
        full = client.get("/file")
        assert full.content == b"0123456789" * 10
        assert (
            client.get("/file", headers={"if-none-match": full.headers["etag"]}).status_code == 304
        )
        part = client.get("/file", headers={"range": "bytes=-4"})
        assert (part.status_code, part.content) == (206, b"6789")
        multi = client.get("/file", headers={"range": "bytes=0-1,4-5"})
        assert multi.status_code == 206 and b"01" in multi.content and b"45" in multi.content
        head = client.head("/file")
        assert head.headers["content-length"] == "100" and head.content == b""


def test_streaming_response(server: str) -> None:
    with httpx.stream("GET", f"http://{server}/stream") as r:
        assert "content-length" not in r.headers
        assert r.read() == b"chunk 0\nchunk 1\nchunk 2\n"


def test_method_not_allowed_and_not_found(server: str) -> None:
    r = httpx.delete(f"http://{server}/hello")
    assert (r.status_code, r.headers["allow"]) == (405, "GET, HEAD, OPTIONS")
    assert httpx.get(f"http://{server}/missing").status_code == 404


def test_sse_stream_and_decline(server: str) -> None:
    headers = {"accept": "text/event-stream", "last-event-id": "7"}
    with httpx.stream("GET", f"http://{server}/events", headers=headers) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        body = r.read().decode()
    assert "event: hello\n" in body and 'data: {"last":"7"}\n' in body and "id: 1\n" in body
    assert "data: line one\ndata: line two\n\n" in body
    declined = httpx.get(f"http://{server}/nowhere", headers={"accept": "text/event-stream"})
    assert declined.status_code == 404 and declined.text == "Not Found"


def test_websocket_echo_and_denial(server: str) -> None:
    with connect(f"ws://{server}/ws", subprotocols=["echo"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "echo"
        ws.send("hi")
        assert ws.recv(timeout=5) == "echo: hi"
    with pytest.raises(InvalidStatus) as info:
        with connect(f"ws://{server}/ws?deny=1"):
            pass
    assert info.value.response.status_code == 401
    assert info.value.response.body == b"no entry"
