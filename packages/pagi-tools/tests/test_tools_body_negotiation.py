"""XSendfile, FormBody, JSONBody, ContentNegotiation and SSERetry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pagi.spec import Receive, Scope, Send
from pagi.tools import SSE, FileResponse, JSONResponse, Request, Router
from pagi.tools.middleware import (
    ContentNegotiation,
    FormBody,
    JSONBody,
    OptionError,
    SSERetry,
    XSendfile,
)
from pagi.tools.middleware.lint import Lint
from pagi.tools.testing import AsyncTestClient

pytestmark = pytest.mark.anyio


async def inspect_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with what the middleware left in the scope, and the body it can still read."""
    body = await Request(scope, receive).body()
    parsed = scope.get("pagi.parsed_body")
    if hasattr(parsed, "multi_items"):
        parsed = parsed.multi_items()
    await JSONResponse(
        {
            "parsed": parsed,
            "raw": scope.get("pagi.raw_body", b"").decode(),
            "body": body.decode(),
            "preferred": scope.get("pagi.preferred_content_type"),
            "accepted": scope.get("pagi.accepted_types"),
        }
    )(scope, receive, send)


# -- XSendfile --------------------------------------------------------------------------------


def file_router(path: Path) -> Router:
    router = Router()

    @router.get("/file")
    async def file(request: Request) -> Any:
        return FileResponse(path)

    return router


async def test_xsendfile_replaces_whole_files_with_the_header(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 1000)
    client = AsyncTestClient(Lint(XSendfile(file_router(path), header="X-Sendfile")))
    got = await client.get("/file")
    assert got.status_code == 200 and got.content == b""
    assert got.headers["x-sendfile"] == str(path)
    assert got.headers["content-length"] == "0"
    ranged = await client.get("/file", headers={"range": "bytes=0-9"})
    assert ranged.status_code == 206 and ranged.content == b"x" * 10
    assert "x-sendfile" not in ranged.headers


async def test_xsendfile_mapping_for_nginx(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "a.txt"
    path.parent.mkdir()
    path.write_bytes(b"hello")
    mapping = {str(tmp_path) + "/": "/protected/"}
    got = await AsyncTestClient(XSendfile(file_router(path), mapping=mapping)).get("/file")
    assert got.headers["x-accel-redirect"] == "/protected/sub/a.txt"
    elsewhere = {"/nowhere/": "/x/"}
    got = await AsyncTestClient(XSendfile(file_router(path), mapping=elsewhere)).get("/file")
    assert "x-accel-redirect" not in got.headers and got.content == b"hello"


def test_xsendfile_bad_options() -> None:
    with pytest.raises(OptionError, match="'header'"):
        XSendfile(inspect_app, header="x-send")


# -- FormBody and JSONBody --------------------------------------------------------------------


async def test_form_body_parses_and_replays() -> None:
    client = AsyncTestClient(Lint(FormBody(inspect_app)))
    got = (await client.post("/", data={"a": ["1", "2"], "b": ""}, chunk_size=2)).json()
    assert got["parsed"] == [["a", "1"], ["a", "2"], ["b", ""]]
    assert got["raw"] == got["body"] == "a=1&a=2&b="
    plain = (await client.post("/", json={"a": 1})).json()
    assert plain["parsed"] is None and plain["body"] == '{"a": 1}'


async def test_json_body_parses_reports_errors_and_limits() -> None:
    client = AsyncTestClient(Lint(JSONBody(inspect_app, max_size=100)))
    got = (await client.post("/", json={"x": [1, 2]})).json()
    assert got["parsed"] == {"x": [1, 2]} and got["body"] == '{"x": [1, 2]}'
    vendor = await client.post(
        "/", content=b"[true]", headers={"content-type": "application/vnd.api+json"}
    )
    assert vendor.json()["parsed"] == [True]
    bad = await client.post(
        "/", content=b'{"a": 1,\n "b": }', headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400
    assert bad.text == "Invalid JSON: Expecting value at line 2 column 7 (char 15)"
    big = await client.post("/", json={"x": "y" * 200}, chunk_size=10)
    assert big.status_code == 413


def test_body_parser_bad_options() -> None:
    with pytest.raises(OptionError, match="JSONBody: option 'max_size'"):
        JSONBody(inspect_app, max_size=-1)


# -- ContentNegotiation --------------------------------------------------------------------


async def test_content_negotiation_picks_and_records() -> None:
    app = ContentNegotiation(inspect_app, ["application/json", "text/html"])
    client = AsyncTestClient(Lint(app))
    got = (await client.get("/", headers={"accept": "text/html, application/json;q=0.5"})).json()
    assert got["preferred"] == "text/html"
    assert got["accepted"] == ["text/html", "application/json"]
    assert (await client.get("/", headers={"accept": "image/png"})).json()[
        "preferred"
    ] == "application/json"
    strict = AsyncTestClient(ContentNegotiation(inspect_app, ["application/json"], strict=True))
    refused = await strict.get("/", headers={"accept": "text/csv"})
    assert refused.status_code == 406 and "application/json" in refused.text
    assert (await strict.get("/", headers={"accept": "*/*"})).status_code == 200


def test_content_negotiation_bad_options() -> None:
    with pytest.raises(OptionError, match="'supported'"):
        ContentNegotiation(inspect_app, [])
    with pytest.raises(OptionError, match="'default'"):
        ContentNegotiation(inspect_app, ["text/html"], default="text/plain")


# -- SSERetry ------------------------------------------------------------------------------


def sse_router() -> Router:
    router = Router()

    @router.sse("/events")
    async def events(sse: SSE) -> None:
        await sse.start()
        await sse.send("one")
        await sse.send("two", retry=99)
        await sse.send("three")

    return router


async def test_sse_retry_on_start_and_on_events() -> None:
    async with AsyncTestClient(Lint(SSERetry(sse_router()))).sse("/events") as session:
        retries = [event.retry async for event in session]
    assert retries == [3000, 99, None]
    app = SSERetry(sse_router(), retry_ms=500, on_start=False, on_events=True)
    async with AsyncTestClient(app).sse("/events") as session:
        retries = [event.retry async for event in session]
    assert retries == [500, 99, 500]


def test_sse_retry_bad_options() -> None:
    with pytest.raises(OptionError, match="'retry_ms'"):
        SSERetry(sse_router(), retry_ms=-5)
