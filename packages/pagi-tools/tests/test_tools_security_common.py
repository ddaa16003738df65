"""What every security middleware of issue 10 promises, checked on each one.

* it is a PAGI app wrapping an app, and works as ``Middleware(Name, **options)``;
* lifespan (and any other scope type it does not handle) goes straight through;
* the caller's scope is never changed (R-MW-2);
* a streamed response is still streamed: the first chunk reaches the client
  while the app is still waiting to send the second;
* it is exported from ``pagi.tools.middleware``.
"""

from __future__ import annotations

import copy
from typing import Any

import anyio
import pytest

import pagi.tools.middleware as middleware_package
from pagi.spec import Receive, Scope, Send
from pagi.tools import Router
from pagi.tools.middleware import (
    CORS,
    CSRF,
    BasicAuth,
    BearerAuth,
    HTTPSRedirect,
    Middleware,
    ProxyHeaders,
    RateLimit,
    SecurityHeaders,
    Session,
    TrustedHost,
    WebSocketRateLimit,
)
from pagi.tools.testing import AsyncTestClient

pytestmark = pytest.mark.anyio

SECRET = "s" * 40
BASIC = {"authorization": "Basic dXNlcjpwdw=="}  # user:pw

CASES: list[tuple[Any, dict[str, Any], dict[str, str]]] = [
    (Session, {"secret_key": SECRET}, {}),
    (BasicAuth, {"authenticate": {"user": "pw"}}, BASIC),
    (BearerAuth, {"validate": lambda token: {"sub": token}}, {"authorization": "Bearer t"}),
    (CSRF, {"secret_key": SECRET}, {}),
    (CORS, {"allow_origins": ["https://a.example"]}, {"origin": "https://a.example"}),
    (TrustedHost, {"allowed_hosts": ["testserver"]}, {}),
    (HTTPSRedirect, {"hsts_max_age": 60}, {}),
    (SecurityHeaders, {"content_security_policy": "script-src 'nonce-{nonce}'"}, {}),
    (RateLimit, {"rate": 1.0, "burst": 5}, {}),
    (WebSocketRateLimit, {}, {}),
    (ProxyHeaders, {"trusted": ["127.0.0.1"]}, {"x-forwarded-for": "203.0.113.9"}),
]
IDS = [case[0].__name__ for case in CASES]


@pytest.mark.parametrize(("factory", "options", "headers"), CASES, ids=IDS)
async def test_lifespan_passes_straight_through(
    factory: Any, options: dict[str, Any], headers: dict[str, str]
) -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])
        assert scope["type"] == "lifespan"
        while True:
            event = await receive()
            await send({"type": event["type"] + ".complete"})
            if event["type"] == "lifespan.shutdown":
                return

    async with AsyncTestClient(factory(app, **options), lifespan="on"):
        pass
    assert seen == ["lifespan"]


@pytest.mark.parametrize(("factory", "options", "headers"), CASES, ids=IDS)
async def test_caller_scope_is_never_mutated_and_streaming_stays_streaming(
    factory: Any, options: dict[str, Any], headers: dict[str, str]
) -> None:
    release = anyio.Event()
    reached: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more": True})
        await release.wait()  # a buffering middleware would never pass "first" on
        await send({"type": "http.response.body", "body": b"second"})

    inner = factory(app, **options)
    originals: list[Any] = []

    async def outer(scope: Scope, receive: Receive, send: Send) -> None:
        frozen = copy.deepcopy({k: v for k, v in scope.items() if not k.startswith("pagi.")})
        await inner(scope, receive, send)
        now = {k: v for k, v in scope.items() if not k.startswith("pagi.")}
        originals.append((frozen, now, set(scope)))

    client = AsyncTestClient(outer, base_url="https://testserver")
    async with client.stream("GET", "/s", headers=headers) as response:
        assert response.status_code == 200
        chunks = response.aiter_bytes()
        assert await chunks.__anext__() == b"first"
        release.set()
        assert b"".join([c async for c in chunks]) == b"second"
    assert reached == ["/s"]
    frozen, now, keys = originals[0]
    assert now == frozen
    assert not any(key in keys for key in ("pagi.session", "pagi.auth", "pagi.csrf_token"))


@pytest.mark.parametrize(("factory", "options", "headers"), CASES, ids=IDS)
async def test_works_as_router_middleware_and_is_exported(
    factory: Any, options: dict[str, Any], headers: dict[str, str]
) -> None:
    assert getattr(middleware_package, factory.__name__) is factory
    assert factory.__name__ in middleware_package.__all__
    router = Router(middleware=[Middleware(factory, **options)])

    @router.get("/")
    async def home(request: Any) -> Any:
        return {"ok": True}

    client = AsyncTestClient(router, base_url="https://testserver")
    response = await client.get("/", headers=headers)
    assert (response.status_code, response.json()) == (200, {"ok": True})


@pytest.mark.parametrize(
    ("mode", "vary", "expected"),
    [
        ("append", None, [(b"x-a", b"app"), (b"vary", b"Accept"), (b"x-a", b"1"), (b"x-b", b"2")]),
        ("missing", None, [(b"x-a", b"app"), (b"vary", b"Accept"), (b"x-b", b"2")]),
        ("replace", None, [(b"vary", b"Accept"), (b"x-a", b"1"), (b"x-b", b"2")]),
        ("missing", b"Origin", [(b"x-a", b"app"), (b"x-b", b"2"), (b"vary", b"Accept, Origin")]),
        ("missing", b"accept", [(b"x-a", b"app"), (b"vary", b"Accept"), (b"x-b", b"2")]),
    ],
)
async def test_add_headers_modes_and_vary(
    mode: str, vary: bytes | None, expected: list[tuple[bytes, bytes]]
) -> None:
    from pagi.tools.middleware.base import add_headers

    sent: list[Any] = []

    async def send(event: Any) -> None:
        sent.append(event)

    start = {"type": "http.response.start", "status": 200}
    start["headers"] = [(b"x-a", b"app"), (b"vary", b"Accept")]
    wrapped = add_headers(send, [(b"x-a", b"1"), (b"x-b", b"2")], mode=mode, vary=vary)
    await wrapped(start)
    await wrapped({"type": "http.response.body", "body": b""})
    assert sent[0]["headers"] == expected
    assert start["headers"] == [(b"x-a", b"app"), (b"vary", b"Accept")]  # the app's event is kept
    assert sent[1] == {"type": "http.response.body", "body": b""}
    with pytest.raises(ValueError, match="mode"):
        add_headers(send, [], mode="sometimes")
