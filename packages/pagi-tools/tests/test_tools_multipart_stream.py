"""Pull-based multipart: request.multipart() parts streamed, limits, drain, truncation, memory."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from pagi.tools import JSONResponse, Request
from pagi.tools.exceptions import BodyTooLarge, FormError
from pagi.tools.forms import FormLimits
from pagi.tools.testing import AsyncTestClient

pytestmark = pytest.mark.anyio

BOUNDARY = "pagi-test-boundary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def part(name: str, body: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    head = f"--{BOUNDARY}\r\ncontent-disposition: {disposition}\r\n\r\n".encode()
    return head + body + b"\r\n"


def body_of(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def scope_for(content_type: str = CONTENT_TYPE) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/",
        "query_string": b"",
        "headers": [(b"content-type", content_type.encode())],
    }


def receiver(chunks: Any) -> Any:
    iterator = iter(chunks)

    async def receive() -> dict[str, Any]:
        try:
            chunk = next(iterator)
        except StopIteration:
            return {"type": "http.request", "body": b"", "more": False}
        return {"type": "http.request", "body": chunk, "more": True}

    return receive


async def test_fields_files_sinks_and_skipped_parts(tmp_path: Path) -> None:
    saved = tmp_path / "upload.bin"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        seen: dict[str, Any] = {}
        async for item in request.multipart():
            if item.name == "title":
                seen["title"] = await item.text()
            elif item.name == "upload":
                seen["saved"] = await item.save(saved)
                seen["filename"] = item.filename
            elif item.name == "chunks":
                got: list[bytes] = []
                seen["sunk"] = await item.save_to(got.append)
            # "skipped" is never read: moving on drains it
        await JSONResponse(seen)(scope, receive, send)

    payload = body_of(
        part("title", "héllo".encode()),
        part("skipped", b"s" * 100_000),
        part("upload", b"\x00\x01" * 50_000, filename="a.bin"),
        part("chunks", b"c" * 70_000, filename="c.txt"),
    )
    client = AsyncTestClient(app, lifespan="off")
    response = await client.post("/", content=payload, headers={"content-type": CONTENT_TYPE})
    assert response.json() == {
        "title": "héllo",
        "saved": 100_000,
        "filename": "a.bin",
        "sunk": 70_000,
    }
    assert saved.read_bytes() == b"\x00\x01" * 50_000


@pytest.mark.parametrize(
    ("limits", "parts", "message"),
    [
        (FormLimits(max_parts=2), [part(f"f{n}", b"x") for n in range(3)], "max_parts"),
        (FormLimits(max_field_size=10), [part("f", b"x" * 11)], "max_field_size"),
        (FormLimits(max_file_size=10), [part("f", b"x" * 11, "f.txt")], "max_file_size"),
        (FormLimits(max_total_size=100), [part("f", b"x" * 200, "f.txt")], "max_total_size"),
    ],
)
async def test_limits_are_those_of_form(
    limits: FormLimits, parts: list[bytes], message: str
) -> None:
    request = Request(scope_for(), receiver([body_of(*parts)]))
    with pytest.raises(BodyTooLarge, match=message):
        async for item in request.multipart(limits):
            await item.read()


async def test_a_truncated_upload_raises_and_deletes_the_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "partial.bin"
    whole = body_of(part("upload", b"z" * 200_000, filename="z.bin"))
    request = Request(scope_for(), receiver([whole[:50_000], whole[50_000:120_000]]))
    with pytest.raises(FormError, match="truncated"):
        async for item in request.multipart():
            await item.save(target)
    assert not target.exists()


async def test_other_content_types_are_refused() -> None:
    request = Request(scope_for("application/json"), receiver([b"{}"]))
    with pytest.raises(FormError, match="expected multipart/form-data"):
        request.multipart()


# The parser is backend-neutral; one backend keeps this 1 GiB run to ~1 s.
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_memory_stays_flat_for_a_1_gib_upload(anyio_backend: str) -> None:
    chunk = b"m" * (256 * 1024)
    count = 4096  # 1 GiB
    head = f'--{BOUNDARY}\r\ncontent-disposition: form-data; name="big"; filename="big.bin"\r\n\r\n'
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()

    def chunks() -> Any:
        yield head.encode()
        for _ in range(count):
            yield chunk  # the same object: the test itself allocates nothing per chunk
        yield tail

    request = Request(scope_for(), receiver(chunks()))
    limits = FormLimits(max_file_size=2 << 30, max_total_size=2 << 30)
    received = 0

    def sink(data: bytes) -> None:
        nonlocal received
        received += len(data)

    tracemalloc.start()
    try:
        async for item in request.multipart(limits):
            await item.save_to(sink)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == len(chunk) * count
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while streaming 1 GiB"
