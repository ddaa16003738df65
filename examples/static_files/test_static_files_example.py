"""The static file server over a real pagi-server: encodings, validators, ranges, unsafe paths."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import brotli
import httpx
from example_harness import EXAMPLES, serve

PUBLIC = EXAMPLES / "static_files" / "public"


def test_precompressed_siblings_match_their_files() -> None:
    # If this fails, an asset changed: run examples/static_files/precompress.py.
    for sibling in sorted(PUBLIC.rglob("*.gz")) + sorted(PUBLIC.rglob("*.br")):
        original = sibling.with_suffix("").read_bytes()
        unpack = gzip.decompress if sibling.suffix == ".gz" else brotli.decompress
        assert unpack(sibling.read_bytes()) == original, sibling


def test_static_files_and_directory(tmp_path: Path) -> None:
    root = tmp_path / "public"
    shutil.copytree(PUBLIC, root)
    (root / ".secret").write_text("hidden files are not served")
    (tmp_path / "outside.txt").write_text("outside the root")
    (root / "leak.txt").symlink_to(tmp_path / "outside.txt")
    js = (PUBLIC / "app.js").read_bytes()
    guide = (PUBLIC / "docs" / "guide.txt").read_bytes()

    with (
        serve("static_files/app.py", tmp_path, env={"STATIC_ROOT": str(root)}) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        home = client.get("/")
        assert (home.status_code, home.headers["location"]) == (307, "/static/")

        # The .br or .gz sibling when accepted (br first), the file itself otherwise.
        sent = {}
        for accept, coding in [("br, gzip", "br"), ("gzip", "gzip"), ("identity", None)]:
            got = client.get("/static/app.js", headers={"accept-encoding": accept})
            assert got.status_code == 200
            assert got.headers.get("content-encoding") == coding
            assert got.headers["vary"] == "Accept-Encoding"
            assert got.headers["content-type"].startswith("text/javascript")
            assert got.content == js  # httpx decodes br and gzip
            sent[coding] = int(got.headers["content-length"])
        assert sent["br"] < sent["gzip"] < sent[None] == len(js)
        index = client.get("/static/", headers={"accept-encoding": "gzip"})
        assert index.headers["content-encoding"] == "gzip" and "<h1>Static files" in index.text

        # Validators: each variant has its own ETag; a matching one gets a bodiless 304.
        br = client.get("/static/app.js", headers={"accept-encoding": "br"}).headers["etag"]
        plain = client.get("/static/app.js", headers={"accept-encoding": "identity"})
        assert br != plain.headers["etag"]
        again = client.get(
            "/static/app.js",
            headers={"accept-encoding": "identity", "if-none-match": plain.headers["etag"]},
        )
        assert (again.status_code, again.content) == (304, b"")
        assert again.headers["etag"] == plain.headers["etag"]
        since = client.get(
            "/static/app.js",
            headers={
                "accept-encoding": "identity",
                "if-modified-since": plain.headers["last-modified"],
            },
        )
        assert since.status_code == 304

        # Ranges: a slice, a suffix, several slices, and one past the end.
        part = client.get("/static/docs/guide.txt", headers={"range": "bytes=5-14"})
        assert part.status_code == 206 and part.content == guide[5:15]
        assert part.headers["content-range"] == f"bytes 5-14/{len(guide)}"
        tail = client.get("/static/docs/guide.txt", headers={"range": "bytes=-20"})
        assert tail.status_code == 206 and tail.content == guide[-20:]
        parts = client.get("/static/docs/guide.txt", headers={"range": "bytes=0-3,10-13"})
        assert parts.status_code == 206
        assert parts.headers["content-type"].startswith("multipart/byteranges; boundary=")
        assert guide[0:4] in parts.content and guide[10:14] in parts.content
        past = client.get("/static/docs/guide.txt", headers={"range": "bytes=99999-"})
        assert past.status_code == 416
        assert past.headers["content-range"] == f"bytes */{len(guide)}"
        stale = client.get(
            "/static/docs/guide.txt", headers={"range": "bytes=0-3", "if-range": '"not-it"'}
        )
        assert stale.status_code == 200 and stale.content == guide  # If-Range failed: all of it

        # Unsafe or missing paths get a short answer, never a file from elsewhere.
        for path, status in [
            ("/static/%2e%2e/app.py", 403),
            ("/static/a%00b", 400),
            ("/static/.secret", 404),
            ("/static/leak.txt", 404),
            ("/static/missing.css", 404),
        ]:
            refused = client.get(path)
            assert refused.status_code == status, path
            assert b"outside" not in refused.content and b"hidden" not in refused.content

        # The Directory app lists the folder (JSON when asked), hidden names left out.
        listing = client.get("/files/", headers={"accept": "application/json"}).json()
        names = {entry["name"]: entry["type"] for entry in listing}
        assert names["docs"] == "directory" and names["app.js.br"] == "file"
        assert ".secret" not in names and "leak.txt" not in names
        page = client.get("/files/docs/")
        assert page.status_code == 200 and 'href="guide.txt"' in page.text
        assert client.get("/files/docs/guide.txt").content == guide
