import os
from collections.abc import Iterator
from pathlib import Path

import httpx
from example_harness import serve


def test_bodies_come_back_byte_for_byte(tmp_path: Path) -> None:
    blob = os.urandom(3 * 1024 * 1024)

    def pieces() -> Iterator[bytes]:  # a chunked upload, 64 KiB at a time
        for at in range(0, len(blob), 65536):
            yield blob[at : at + 65536]

    with serve("body_echo/app.py", tmp_path) as server:
        got = httpx.post(server.url + "/", content=pieces(), timeout=10)
        assert got.status_code == 200 and got.content == blob
        assert got.headers["content-type"] == "application/octet-stream"
        small = httpx.put(
            server.url + "/?count=1", content=b"hi", headers={"content-type": "text/x-demo"}
        )
        assert small.headers["content-type"] == "text/x-demo"
        assert small.text.startswith("hi\n[") and small.text.endswith(" pieces]\n")
        refused = httpx.get(server.url + "/")
        assert refused.status_code == 405 and refused.headers["allow"] == "POST, PUT"
