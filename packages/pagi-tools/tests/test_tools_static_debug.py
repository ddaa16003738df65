"""StaticFiles (pre-compressed siblings, ranges, 304) and DebugPanel."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from pagi.spec import Receive, Scope, Send
from pagi.tools import HTMLResponse, JSONResponse, PlainTextResponse, Request, Router
from pagi.tools.middleware import DebugPanel, OptionError, StaticFiles
from pagi.tools.middleware.lint import Lint
from pagi.tools.testing import AsyncTestClient

pytestmark = pytest.mark.anyio


async def fallback(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse(f"app {scope['path']}")(scope, receive, send)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "app.js").write_text("console.log('hello');\n" * 50)
    (tmp_path / "app.js.br").write_bytes(b"BROTLI-BYTES")
    (tmp_path / "app.js.gz").write_bytes(gzip.compress((tmp_path / "app.js").read_bytes()))
    (tmp_path / "plain.txt").write_text("0123456789")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.html").write_text("<p>docs</p>")
    (tmp_path / ".secret").write_text("no")
    return tmp_path


async def test_static_files_serves_under_the_prefix_only(root: Path) -> None:
    client = AsyncTestClient(Lint(StaticFiles(fallback, root)))
    got = await client.get("/static/plain.txt")
    assert got.text == "0123456789" and got.headers["content-type"].startswith("text/plain")
    assert "vary" not in got.headers
    assert (await client.get("/static/docs/")).text == "<p>docs</p>"
    assert (await client.get("/other")).text == "app /other"
    assert (await client.post("/static/plain.txt")).text == "app /static/plain.txt"
    assert (await client.get("/static/missing.txt")).status_code == 404
    assert (await client.get("/static/.secret")).status_code == 404
    assert (await client.get("/static/../etc/passwd")).status_code in (403, 404)
    passing = AsyncTestClient(StaticFiles(fallback, root, prefix="/s", pass_through=True))
    assert (await passing.get("/s/missing.txt")).text == "app /s/missing.txt"


async def test_static_files_ranges_etag_and_304(root: Path) -> None:
    client = AsyncTestClient(StaticFiles(fallback, root))
    part = await client.get("/static/plain.txt", headers={"range": "bytes=2-4"})
    assert (part.status_code, part.content) == (206, b"234")
    tag = (await client.get("/static/plain.txt")).headers["etag"]
    cached = await client.get("/static/plain.txt", headers={"if-none-match": tag})
    assert cached.status_code == 304


async def test_static_files_precompressed_siblings(root: Path) -> None:
    client = AsyncTestClient(Lint(StaticFiles(fallback, root)))
    br = await client.get("/static/app.js", headers={"accept-encoding": "gzip, br"})
    assert br.headers["content-encoding"] == "br" and br.content == b"BROTLI-BYTES"
    assert br.headers["content-type"].startswith("text/javascript")
    assert br.headers["vary"] == "Accept-Encoding"
    gz = await client.get("/static/app.js", headers={"accept-encoding": "gzip"})
    assert gz.headers["content-encoding"] == "gzip"
    assert gzip.decompress(gz.content) == (root / "app.js").read_bytes()
    plain = await client.get("/static/app.js", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == (root / "app.js").read_bytes()
    assert plain.headers["vary"] == "Accept-Encoding"
    off = AsyncTestClient(StaticFiles(fallback, root, precompressed=False))
    got = await off.get("/static/app.js", headers={"accept-encoding": "br"})
    assert "content-encoding" not in got.headers


def test_static_files_bad_options(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="'root'"):
        StaticFiles(fallback, tmp_path / "nope")
    with pytest.raises(OptionError, match="'prefix'"):
        StaticFiles(fallback, tmp_path, prefix="static")


def page_router() -> Router:
    router = Router()

    @router.get("/page")
    async def page(request: Request) -> Any:
        return HTMLResponse("<html><body><h1>Hi</h1></body></html>")

    @router.get("/api")
    async def api(request: Request) -> Any:
        return JSONResponse({"a": 1})

    return router


async def test_debug_panel_injects_an_escaped_panel_when_enabled() -> None:
    client = AsyncTestClient(Lint(DebugPanel(page_router(), enabled=True)))
    got = await client.get("/page?x=<script>", headers={"x-evil": "<img src=x>"})
    text = got.text
    assert 'id="pagi-debug"' in text
    assert text.index('id="pagi-debug"') < text.index("</body>")
    assert "&lt;img src=x&gt;" in text and "<img src=x>" not in text
    assert "x=&lt;script&gt;" in text
    assert int(got.headers["content-length"]) == len(got.content)
    api = await client.get("/api")
    assert api.json() == {"a": 1}


async def test_debug_panel_is_off_by_default_and_per_scope() -> None:
    off = await AsyncTestClient(DebugPanel(page_router())).get("/page")
    assert "pagi-debug" not in off.text
    chooser = DebugPanel(page_router(), enabled=lambda scope: scope["path"] == "/page")
    assert "pagi-debug" in (await AsyncTestClient(chooser).get("/page")).text


def test_debug_panel_bad_option() -> None:
    with pytest.raises(OptionError, match="'enabled'"):
        DebugPanel(page_router(), enabled="yes")  # type: ignore[arg-type]
