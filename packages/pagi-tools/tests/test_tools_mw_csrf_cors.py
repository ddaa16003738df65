"""CSRF (double-submit signed token, header or form field) and CORS (preflight, simple, ws, sse)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pagi.spec import Receive, Scope, Send
from pagi.tools import SSE, JSONResponse, Request, Router, WebSocket
from pagi.tools.middleware import CORS, CSRF, OptionError
from pagi.tools.testing import AsyncTestClient, WebSocketDenied

pytestmark = pytest.mark.anyio

SECRET = "csrf-secret-" + "c" * 32


def make_router() -> Router:
    router = Router()

    @router.get("/form")
    async def form(request: Request) -> Any:
        return {"token": request.scope["pagi.csrf_token"]}

    @router.post("/submit")
    async def submit(request: Request) -> Any:
        if request.content_type == "application/json":
            return {"json": await request.json()}
        data = await request.form()
        return {"fields": sorted(data.keys()), "name": data.get("name")}

    @router.route("/items", methods=["GET", "PUT", "DELETE"])
    async def items(request: Request) -> Any:
        response = JSONResponse({"method": request.method})
        response.headers["vary"] = "Accept"
        return response

    @router.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close()

    @router.sse("/events")
    async def events(sse: SSE) -> None:
        await sse.start()
        await sse.send("x")
        await sse.close()

    return router


# -- CSRF -------------------------------------------------------------------------


async def test_safe_request_mints_a_readable_token_cookie_and_exposes_it() -> None:
    client = AsyncTestClient(CSRF(make_router(), SECRET))
    first = await client.get("/form")
    cookie = first.headers["set-cookie"]
    assert cookie.startswith("csrftoken=") and "HttpOnly" not in cookie
    assert "SameSite=Lax" in cookie
    token = client.cookies["csrftoken"]
    assert first.json() == {"token": token}
    again = await client.get("/form")
    assert again.json() == {"token": token} and "set-cookie" not in again.headers


async def test_unsafe_requests_need_the_token_in_header_or_form() -> None:
    client = AsyncTestClient(CSRF(make_router(), SECRET))
    await client.get("/form")
    token = client.cookies["csrftoken"]
    refused = await client.post("/submit", json={"a": 1})
    assert refused.status_code == 403 and "CSRF" in refused.text
    wrong = await client.post("/submit", json={"a": 1}, headers={"x-csrftoken": token + "x"})
    assert wrong.status_code == 403
    ok = await client.post("/submit", json={"a": 1}, headers={"x-csrftoken": token})
    assert ok.json() == {"json": {"a": 1}}
    # A form field works too, and the app still reads the whole body afterwards.
    form = await client.post("/submit", data={"csrftoken": token, "name": "Ann"})
    assert form.json() == {"fields": ["csrftoken", "name"], "name": "Ann"}
    multipart = await client.post(
        "/submit", data={"csrftoken": token, "name": "Bo"}, files={"f": ("a.txt", b"data")}
    )
    assert multipart.json() == {"fields": ["csrftoken", "f", "name"], "name": "Bo"}
    bad_form = await client.post("/submit", data={"csrftoken": "forged", "name": "Ann"})
    assert bad_form.status_code == 403
    assert (await client.request("DELETE", "/items")).status_code == 403


async def test_a_planted_unsigned_cookie_does_not_work() -> None:
    client = AsyncTestClient(CSRF(make_router(), SECRET))
    headers = {"cookie": "csrftoken=attacker", "x-csrftoken": "attacker"}
    assert (await client.post("/submit", json={}, headers=headers)).status_code == 403
    other = AsyncTestClient(CSRF(make_router(), "other-" + SECRET))
    await other.get("/form")
    foreign = other.cookies["csrftoken"]
    headers = {"cookie": f"csrftoken={foreign}", "x-csrftoken": foreign}
    assert (await client.post("/submit", json={}, headers=headers)).status_code == 403


async def test_csrf_exempt_paths_body_limit_and_custom_names() -> None:
    app = CSRF(
        make_router(),
        SECRET,
        cookie_name="xsrf",
        header_name="x-xsrf-token",
        form_field="_token",
        exempt=[re.compile(r"/sub.*")],
        max_body_size=10,
    )
    client = AsyncTestClient(app)
    assert (await client.post("/submit", json={"free": True})).status_code == 200
    await client.get("/form")
    token = client.cookies["xsrf"]
    put = await client.put("/items", headers={"x-xsrf-token": token})
    assert put.json() == {"method": "PUT"}
    big = await client.put("/items", data={"_token": token, "pad": "y" * 100})
    assert big.status_code == 413


def test_csrf_bad_options() -> None:
    with pytest.raises(OptionError, match="'secret_key'"):
        CSRF(make_router(), "")
    with pytest.raises(OptionError, match="'safe_methods'"):
        CSRF(make_router(), SECRET, safe_methods=("GET", "POST"))
    with pytest.raises(OptionError, match="'header_name'"):
        CSRF(make_router(), SECRET, header_name="x bad")


# -- CORS -------------------------------------------------------------------------


def cors(**options: Any) -> AsyncTestClient:
    return AsyncTestClient(CORS(make_router(), **options))


PREFLIGHT = {
    "origin": "https://app.example",
    "access-control-request-method": "PUT",
    "access-control-request-headers": "X-Custom, Content-Type",
}


async def test_preflight_allowed_and_refused() -> None:
    client = cors(
        allow_origins=["https://app.example"],
        allow_methods=["GET", "PUT"],
        allow_headers=["x-custom"],
        allow_credentials=True,
        max_age=99,
    )
    ok = await client.options("/items", headers=PREFLIGHT)
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "https://app.example"
    assert ok.headers["access-control-allow-methods"] == "GET, PUT"
    assert ok.headers["access-control-allow-headers"] == "x-custom, content-type"
    assert ok.headers["access-control-allow-credentials"] == "true"
    assert ok.headers["access-control-max-age"] == "99"
    assert ok.headers["vary"] == "Origin"
    for change, problem in (
        ({"origin": "https://evil.example"}, "origin"),
        ({"access-control-request-method": "DELETE"}, "method"),
        ({"access-control-request-headers": "x-other"}, "headers"),
    ):
        refused = await client.options("/items", headers={**PREFLIGHT, **change})
        assert refused.status_code == 400, change
        assert problem in refused.text
        assert "access-control-allow-origin" not in refused.headers


async def test_simple_requests_get_headers_for_allowed_origins_and_vary_always() -> None:
    client = cors(
        allow_origins=["https://app.example"],
        allow_origin_regex=r"https://.*\.preview\.example",
        expose_headers=["x-total"],
    )
    ok = await client.get("/items", headers={"origin": "https://app.example"})
    assert ok.headers["access-control-allow-origin"] == "https://app.example"
    assert ok.headers["access-control-expose-headers"] == "x-total"
    assert ok.headers["vary"] == "Accept, Origin"  # the app's Vary is kept
    preview = await client.get("/items", headers={"origin": "https://pr-1.preview.example"})
    assert preview.headers["access-control-allow-origin"] == "https://pr-1.preview.example"
    evil = await client.get("/items", headers={"origin": "https://evil.example"})
    assert evil.status_code == 200 and "access-control-allow-origin" not in evil.headers
    assert evil.headers["vary"] == "Accept, Origin"
    plain = await client.get("/items")
    assert plain.headers["vary"] == "Accept, Origin"  # caches must know, even without Origin


async def test_wildcard_without_credentials() -> None:
    client = cors(allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])
    simple = await client.get("/items", headers={"origin": "https://any.example"})
    assert simple.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in simple.headers
    assert simple.headers["vary"] == "Accept"
    pre = await client.options("/items", headers={**PREFLIGHT, "origin": "https://x.example"})
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "*"
    assert "DELETE" in pre.headers["access-control-allow-methods"]


async def test_options_without_preflight_headers_reaches_the_app() -> None:
    client = cors(allow_origins=["https://app.example"])
    response = await client.options("/items", headers={"origin": "https://app.example"})
    assert response.status_code == 204  # the router's OPTIONS answer, not a preflight


async def test_websocket_origin_check_and_sse_headers() -> None:
    client = cors(allow_origins=["https://app.example"])
    with pytest.raises(WebSocketDenied) as info:
        async with client.websocket("/ws", headers={"origin": "https://evil.example"}):
            pass
    assert info.value.response.status_code == 403
    async with client.websocket("/ws", headers={"origin": "https://app.example"}):
        pass
    async with client.websocket("/ws"):  # no Origin: not a browser
        pass
    async with client.sse("/events", headers={"origin": "https://app.example"}) as sse:
        assert sse.headers["access-control-allow-origin"] == "https://app.example"
        assert "Origin" in sse.headers["vary"]


async def test_cors_passes_other_scopes_and_does_not_touch_the_caller_scope() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await JSONResponse({})(scope, receive, send)

    response = await AsyncTestClient(CORS(app, allow_origins=["*"])).get("/")
    assert response.headers["access-control-allow-origin"] == "*"
    assert seen and "access-control-allow-origin" not in str(seen[0]["headers"])


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"allow_origins": ["*"], "allow_credentials": True}, "allow_origins"),
        ({"allow_origins": "https://a.example"}, "allow_origins"),
        ({"allow_origins": ["a.example"]}, "allow_origins"),
        ({"allow_origin_regex": "("}, "allow_origin_regex"),
        ({"max_age": -1}, "max_age"),
        ({"allow_methods": "GET"}, "allow_methods"),
    ],
)
def test_cors_bad_options(options: dict[str, Any], option: str) -> None:
    with pytest.raises(OptionError) as info:
        CORS(make_router(), **options)
    assert info.value.option == option
