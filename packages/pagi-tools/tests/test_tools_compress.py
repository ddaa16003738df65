"""GZip and Compress: negotiation, streaming with flushes, what is skipped, options."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any

import anyio
import brotli
import pytest
import zstandard

from pagi.spec import Receive, Scope, Send
from pagi.tools import FileResponse, Lifespan, PlainTextResponse, Response, Route, Router
from pagi.tools.middleware import Compress, GZip, OptionError
from pagi.tools.middleware.compress import available_encodings, negotiate_encoding
from pagi.tools.middleware.lint import Lint
from pagi.tools.testing import AsyncTestClient

pytestmark = pytest.mark.anyio

TEXT = ("hello compression " * 200).encode()


def app_for(response: Response) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await response(scope, receive, send)

    return app


def decode(coding: str, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.decompress(data)
    if coding == "br":
        return bytes(brotli.decompress(data))
    return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(data))


async def test_gzip_single_body_keeps_status_and_headers() -> None:
    response = PlainTextResponse(TEXT, 201, headers={"x-app": "1", "etag": '"abc"'})
    response.headers["accept-ranges"] = "bytes"
    client = AsyncTestClient(Lint(GZip(app_for(response))))
    got = await client.get("/", headers={"accept-encoding": "gzip"})
    assert got.status_code == 201
    assert got.headers["content-encoding"] == "gzip"
    assert got.headers["vary"] == "Accept-Encoding"
    assert got.headers["x-app"] == "1"
    assert got.headers["etag"] == 'W/"abc"'
    assert "accept-ranges" not in got.headers
    assert int(got.headers["content-length"]) == len(got.content) < len(TEXT)
    assert gzip.decompress(got.content) == TEXT


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
async def test_each_coding_round_trips(coding: str) -> None:
    client = AsyncTestClient(Compress(app_for(PlainTextResponse(TEXT))))
    got = await client.get("/", headers={"accept-encoding": coding})
    assert got.headers["content-encoding"] == coding
    assert decode(coding, got.content) == TEXT


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip, br, zstd", "zstd"),  # equal q: the server's order decides
        ("gzip;q=0.5, br;q=0.9", "br"),
        ("br;q=0, *", "zstd"),
        ("zstd;q=0, br;q=0, *;q=0.1", "gzip"),
        ("identity", None),
        ("*;q=0", None),
        ("x-gzip", "gzip"),
        ("GZIP;Q=1", "gzip"),
        ("gzip;q=bogus", None),
        ("", None),
        (None, None),
    ],
)
def test_negotiate_encoding(header: str | None, expected: str | None) -> None:
    assert negotiate_encoding(header, ("zstd", "br", "gzip")) == expected


async def test_no_acceptable_coding_sends_identity_with_vary() -> None:
    client = AsyncTestClient(Compress(app_for(PlainTextResponse(TEXT))))
    got = await client.get("/", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in got.headers
    assert got.headers["vary"] == "Accept-Encoding"
    assert got.content == TEXT


async def test_small_bodies_are_left_alone() -> None:
    client = AsyncTestClient(GZip(app_for(PlainTextResponse(b"x" * 499))))
    got = await client.get("/", headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in got.headers and got.content == b"x" * 499

    async def unknown_length(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"y" * 100})

    got = await AsyncTestClient(GZip(unknown_length)).get("/", headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in got.headers and got.content == b"y" * 100
    got = await AsyncTestClient(GZip(unknown_length, minimum_size=10)).get(
        "/", headers={"accept-encoding": "gzip"}
    )
    assert got.headers["content-encoding"] == "gzip"


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
async def test_streamed_chunks_are_flushed_as_they_come(coding: str) -> None:
    step = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"9999")],
            }
        )
        await send({"type": "http.response.body", "body": b"first chunk;", "more": True})
        await step.wait()  # a middleware buffering the stream would deadlock the test here
        await send({"type": "http.response.body", "body": b"second chunk", "more": True})
        await send({"type": "http.response.body", "body": b""})

    if coding == "gzip":
        d: Any = zlib.decompressobj(31)
    elif coding == "br":
        d = brotli.Decompressor()
    else:
        d = zstandard.ZstdDecompressor().decompressobj()

    def feed(data: bytes) -> bytes:
        return bytes(d.process(data) if coding == "br" else d.decompress(data))

    client = AsyncTestClient(Lint(Compress(app)), timeout=3)
    plain = b""
    async with client.stream("GET", "/", headers={"accept-encoding": coding}) as response:
        assert response.headers["content-encoding"] == coding
        assert "content-length" not in response.headers
        async for chunk in response.aiter_bytes():
            plain += feed(chunk)
            if plain == b"first chunk;":
                step.set()
    assert plain == b"first chunk;second chunk"
    assert step.is_set()


@pytest.mark.parametrize(
    "headers",
    [
        {"content-encoding": "br"},
        {"content-type": "text/event-stream"},
        {"content-type": "image/png"},
        {"content-type": "application/zip"},
        {"content-type": "video/mp4"},
    ],
)
async def test_skips_encoded_streams_and_compressed_types(headers: dict[str, str]) -> None:
    client = AsyncTestClient(Compress(app_for(Response(TEXT, headers=headers))))
    got = await client.get("/", headers={"accept-encoding": "gzip, br, zstd"})
    assert got.content == TEXT
    assert got.headers.get("content-encoding") == headers.get("content-encoding")


async def test_skips_partial_responses_and_head(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes(TEXT)
    client = AsyncTestClient(GZip(app_for(FileResponse(path))))
    partial = await client.get("/", headers={"accept-encoding": "gzip", "range": "bytes=0-9"})
    assert partial.status_code == 206 and partial.content == TEXT[:10]
    assert "content-encoding" not in partial.headers
    head = await client.head("/", headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in head.headers
    assert head.headers["content-length"] == str(len(TEXT))


async def test_file_bodies_are_compressed_unless_already_compressed(tmp_path: Path) -> None:
    text = tmp_path / "page.html"
    text.write_bytes(TEXT * 50)  # several 64 KiB reads
    client = AsyncTestClient(Lint(Compress(app_for(FileResponse(text)))))
    got = await client.get("/", headers={"accept-encoding": "zstd"})
    assert got.headers["content-encoding"] == "zstd"
    assert decode("zstd", got.content) == TEXT * 50
    image = tmp_path / "photo.jpg"
    image.write_bytes(TEXT)
    got = await AsyncTestClient(Compress(app_for(FileResponse(image)))).get(
        "/", headers={"accept-encoding": "gzip"}
    )
    assert "content-encoding" not in got.headers
    assert any("file" in event for event in got.events)  # still a zero-copy file event


async def test_other_scope_types_pass_through() -> None:
    router = Router()
    router.add(Route("/", app=app_for(PlainTextResponse(TEXT))))
    started: list[str] = []
    app = Lifespan(router, startup=[lambda state: started.append("up")])
    async with AsyncTestClient(GZip(app), lifespan="on") as client:
        got = await client.get("/", headers={"accept-encoding": "gzip"})
        assert got.headers["content-encoding"] == "gzip"
    assert started == ["up"]


def test_codings_whose_library_is_missing_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    from pagi.tools.middleware import compress

    real = compress._load
    monkeypatch.setattr(compress, "_load", lambda name: None if name == "brotli" else real(name))
    assert Compress(app_for(PlainTextResponse(b""))).encodings == ("zstd", "gzip")
    assert Compress(app_for(PlainTextResponse(b"")), encodings=("br",)).encodings == ()


def test_bad_options_name_the_option() -> None:
    app = app_for(PlainTextResponse(b""))
    with pytest.raises(OptionError, match="'minimum_size'"):
        GZip(app, minimum_size=-1)
    with pytest.raises(OptionError, match="'compresslevel'"):
        GZip(app, compresslevel=10)
    with pytest.raises(OptionError, match="'encodings'"):
        Compress(app, encodings=("lzma",))
    with pytest.raises(OptionError, match="'encodings'"):
        Compress(app, encodings="gzip")
    with pytest.raises(OptionError, match="'levels'"):
        Compress(app, levels={"br": 12})


def test_extras_are_found() -> None:
    assert available_encodings() == ["gzip", "br", "zstd"]
    assert Compress(app_for(PlainTextResponse(b""))).encodings == ("zstd", "br", "gzip")
