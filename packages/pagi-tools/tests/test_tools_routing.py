"""Router: params and convertors, methods, 405, mounts and root_path, hosts, names, middleware."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from pagi.spec import App, Receive, Scope, Send
from pagi.tools import (
    SSE,
    Host,
    HTTPException,
    JSONResponse,
    Middleware,
    Mount,
    NoMatchFound,
    PlainTextResponse,
    Request,
    Route,
    Router,
    SSERoute,
    WebSocket,
    WebSocketRoute,
)
from pagi.tools.testing import AsyncTestClient, SSEDeclined, WebSocketDenied

pytestmark = pytest.mark.anyio


async def params(request: Request) -> Any:
    return {"params": {k: [type(v).__name__, str(v)] for k, v in request.path_params.items()}}


async def test_convertors() -> None:
    router = Router(
        [
            Route("/int/{n:int}", params),
            Route("/float/{x:float}", params),
            Route("/uuid/{u:uuid}", params),
            Route("/files/{rest:path}", params),
            Route("/str/{s}", params),
        ]
    )
    client = AsyncTestClient(router)
    assert (await client.get("/int/42")).json() == {"params": {"n": ["int", "42"]}}
    assert (await client.get("/float/1.5")).json() == {"params": {"x": ["float", "1.5"]}}
    u = uuid.uuid4()
    assert (await client.get(f"/uuid/{u}")).json() == {"params": {"u": ["UUID", str(u)]}}
    assert (await client.get("/files/a/b.txt")).json() == {"params": {"rest": ["str", "a/b.txt"]}}
    assert (await client.get("/str/x%20y")).json() == {"params": {"s": ["str", "x y"]}}
    assert (await client.get("/int/x")).status_code == 404
    assert (await client.get("/str/a/b")).status_code == 404


async def test_methods_405_with_allow_head_and_options() -> None:
    router = Router()

    @router.get("/item")
    async def read(request: Request) -> Any:
        return "read"

    @router.post("/item")
    async def create(request: Request) -> Any:
        return PlainTextResponse("created", 201)

    client = AsyncTestClient(router)
    assert (await client.get("/item")).text == "read"
    assert (await client.post("/item")).status_code == 201
    head = await client.head("/item")
    assert head.status_code == 200 and head.content == b""
    r = await client.delete("/item")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    r = await client.options("/item")
    assert r.status_code == 204 and r.headers["allow"] == "GET, HEAD, OPTIONS, POST"


async def test_http_exception_and_bad_return_values() -> None:
    router = Router()

    @router.get("/teapot")
    async def teapot(request: Request) -> Any:
        raise HTTPException(418, "short and stout", headers={"x-why": "tea"})

    @router.get("/none")
    async def nothing(request: Request) -> Any:
        return None

    client = AsyncTestClient(router)
    r = await client.get("/teapot")
    assert (r.status_code, r.text, r.headers["x-why"]) == (418, "short and stout", "tea")
    with pytest.raises(TypeError, match="forget to return"):
        await client.get("/none")


def test_sync_handlers_are_refused() -> None:
    def sync(request: Request) -> Any:
        return "x"

    with pytest.raises(TypeError, match="async"):
        Route("/", sync)
    with pytest.raises(ValueError, match="unknown convertor"):
        Route("/{x:nope}", params)


async def test_mount_extends_root_path_and_strips_path() -> None:
    async def where(request: Request) -> Any:
        return {
            "path": request.path,
            "root": request.root_path,
            "url": str(request.url),
            "p": request.path_params,
        }

    api = Router([Route("/users/{uid:int}", where, name="user")])
    router = Router([Mount("/api/{version}", api, name="api")])
    r = await AsyncTestClient(router, root_path="/site").get("/site/api/v2/users/7?x=1")
    assert r.json() == {
        "path": "/users/7",
        "root": "/site/api/v2",
        "url": "http://testserver/site/api/v2/users/7?x=1",
        "p": {"version": "v2", "uid": 7},
    }
    assert (await AsyncTestClient(router).get("/apix/users/7")).status_code == 404


async def test_routing_never_mutates_the_callers_scope() -> None:
    router = Router([Mount("/a", Router([Route("/b", params)]))])
    scope: dict[str, Any] = {}

    async def spy(s: Scope, receive: Receive, send: Send) -> None:
        scope.update(s)
        before = dict(s)
        await router(s, receive, send)
        assert s == before

    r = await AsyncTestClient(spy, lifespan="off").get("/a/b")
    assert r.status_code == 200 and scope["path"] == "/a/b" and "path_params" not in scope


async def test_url_for_percent_encodes_and_respects_mounts() -> None:
    async def link(request: Request) -> Any:
        return {
            "user": request.url_for("api:user", version="v 1", uid=5),
            "file": request.url_for("file", rest="a b/c?.txt"),
            "tag": request.url_for("tag", name="x/y"),
        }

    api = Router([Route("/users/{uid:int}", link, name="user")])
    router = Router(
        [
            Mount("/api/{version}", api, name="api"),
            Route("/files/{rest:path}", link, name="file"),
            Route("/tags/{name}", link, name="tag"),
        ]
    )
    r = await AsyncTestClient(router, root_path="/root").get("/root/api/v1/users/1")
    assert r.json() == {
        "user": "/root/api/v%201/users/5",
        "file": "/root/files/a%20b/c%3F.txt",
        "tag": "/root/tags/x%2Fy",
    }
    with pytest.raises(NoMatchFound, match="named routes"):
        router.url_path_for("nope")
    with pytest.raises(NoMatchFound):
        router.url_path_for("tag")  # missing parameter


async def test_host_routing() -> None:
    async def tenant(request: Request) -> Any:
        return {"tenant": request.path_params["tenant"]}

    router = Router(
        [Host("{tenant}.example.com", Router([Route("/", tenant)])), Route("/", params)]
    )
    client = AsyncTestClient(router)
    assert (await client.get("/", headers={"host": "acme.example.com:8000"})).json() == {
        "tenant": "acme"
    }
    assert (await client.get("/")).json() == {"params": {}}


async def test_route_and_router_middleware_order() -> None:
    order: list[str] = []

    class Tag:
        def __init__(self, app: App, label: str) -> None:
            self.app, self.label = app, label

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            order.append(self.label)

            async def tagged(event: Any) -> None:
                if event["type"] == "http.response.start":
                    event = {
                        **event,
                        "headers": [*event["headers"], (b"x-tag", self.label.encode())],
                    }
                await send(event)

            await self.app(scope, receive, tagged)

    router = Router(
        [
            Route(
                "/",
                params,
                middleware=[Middleware(Tag, "inner-1"), Middleware(Tag, label="inner-2")],
            )
        ],
        middleware=[Middleware(Tag, "outer")],
    )
    r = await AsyncTestClient(router).get("/")
    assert order == ["outer", "inner-1", "inner-2"]
    assert r.headers.getlist("x-tag") == ["inner-2", "inner-1", "outer"]


async def test_websocket_and_sse_routes_and_scope_aware_misses() -> None:
    async def ws_handler(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_json(ws.path_params)

    async def sse_handler(sse: SSE) -> None:
        await sse.send(sse.path_params["room"])

    router = Router(
        [WebSocketRoute("/ws/{room}", ws_handler), SSERoute("/sse/{room}", sse_handler)]
    )
    client = AsyncTestClient(router)
    async with client.websocket("/ws/blue") as ws:
        assert await ws.receive_json() == {"room": "blue"}
    async with client.sse("/sse/red") as sse:
        assert (await sse.receive_event()).data == "red"
    with pytest.raises(WebSocketDenied) as denied:
        async with client.websocket("/nowhere"):
            pass
    assert denied.value.response.status_code == 404
    with pytest.raises(SSEDeclined) as declined:
        async with client.sse("/nowhere"):
            pass
    assert declined.value.response.status_code == 404
    # http on a websocket-only path is a plain 404.
    assert (await client.get("/ws/blue")).status_code == 404


async def test_redirect_slashes_and_custom_not_found() -> None:
    router = Router([Route("/about", params)], not_found=JSONResponse({"missing": True}, 404))
    client = AsyncTestClient(router, root_path="/r")
    r = await client.get("/r/about/?q=1")
    assert (r.status_code, r.location) == (307, "/r/about?q=1")
    r = await client.get("/r/else")
    assert r.json() == {"missing": True}


async def test_bare_router_completes_lifespan() -> None:
    async with AsyncTestClient(Router(), lifespan="on") as client:
        assert (await client.get("/")).status_code == 404


def test_duplicate_route_names_are_refused() -> None:
    router = Router([Route("/a", params, name="x")])
    with pytest.raises(ValueError, match="already taken"):
        router.add(Route("/b", params, name="x"))
