"""Builder/build, ContentLength, Head, MethodOverride and Rewrite."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pagi.spec import Receive, Scope, Send
from pagi.tools import Middleware, PlainTextResponse, Request, Router, StreamingResponse
from pagi.tools.middleware import (
    Builder,
    ContentLength,
    Head,
    MethodOverride,
    OptionError,
    Rewrite,
    build,
)
from pagi.tools.middleware.base import Middleware as BaseMiddleware
from pagi.tools.middleware.base import ResponseStart, intercept_start
from pagi.tools.middleware.lint import Lint
from pagi.tools.testing import AsyncTestClient

pytestmark = pytest.mark.anyio


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with what it saw: method, path, root_path, original path/method, body."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    request = Request(scope, receive)
    body = await request.body()
    text = (
        f"{scope['method']} {scope['path']} root={scope.get('root_path', '')} "
        f"orig={scope.get('pagi.original_path') or scope.get('pagi.original_method')} "
        f"body={body.decode()}"
    )
    await PlainTextResponse(text)(scope, receive, send)


class Tag(BaseMiddleware):
    """Appends its name to x-order, so the test sees the nesting."""

    def __init__(self, app: Any, name: str) -> None:
        super().__init__(app)
        self.name = name

    def wrap_send(self, scope: Scope, send: Send) -> Send:
        def edit(start: ResponseStart) -> None:
            start.headers.append("x-order", self.name)

        return intercept_start(send, edit)


# -- Builder ------------------------------------------------------------------------


async def test_builder_first_added_is_outermost_and_mounts_strip_the_prefix() -> None:
    sub = Router()

    @sub.get("/x")
    async def x(request: Request) -> Any:
        return f"sub {request.url.path} root={request.scope['root_path']}"

    app = (
        Builder()
        .add(Tag, name="outer")
        .add(Tag, name="inner")
        .mount("/sub", sub)
        .mount("/sub/deeper", echo)
        .build(echo)
    )
    client = AsyncTestClient(Lint(app))
    main = await client.get("/a")
    assert main.text.startswith("GET /a root=")
    # Response starts travel outwards: the inner middleware edits first.
    assert main.headers.getlist("x-order") == ["inner", "outer"]
    assert (await client.get("/sub/x")).text == "sub /sub/x root=/sub"
    assert (await client.get("/sub/deeper/y")).text.startswith("GET /y root=/sub/deeper")
    assert (await client.get("/subway")).text.startswith("GET /subway")


async def test_add_if_wraps_only_matching_scopes() -> None:
    app = Builder().add_if(lambda s: s["path"].startswith("/api"), Tag, name="api").build(echo)
    client = AsyncTestClient(app)
    assert (await client.get("/api/1")).headers.getlist("x-order") == ["api"]
    assert "x-order" not in (await client.get("/web")).headers
    async with AsyncTestClient(app, lifespan="on") as entered:
        assert (await entered.get("/api")).status_code == 200


async def test_build_function_takes_classes_and_deferred_middleware() -> None:
    app = build(echo, Middleware(Tag, name="a"), ContentLength)
    assert (await AsyncTestClient(app).get("/")).headers.getlist("x-order") == ["a"]


def test_builder_bad_options() -> None:
    with pytest.raises(OptionError, match="'factory'"):
        Builder().add(42)  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="'prefix'"):
        Builder().mount("static", echo)
    with pytest.raises(OptionError, match="'predicate'"):
        Builder().add_if(True, Tag)  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="'minimum_size'"):
        from pagi.tools.middleware import GZip

        Builder().add(GZip, minimum_size=-5).build(echo)


# -- ContentLength, Head --------------------------------------------------------------


async def test_content_length_added_to_single_bodies_only() -> None:
    async def bare(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"abc"})

    got = await AsyncTestClient(Lint(ContentLength(bare))).get("/")
    assert got.headers["content-length"] == "3"
    streamed = StreamingResponse([b"a", b"b"])

    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        await streamed(scope, receive, send)

    got = await AsyncTestClient(ContentLength(stream)).get("/")
    assert "content-length" not in got.headers and got.content == b"ab"


async def test_head_runs_the_get_handler_and_drops_the_body() -> None:
    seen: list[str] = []

    async def get_only(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["method"])
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
        )
        await send({"type": "http.response.body", "body": b"he", "more": True})
        await send({"type": "http.response.body", "body": b"llo"})

    client = AsyncTestClient(Lint(Head(get_only)))
    got = await client.head("/")
    assert (got.status_code, got.content, got.headers["content-length"]) == (200, b"", "5")
    assert (await client.get("/")).content == b"hello"
    assert seen == ["GET", "GET"]


# -- MethodOverride -------------------------------------------------------------------


async def test_method_override_from_header_query_and_form_body() -> None:
    client = AsyncTestClient(Lint(MethodOverride(echo)))
    by_header = await client.post("/", headers={"x-http-method-override": "delete"})
    assert by_header.text.startswith("DELETE / ") and "orig=POST" in by_header.text
    assert (await client.post("/?_method=PATCH")).text.startswith("PATCH")
    form = await client.post("/", data={"_method": "PUT", "name": "x"}, chunk_size=3)
    assert form.text.startswith("PUT")
    assert form.text.endswith("body=_method=PUT&name=x")  # the body is replayed intact


async def test_method_override_ignores_other_methods_and_disallowed_targets() -> None:
    client = AsyncTestClient(MethodOverride(echo))
    assert (await client.get("/?_method=DELETE")).text.startswith("GET")
    assert (await client.post("/?_method=CONNECT")).text.startswith("POST")
    custom = AsyncTestClient(MethodOverride(echo, header=None, allowed=["PUT"]))
    assert (await custom.post("/", headers={"x-http-method-override": "PUT"})).text.startswith(
        "POST"
    )


def test_method_override_bad_options() -> None:
    with pytest.raises(OptionError, match="'allowed'"):
        MethodOverride(echo, allowed="PUT")
    with pytest.raises(OptionError, match="'header'"):
        MethodOverride(echo, header="")


# -- Rewrite ------------------------------------------------------------------------------


async def test_rewrite_prefix_and_regex_rules_keep_the_original_path() -> None:
    rules = [("/old", "/new"), (re.compile(r"/user/(\d+)"), r"/users/\1/profile")]
    client = AsyncTestClient(Lint(Rewrite(echo, rules)))
    assert (await client.get("/old/page")).text.startswith("GET /new/page root= orig=/old/page")
    assert (await client.get("/old")).text.startswith("GET /new ")
    assert (await client.get("/older")).text.startswith("GET /older ")
    assert (await client.get("/user/42")).text.startswith("GET /users/42/profile ")
    assert (await client.get("/user/x")).text.startswith("GET /user/x ")


async def test_rewrite_redirect_keeps_the_query() -> None:
    client = AsyncTestClient(Rewrite(echo, [("/old", "/new")], redirect=True))
    got = await client.get("/old/a?q=1")
    assert (got.status_code, got.headers["location"]) == (301, "/new/a?q=1")
    temp = AsyncTestClient(Rewrite(echo, [("/old", "/new")], redirect=307))
    assert (await temp.get("/old")).status_code == 307


def test_rewrite_bad_options() -> None:
    with pytest.raises(OptionError, match="'rules'"):
        Rewrite(echo, [])
    with pytest.raises(OptionError, match="'rules'"):
        Rewrite(echo, [("old", "/new")])
    with pytest.raises(OptionError, match="'redirect'"):
        Rewrite(echo, [("/old", "/new")], redirect=200)
