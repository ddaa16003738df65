"""Ready-made apps: File, Directory, NotFound, Redirect, URLMap, Cascade."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pagi.tools import JSONResponse, PlainTextResponse, Request
from pagi.tools.apps import Cascade, Directory, File, NotFound, Redirect, URLMap
from pagi.tools.testing import AsyncTestClient, SSEDeclined

pytestmark = pytest.mark.anyio


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "docs").mkdir(parents=True)
    (root / "empty dir").mkdir()
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "docs" / "a <b>.txt").write_text("A")
    (root / "docs" / "index.htm").write_text("docs index")
    (root / ".secret").write_text("hidden")
    (root / "file.json").write_text("{}")
    (tmp_path / "outside.txt").write_text("outside")
    os.symlink(tmp_path / "outside.txt", root / "escape.txt")
    os.symlink(root / "file.json", root / "link.json")
    return root


async def test_file_app_serves_files_and_index(site: Path) -> None:
    client = AsyncTestClient(File(site), lifespan="off")
    r = await client.get("/")
    assert (r.status_code, r.text, r.headers["content-type"]) == (
        200,
        "<h1>home</h1>",
        "text/html; charset=utf-8",
    )
    r = await client.get("/docs")
    assert (r.status_code, r.location) == (301, "/docs/")
    assert (await client.get("/docs/")).text == "docs index"
    assert (await client.get("/docs/a%20%3Cb%3E.txt")).text == "A"
    assert (await client.get("/empty%20dir/")).status_code == 404
    assert (await client.post("/file.json")).status_code == 405


async def test_file_app_path_safety(site: Path) -> None:
    client = AsyncTestClient(File(site), lifespan="off")
    assert (await client.get("/../outside.txt")).status_code == 403
    assert (await client.get("/docs/%2e%2e/%2e%2e/outside.txt")).status_code == 403
    assert (await client.get("/a%00b")).status_code == 400
    assert (await client.get("/.secret")).status_code == 404
    assert (await client.get("/escape.txt")).status_code == 404  # symlink leaving the root
    assert (await client.get("/link.json")).status_code == 200  # symlink inside the root
    refuse = AsyncTestClient(File(site, symlinks="refuse"), lifespan="off")
    assert (await refuse.get("/link.json")).status_code == 404
    follow = AsyncTestClient(File(site, symlinks="follow", show_hidden=True), lifespan="off")
    assert (await follow.get("/escape.txt")).text == "outside"
    assert (await follow.get("/.secret")).text == "hidden"


async def test_file_app_honours_ranges_and_conditionals(site: Path) -> None:
    client = AsyncTestClient(File(site), lifespan="off")
    first = await client.get("/index.html")
    assert (
        await client.get("/index.html", headers={"if-none-match": first.headers["etag"]})
    ).status_code == 304
    r = await client.get("/index.html", headers={"range": "bytes=1-2"})
    assert (r.status_code, r.content) == (206, b"h1")


async def test_directory_lists_html_and_json(site: Path) -> None:
    (site / "index.html").unlink()
    client = AsyncTestClient(Directory(site), lifespan="off")
    r = await client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert page.index("docs/") < page.index("file.json")  # directories first
    assert ".secret" not in page and "escape.txt" not in page and "link.json" in page
    assert 'href="empty%20dir/"' in page
    (site / "docs" / "index.htm").unlink()
    r = await client.get("/docs/")
    assert (
        "a &lt;b&gt;.txt" in r.text
        and 'href="a%20%3Cb%3E.txt"' in r.text
        and 'href="../"' in r.text
    )
    r = await client.get("/", headers={"accept": "application/json"})
    names = {item["name"]: item["type"] for item in r.json()}
    assert names["docs"] == "directory" and names["file.json"] == "file" and ".secret" not in names


async def test_directory_default_root_signature(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(site)
    r = await AsyncTestClient(Directory(), lifespan="off").get("/file.json")
    assert r.text == "{}"


async def test_not_found_and_redirect() -> None:
    client = AsyncTestClient(NotFound(lambda scope: f"no {scope['path']}"), lifespan="off")
    r = await client.get("/x")
    assert (r.status_code, r.text) == (404, "no /x")
    with pytest.raises(SSEDeclined):
        async with client.sse("/x"):
            pass
    r = await AsyncTestClient(
        Redirect("https://example.com/new?a=1", status=301), lifespan="off"
    ).get("/old?b=2")
    assert (r.status_code, r.location) == (301, "https://example.com/new?a=1&b=2")


async def test_urlmap_longest_prefix_and_root_path() -> None:
    async def where(scope: Any, receive: Any, send: Any) -> None:
        await JSONResponse({"path": scope["path"], "root": scope["root_path"]})(
            scope, receive, send
        )

    app = URLMap({"/api": where, "/api/v2": where, "/": PlainTextResponse("home")})
    client = AsyncTestClient(app, lifespan="off")
    assert (await client.get("/api/v2/x")).json() == {"path": "/x", "root": "/api/v2"}
    assert (await client.get("/api")).json() == {"path": "/", "root": "/api"}
    assert (await client.get("/apis")).text == "home"
    assert (
        await AsyncTestClient(URLMap({"/a": where}), lifespan="off").get("/b")
    ).status_code == 404


async def test_cascade_falls_through_and_replays_the_body(site: Path) -> None:
    async def echo(scope: Any, receive: Any, send: Any) -> None:
        body = await Request(scope, receive).body()
        await PlainTextResponse(b"api got " + body)(scope, receive, send)

    async def picky(scope: Any, receive: Any, send: Any) -> None:
        await Request(scope, receive).body()  # reads the body, then passes
        await PlainTextResponse("nope", 404)(scope, receive, send)

    client = AsyncTestClient(Cascade([File(site), picky, echo]), lifespan="off")
    assert (await client.get("/file.json")).text == "{}"
    r = await client.post("/anything", content=b"payload")
    assert r.text == "api got payload"
