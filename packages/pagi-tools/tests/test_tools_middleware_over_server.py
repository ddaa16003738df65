"""Part-2 middleware over real sockets: compression (curl --compressed and httpx), 304, debug page.

pagi-server runs a Builder-made stack from ``tools_middleware_server_app.py``
with ``--env development`` (so every event also passes Lint).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import brotli
import httpx
import pytest
import zstandard
from server_process import pagi_server
from tools_middleware_server_app import BIG

APP = Path(__file__).with_name("tools_middleware_server_app.py")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with pagi_server(APP) as address:
        yield address


def _raw(server: str, path: str, encoding: str) -> httpx.Response:
    # httpx decodes gzip/br/zstd itself; read the raw bytes to check the coding too.
    with httpx.Client() as client:
        with client.stream(
            "GET", f"http://{server}{path}", headers={"accept-encoding": encoding}
        ) as response:
            response.raw = b"".join(response.iter_raw())  # type: ignore[attr-defined]
            return response


@pytest.mark.parametrize("encoding", ["gzip", "br", "zstd"])
def test_json_body_compressed_over_the_wire(server: str, encoding: str) -> None:
    response = _raw(server, "/json", encoding)
    assert response.headers["content-encoding"] == encoding
    assert "accept-encoding" in response.headers["vary"].lower()
    raw: bytes = response.raw  # type: ignore[attr-defined]
    assert int(response.headers["content-length"]) == len(raw)
    if encoding == "gzip":
        plain = gzip.decompress(raw)
    elif encoding == "br":
        plain = brotli.decompress(raw)
    else:
        plain = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    assert json.loads(plain) == BIG
    assert len(raw) < len(plain) / 4


def test_streamed_body_compressed_chunked_and_decoded_by_httpx(server: str) -> None:
    response = httpx.get(f"http://{server}/stream", headers={"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert "content-length" not in response.headers
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.text.count("\n") == 50 and response.text.startswith("line 0 line 0")


def test_curl_compressed(server: str) -> None:
    if shutil.which("curl") is None:
        # Skipped on a machine without curl, naming the fix; .ci/run installs it
        # and sets PAGI_REQUIRE_SYSTEM_TOOLS=1, which makes this a failure.
        message = "curl is not installed: apt-get install curl"
        if os.environ.get("PAGI_REQUIRE_SYSTEM_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    for path in ("/json", "/stream"):
        result = subprocess.run(
            ["curl", "-sS", "--compressed", "-D", "-", f"http://{server}{path}"],
            capture_output=True,
            timeout=20,
            check=True,
        )
        head, _, body = result.stdout.partition(b"\r\n\r\n")
        assert b"content-encoding: " in head.lower()
        if path == "/json":
            assert json.loads(body) == BIG
        else:
            assert body.count(b"\n") == 50


def test_etag_and_304_over_the_wire(server: str) -> None:
    with httpx.Client(base_url=f"http://{server}") as client:
        first = client.get("/tagged", headers={"accept-encoding": "identity"})
        tag = first.headers["etag"]
        again = client.get("/tagged", headers={"if-none-match": tag, "accept-encoding": "identity"})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == tag
        # Compressed, the tag is weak; a weak If-None-Match still matches.
        zipped = client.get("/tagged", headers={"accept-encoding": "gzip"})
        assert zipped.headers["etag"] == "W/" + tag
        assert (
            client.get("/tagged", headers={"if-none-match": zipped.headers["etag"]}).status_code
            == 304
        )


def test_debug_page_over_the_wire(server: str) -> None:
    with httpx.Client(base_url=f"http://{server}") as client:
        page = client.get("/boom", headers={"accept": "text/html"})
        assert page.status_code == 500
        assert page.headers["content-type"].startswith("text/html")
        assert "over the wire &lt;b&gt;" in page.text
        assert "&lt;i&gt;local value&lt;/i&gt;" in page.text and "<i>local" not in page.text
        api = client.get("/boom", headers={"accept": "application/json"})
        assert api.status_code == 500
        assert api.json()["error"]["message"] == "over the wire <b>"
