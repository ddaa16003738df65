"""BasicAuth, BearerAuth (PyJWT, with cryptography for RS256/ES256), requires() and request.user."""

from __future__ import annotations

import base64
import re
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pagi.spec import Receive, Scope, Send
from pagi.tools import HTTPEndpoint, PlainTextResponse, Request, Route, Router, WebSocket
from pagi.tools.middleware import BasicAuth, BearerAuth, OptionError, requires
from pagi.tools.testing import AsyncTestClient, SSEDeclined, WebSocketDenied

pytestmark = pytest.mark.anyio

KEY = "jwt-hmac-key-" + "k" * 40


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


def make_router() -> Router:
    router = Router()

    @router.get("/me")
    async def me(request: Request) -> Any:
        auth = request.auth or {}
        return {"user": request.user, "type": auth.get("type"), "scopes": sorted(auth["scopes"])}

    @router.get("/admin")
    @requires("admin")
    async def admin(request: Request) -> Any:
        return {"admin": getattr(request.user, "name", request.user)}

    @router.get("/open")
    async def open_(request: Request) -> Any:
        return {"user": getattr(request.user, "name", request.user)}

    @router.websocket("/ws")
    @requires("chat")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(f"hi {websocket.user}")
        await websocket.close()

    @router.sse("/feed")
    @requires("feed")
    async def feed(sse: Any) -> None:
        await sse.start()
        await sse.close()

    class Reports(HTTPEndpoint):
        @requires("reports")
        async def get(self, request: Request) -> Any:
            return PlainTextResponse("reports")

    router.add(Route("/reports", Reports))

    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("raw")(scope, receive, send)

    router.add(Route("/raw", app=requires("ops")(raw)))
    router.add(Route("/routemw", app=raw, middleware=[requires("ops")]))
    return router


class User:
    def __init__(self, name: str, scopes: list[str]) -> None:
        self.name = name
        self.scopes = scopes


async def test_basic_auth_with_a_table_compares_in_constant_time() -> None:
    client = AsyncTestClient(BasicAuth(make_router(), {"alice": "wonderland"}, realm="Shop"))
    missing = await client.get("/me")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Basic realm="Shop", charset="UTF-8"'
    assert (await client.get("/me", headers=basic("alice", "wrong"))).status_code == 401
    assert (await client.get("/me", headers=basic("bob", "wonderland"))).status_code == 401
    bad = {"authorization": "Basic !!!not-base64"}
    assert (await client.get("/me", headers=bad)).status_code == 401
    ok = await client.get("/me", headers=basic("alice", "wonder" + "land"))
    assert ok.json() == {"user": "alice", "type": "basic", "scopes": []}


async def test_basic_auth_function_sync_or_async_and_scopes_from_the_user() -> None:
    async def check(user: str, password: str) -> User | None:
        return User(user, ["admin"]) if password == "pw:with:colons" else None

    def check_sync(user: str, password: str) -> User | None:
        return User(user, []) if password == "pw" else None

    client = AsyncTestClient(BasicAuth(make_router(), check))
    response = await client.get("/admin", headers=basic("root", "pw:with:colons"))
    assert response.json() == {"admin": "root"}
    sync_client = AsyncTestClient(BasicAuth(make_router(), check_sync))
    assert (await sync_client.get("/open", headers=basic("u", "pw"))).status_code == 200
    forbidden = await sync_client.get("/admin", headers=basic("u", "pw"))
    assert forbidden.status_code == 403  # authenticated, but without the scope


async def test_basic_auth_paths_limit_what_is_protected() -> None:
    app = BasicAuth(make_router(), {"a": "b"}, paths=["/me", re.compile(r"/adm.*")])
    client = AsyncTestClient(app)
    assert (await client.get("/open")).json() == {"user": None}
    assert (await client.get("/me")).status_code == 401
    assert (await client.get("/admin")).status_code == 401


async def test_basic_auth_denies_websockets_with_401() -> None:
    client = AsyncTestClient(BasicAuth(make_router(), {"a": "b"}))
    with pytest.raises(WebSocketDenied) as info:
        async with client.websocket("/ws"):
            pass
    assert info.value.response.status_code == 401
    assert info.value.response.headers["www-authenticate"].startswith("Basic")


def hs_token(**claims: Any) -> str:
    return jwt.encode({"sub": "alice", **claims}, KEY, algorithm="HS256")


async def test_bearer_jwt_hs256_checks_signature_exp_nbf_aud_iss() -> None:
    app = BearerAuth(make_router(), secret=KEY, audience="api", issuer="https://issuer", leeway=0)
    client = AsyncTestClient(app)
    good = {"aud": "api", "iss": "https://issuer", "scope": "admin read"}
    missing = await client.get("/me")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="api"'
    ok = await client.get("/me", headers={"authorization": f"Bearer {hs_token(**good)}"})
    assert ok.json() == {"user": "alice", "type": "bearer", "scopes": ["admin", "read"]}
    now = int(time.time())
    bad_tokens = [
        hs_token(**good, exp=now - 10),
        hs_token(**good, nbf=now + 100),
        hs_token(**{**good, "aud": "other"}),
        hs_token(**{**good, "iss": "https://evil"}),
        jwt.encode({"sub": "alice", **good}, "another-key-" + "q" * 40, algorithm="HS256"),
        jwt.encode({"sub": "alice", **good}, None, algorithm="none"),
        "not.a.jwt",
    ]
    for token in bad_tokens:
        response = await client.get("/me", headers={"authorization": f"Bearer {token}"})
        assert response.status_code == 401, token
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
    # Within the leeway an expired token still passes.
    lenient = AsyncTestClient(BearerAuth(make_router(), secret=KEY, leeway=30))
    token = hs_token(exp=now - 5)
    assert (await lenient.get("/me", headers={"authorization": f"Bearer {token}"})).is_success


@pytest.mark.parametrize("kind", ["RS256", "ES256"])
async def test_bearer_jwt_public_key_algorithms(kind: str) -> None:
    private: Any = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    client = AsyncTestClient(BearerAuth(make_router(), secret=public_pem, algorithms=[kind]))
    token = jwt.encode({"sub": "svc", "scopes": ["admin"]}, private, algorithm=kind)
    response = await client.get("/admin", headers={"authorization": f"Bearer {token}"})
    assert response.json() == {"admin": "svc"}
    # The public key used as an HMAC secret (algorithm confusion) is refused.
    forged = jwt.encode({"sub": "mallory", "scopes": ["admin"]}, "x" * 64, algorithm="HS256")
    refused = await client.get("/admin", headers={"authorization": f"Bearer {forged}"})
    assert refused.status_code == 401


async def test_bearer_custom_validator_sync_and_async() -> None:
    async def validate(token: str) -> dict[str, Any] | None:
        return {"sub": "svc", "scope": "chat"} if token == "let-me-in" else None

    client = AsyncTestClient(BearerAuth(make_router(), validate=validate))
    ok = await client.get("/me", headers={"authorization": "Bearer let-me-in"})
    assert ok.json()["user"] == "svc"
    assert (await client.get("/me", headers={"authorization": "Bearer nope"})).status_code == 401
    user_client = AsyncTestClient(
        BearerAuth(make_router(), validate=lambda t: User("obj", ["admin"]) if t == "u" else None)
    )
    admin = await user_client.get("/admin", headers={"authorization": "Bearer u"})
    assert admin.status_code == 200


async def test_requires_on_websocket_sse_endpoint_and_apps() -> None:
    client = AsyncTestClient(BearerAuth(make_router(), validate=lambda t: {"sub": t, "scope": t}))
    with pytest.raises(WebSocketDenied) as info:
        async with client.websocket("/ws", headers={"authorization": "Bearer nochat"}):
            pass
    assert info.value.response.status_code == 403
    async with client.websocket("/ws", headers={"authorization": "Bearer chat"}) as ws:
        assert await ws.receive_text() == "hi chat"
    with pytest.raises(SSEDeclined) as declined:
        async with client.sse("/feed", headers={"authorization": "Bearer x"}):
            pass
    assert declined.value.response.status_code == 403
    async with client.sse("/feed", headers={"authorization": "Bearer feed"}):
        pass
    for path, scope in (("/reports", "reports"), ("/raw", "ops"), ("/routemw", "ops")):
        denied = await client.get(path, headers={"authorization": "Bearer none"})
        assert denied.status_code == 403, path
        allowed = await client.get(path, headers={"authorization": f"Bearer {scope}"})
        assert allowed.status_code == 200, path


async def test_requires_without_any_auth_is_403() -> None:
    client = AsyncTestClient(make_router())
    assert (await client.get("/admin")).status_code == 403
    assert (await client.get("/open")).json() == {"user": None}


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({}, "secret"),
        ({"secret": KEY, "validate": lambda t: {}}, "secret"),
        ({"secret": KEY, "algorithms": "HS256"}, "algorithms"),
        ({"secret": KEY, "algorithms": []}, "algorithms"),
        ({"secret": KEY, "algorithms": ["none"]}, "algorithms"),
        ({"secret": KEY, "algorithms": ["HS256", "RS256"]}, "algorithms"),
        ({"secret": KEY, "algorithms": ["XX999"]}, "algorithms"),
        ({"secret": "not a pem", "algorithms": ["RS256"]}, "secret"),
        ({"secret": KEY, "leeway": -1}, "leeway"),
        ({"validate": 42}, "validate"),
    ],
)
def test_bearer_bad_options(options: dict[str, Any], option: str) -> None:
    with pytest.raises(OptionError) as info:
        BearerAuth(make_router(), **options)
    assert info.value.option == option


def test_basic_bad_options() -> None:
    with pytest.raises(OptionError, match="'authenticate'"):
        BasicAuth(make_router(), 42)  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="'realm'"):
        BasicAuth(make_router(), {"a": "b"}, realm='say "hi"')
    with pytest.raises(OptionError, match="'paths'"):
        BasicAuth(make_router(), {"a": "b"}, paths="/admin")  # type: ignore[arg-type]
