"""Responses as detached values and apps: bodies, cookies, streaming, files, per-scope answers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio
import pytest

from pagi.spec import EventError
from pagi.tools import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from pagi.tools.conditional import http_date
from pagi.tools.testing import AsyncTestClient, SSEDeclined, WebSocketDenied

pytestmark = pytest.mark.anyio


async def test_text_html_json_defaults() -> None:
    async with AsyncTestClient(PlainTextResponse("héllo"), lifespan="off") as client:
        r = await client.get("/")
        assert (r.status_code, r.headers["content-type"], r.headers["content-length"], r.text) == (
            200,
            "text/plain; charset=utf-8",
            "6",
            "héllo",
        )
    r = await AsyncTestClient(HTMLResponse("<b>x</b>", status=201), lifespan="off").get("/")
    assert (r.status_code, r.headers["content-type"]) == (201, "text/html; charset=utf-8")
    r = await AsyncTestClient(JSONResponse({"ü": [1, None]}), lifespan="off").get("/")
    assert r.headers["content-type"] == "application/json"
    assert r.content == '{"ü":[1,null]}'.encode()


async def test_response_is_reusable_across_connections() -> None:
    response = PlainTextResponse("same")
    client = AsyncTestClient(response, lifespan="off")
    assert [(await client.get("/")).text for _ in range(3)] == ["same"] * 3


async def test_head_gets_headers_without_body() -> None:
    r = await AsyncTestClient(PlainTextResponse("body"), lifespan="off").head("/")
    assert r.content == b"" and r.headers["content-length"] == "4"


def test_bad_inputs_are_refused_early() -> None:
    with pytest.raises(ValueError):
        Response(status=99)
    with pytest.raises(ValueError):
        PlainTextResponse("x", headers={"x-bad": "a\r\nb"})
    with pytest.raises(TypeError):
        Response(123)
    with pytest.raises(ValueError):
        JSONResponse(float("nan"))
    with pytest.raises(ValueError):
        RedirectResponse("/x", status=200)


async def test_204_and_304_have_no_content_length() -> None:
    assert "content-length" not in Response(status=204).headers
    assert "content-length" not in Response(status=304).headers


async def test_redirect_encodes_location() -> None:
    r = await AsyncTestClient(RedirectResponse("/café?q=1"), lifespan="off").get("/")
    assert (r.status_code, r.location, r.content) == (307, "/caf%C3%A9?q=1", b"")


async def test_cookies_set_and_delete() -> None:
    response = PlainTextResponse("ok")
    response.set_cookie("sid", "abc", max_age=10, httponly=True, secure=True, samesite="strict")
    response.delete_cookie("old", path="/app")
    r = await AsyncTestClient(response, lifespan="off").get("/")
    cookies = r.headers.getlist("set-cookie")
    assert cookies[0] == "sid=abc; Max-Age=10; Path=/; Secure; HttpOnly; SameSite=Strict"
    assert cookies[1].startswith(
        "old=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/app"
    )


async def test_streaming_from_async_and_sync_iterators() -> None:
    async def agen() -> AsyncIterator[str]:
        for part in ("a", "b", "c"):
            yield part

    def gen() -> Iterator[bytes]:
        yield b"x"
        yield b"y"

    r = await AsyncTestClient(
        StreamingResponse(agen(), media_type="text/plain"), lifespan="off"
    ).get("/")
    assert r.text == "abc" and "content-length" not in r.headers
    assert len([e for e in r.events if e["type"] == "http.response.body"]) == 4
    r = await AsyncTestClient(StreamingResponse(gen()), lifespan="off").get("/")
    assert r.content == b"xy"


async def test_endless_stream_stops_when_client_disconnects() -> None:
    produced = 0
    finished = anyio.Event()

    async def forever() -> AsyncIterator[bytes]:
        nonlocal produced
        try:
            while True:
                produced += 1
                yield b"tick\n"
                await anyio.sleep(0.01)
        finally:
            finished.set()

    client = AsyncTestClient(
        lambda s, r, se: StreamingResponse(forever())(s, r, se), lifespan="off"
    )
    async with client.stream("GET", "/") as response:
        chunks = []
        async with aclosing(response.aiter_bytes()) as stream:
            async for chunk in stream:
                chunks.append(chunk)
                if len(chunks) == 3:
                    break
    assert chunks == [b"tick\n"] * 3
    assert response.connection.disconnect_reason() == "client_closed"
    with anyio.fail_after(1):
        await finished.wait()


async def test_streaming_error_propagates() -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"x"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await AsyncTestClient(StreamingResponse(broken()), lifespan="off").get("/")


async def test_plain_response_declines_sse_and_denies_websocket() -> None:
    client = AsyncTestClient(PlainTextResponse("nope", 404), lifespan="off")
    with pytest.raises(SSEDeclined) as declined:
        async with client.sse("/"):
            pass
    assert (declined.value.response.status_code, declined.value.response.content) == (404, b"nope")
    with pytest.raises(WebSocketDenied) as denied:
        async with client.websocket("/"):
            pass
    assert denied.value.response.status_code == 404
    client.websocket_denial = False  # without the extension: close before accept -> 403
    with pytest.raises(WebSocketDenied) as denied:
        async with client.websocket("/"):
            pass
    assert denied.value.response.status_code == 403


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.txt"
    path.write_bytes(bytes(range(48, 58)) * 10)  # "0123456789" * 10
    os.utime(path, (1_700_000_000, 1_700_000_000))
    return path


async def test_file_response_full_and_validators(data_file: Path) -> None:
    client = AsyncTestClient(FileResponse(data_file), lifespan="off")
    r = await client.get("/")
    assert r.content == data_file.read_bytes()
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["content-length"] == "100"
    assert r.headers["last-modified"] == http_date(1_700_000_000)
    assert r.headers["accept-ranges"] == "bytes"
    body_event = next(e for e in r.events if e["type"] == "http.response.body")
    assert body_event["file"] == str(data_file) and body_event["length"] == 100
    etag = r.headers["etag"]
    r = await client.get("/", headers={"if-none-match": etag})
    assert r.status_code == 304 and r.content == b"" and "content-type" not in r.headers
    r = await client.get("/", headers={"if-modified-since": http_date(1_700_000_000)})
    assert r.status_code == 304
    r = await client.get("/", headers={"if-match": '"nope"'})
    assert r.status_code == 412
    r = await client.head("/")
    assert r.content == b"" and r.headers["content-length"] == "100"


async def test_file_response_ranges(data_file: Path) -> None:
    client = AsyncTestClient(FileResponse(data_file), lifespan="off")
    r = await client.get("/", headers={"range": "bytes=10-14"})
    assert (r.status_code, r.content, r.headers["content-range"]) == (
        206,
        b"01234",
        "bytes 10-14/100",
    )
    r = await client.get("/", headers={"range": "bytes=-3"})
    assert (r.content, r.headers["content-range"]) == (b"789", "bytes 97-99/100")
    r = await client.get("/", headers={"range": "bytes=200-"})
    assert (r.status_code, r.headers["content-range"]) == (416, "bytes */100")
    r = await client.get("/", headers={"range": "bytes=0-0", "if-range": '"stale"'})
    assert r.status_code == 200 and len(r.content) == 100
    etag = (await client.head("/")).headers["etag"]
    r = await client.get("/", headers={"range": "bytes=0-0", "if-range": etag})
    assert r.status_code == 206 and r.content == b"0"


async def test_file_response_multi_range(data_file: Path) -> None:
    r = await AsyncTestClient(FileResponse(data_file), lifespan="off").get(
        "/", headers={"range": "bytes=0-1, 5-6"}
    )
    assert r.status_code == 206
    kind = r.headers["content-type"]
    assert kind.startswith("multipart/byteranges; boundary=")
    boundary = kind.split("=", 1)[1]
    assert int(r.headers["content-length"]) == len(r.content)
    parts = r.content.split(f"--{boundary}".encode())
    assert b"content-range: bytes 0-1/100\r\n\r\n01\r\n" in parts[1]
    assert b"content-range: bytes 5-6/100\r\n\r\n56\r\n" in parts[2]
    assert parts[3] == b"--\r\n"


async def test_file_response_attachment_and_missing_file(tmp_path: Path, data_file: Path) -> None:
    r = await AsyncTestClient(FileResponse(data_file, filename="résumé.txt"), lifespan="off").get(
        "/"
    )
    assert r.headers["content-disposition"] == (
        "attachment; filename=\"r?sum?.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt"
    )
    r = await AsyncTestClient(FileResponse(tmp_path / "missing"), lifespan="off").get("/")
    assert r.status_code == 404


async def test_send_validation_catches_bad_app_events() -> None:
    async def bad(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x", "str")]})

    with pytest.raises(EventError, match="header value must be bytes"):
        await AsyncTestClient(bad, lifespan="off").get("/")
