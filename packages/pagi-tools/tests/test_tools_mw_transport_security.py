"""TrustedHost, HTTPSRedirect, SecurityHeaders, ProxyHeaders and the Forwarded parser."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pagi.tools import SSE, PlainTextResponse, Request, Router, WebSocket
from pagi.tools.forwarded import TrustedProxies, parse_forwarded, resolve_forwarded, split_node
from pagi.tools.middleware import (
    HTTPSRedirect,
    OptionError,
    ProxyHeaders,
    SecurityHeaders,
    TrustedHost,
)
from pagi.tools.testing import AsyncTestClient, SSEDeclined, WebSocketDenied

pytestmark = pytest.mark.anyio


def make_router() -> Router:
    router = Router()

    @router.get("/where")
    async def where(request: Request) -> Any:
        scope = request.scope
        return {
            "client": list(scope["client"]),
            "scheme": scope["scheme"],
            "host": request.headers.get("host"),
            "original": [
                scope.get("pagi.original_client") and list(scope["pagi.original_client"]),
                scope.get("pagi.original_scheme"),
                scope.get("pagi.original_host"),
            ],
            "nonce": scope.get("pagi.csp_nonce"),
        }

    @router.get("/framed")
    async def framed(request: Request) -> Any:
        return PlainTextResponse("ok", headers={"x-frame-options": "SAMEORIGIN"})

    @router.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"scheme": websocket.scope["scheme"]})
        await websocket.close()

    @router.sse("/events")
    async def events(sse: SSE) -> None:
        await sse.start()
        await sse.close()

    return router


# -- TrustedHost ------------------------------------------------------------------


async def test_trusted_host_patterns_ports_and_case() -> None:
    app = TrustedHost(
        make_router(), allowed_hosts=["example.com", "*.example.org"], www_redirect=False
    )
    for host, status in (
        ("example.com", 200),
        ("EXAMPLE.com:8443", 200),
        ("api.example.org", 200),
        ("a.b.example.org:1", 200),
        ("example.org", 400),
        ("evil.com", 400),
        ("example.com.evil.com", 400),
        ("notexample.org", 400),
    ):
        response = await AsyncTestClient(app, base_url=f"http://{host}").get("/where")
        assert response.status_code == status, host
    missing = await AsyncTestClient(app).get("/where", headers={"host": ""})
    assert missing.status_code == 400
    v6 = TrustedHost(make_router(), allowed_hosts=["::1", "[2001:db8::1]"])
    for host, status in (("[::1]:8000", 200), ("[2001:db8::1]", 200), ("[::2]", 400)):
        response = await AsyncTestClient(v6).get("/where", headers={"host": host})
        assert response.status_code == status, host


async def test_trusted_host_www_redirect_and_refusing_ws_and_sse() -> None:
    app = TrustedHost(make_router(), allowed_hosts=["www.example.com"])
    client = AsyncTestClient(app, base_url="https://example.com:8443")
    response = await client.get("/where?x=1")
    assert response.status_code == 301
    assert response.headers["location"] == "https://www.example.com:8443/where?x=1"
    no_redirect = TrustedHost(make_router(), allowed_hosts=["www.example.com"], www_redirect=False)
    assert (
        await AsyncTestClient(no_redirect, base_url="http://example.com").get("/")
    ).status_code == 400
    evil = AsyncTestClient(app, base_url="http://evil.com")
    with pytest.raises(WebSocketDenied) as denied:
        async with evil.websocket("/ws"):
            pass
    assert denied.value.response.status_code == 400
    with pytest.raises(SSEDeclined) as declined:
        async with evil.sse("/events"):
            pass
    assert declined.value.response.status_code == 400


def test_trusted_host_bad_options() -> None:
    for bad in (["exa*mple.com"], ["*.*.com"], [], "example.com", ["a/b"]):
        with pytest.raises(OptionError, match="'allowed_hosts'"):
            TrustedHost(make_router(), allowed_hosts=bad)


# -- HTTPSRedirect ------------------------------------------------------------------


async def test_https_redirect_keeps_path_query_and_port() -> None:
    app = HTTPSRedirect(make_router())
    response = await AsyncTestClient(app, base_url="http://example.com").get("/a%20b/c?q=1&r")
    assert response.status_code == 308
    assert response.headers["location"] == "https://example.com/a%20b/c?q=1&r"
    odd_port = await AsyncTestClient(app, base_url="http://example.com:8080").get("/x")
    assert odd_port.headers["location"] == "https://example.com:8080/x"
    port80 = await AsyncTestClient(app, base_url="http://example.com:80").get(
        "/x", headers={"host": "example.com:80"}
    )
    assert port80.headers["location"] == "https://example.com/x"
    secure = await AsyncTestClient(app, base_url="https://example.com").get("/where")
    assert secure.status_code == 200 and "strict-transport-security" not in secure.headers


async def test_https_redirect_websocket_sse_exclude_and_status() -> None:
    app = HTTPSRedirect(make_router(), status=301, exclude=["/where", re.compile(r"/ev.*")])
    client = AsyncTestClient(app, base_url="http://example.com")
    with pytest.raises(WebSocketDenied) as denied:
        async with client.websocket("/ws?room=1"):
            pass
    assert denied.value.response.status_code == 301
    assert denied.value.response.headers["location"] == "wss://example.com/ws?room=1"
    assert (await client.get("/where")).status_code == 200  # excluded
    async with client.sse("/events"):  # excluded by pattern
        pass
    assert (await client.get("/framed")).headers["location"] == "https://example.com/framed"


async def test_hsts_on_secure_responses_unless_the_app_set_it() -> None:
    app = HTTPSRedirect(make_router(), hsts_max_age=63072000, include_subdomains=True, preload=True)
    client = AsyncTestClient(app, base_url="https://example.com")
    response = await client.get("/where")
    assert (
        response.headers["strict-transport-security"]
        == "max-age=63072000; includeSubDomains; preload"
    )
    async with client.websocket("/ws") as ws:
        assert await ws.receive_json() == {"scheme": "wss"}


def test_https_redirect_bad_options() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"status": 200}, "status"),
        ({"hsts_max_age": -1}, "hsts_max_age"),
        ({"include_subdomains": True}, "include_subdomains"),
        ({"hsts_max_age": 60, "preload": True, "include_subdomains": True}, "preload"),
        ({"exclude": "/health"}, "exclude"),
        ({"exclude": ["health"]}, "exclude"),
    ]
    for options, option in cases:
        with pytest.raises(OptionError) as info:
            HTTPSRedirect(make_router(), **options)
        assert info.value.option == option


# -- SecurityHeaders ---------------------------------------------------------------


async def test_security_headers_defaults_none_and_app_wins() -> None:
    app = SecurityHeaders(make_router(), referrer_policy=None, permissions_policy="camera=()")
    client = AsyncTestClient(app)
    response = await client.get("/where")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cross-origin-opener-policy"] == "same-origin"
    assert response.headers["permissions-policy"] == "camera=()"
    assert "referrer-policy" not in response.headers
    assert "content-security-policy" not in response.headers
    framed = await client.get("/framed")
    assert framed.headers.getlist("x-frame-options") == ["SAMEORIGIN"]
    async with client.sse("/events") as sse:
        assert sse.headers["x-content-type-options"] == "nosniff"


async def test_csp_nonce_is_fresh_per_request_and_in_the_scope() -> None:
    policy = "default-src 'self'; script-src 'nonce-{nonce}'"
    client = AsyncTestClient(SecurityHeaders(make_router(), content_security_policy=policy))
    nonces = []
    for _ in range(2):
        response = await client.get("/where")
        nonce = response.json()["nonce"]
        assert response.headers["content-security-policy"] == (
            f"default-src 'self'; script-src 'nonce-{nonce}'"
        )
        nonces.append(nonce)
    assert nonces[0] != nonces[1] and len(nonces[0]) >= 16
    fixed = AsyncTestClient(
        SecurityHeaders(make_router(), content_security_policy="default-src 'self'")
    )
    assert (await fixed.get("/where")).json()["nonce"] is None


def test_security_headers_bad_options() -> None:
    with pytest.raises(OptionError, match="'x_frame_options'"):
        SecurityHeaders(make_router(), x_frame_options="DENY\r\nx: y")
    with pytest.raises(OptionError, match="'referrer_policy'"):
        SecurityHeaders(make_router(), referrer_policy="")


# -- ProxyHeaders and the Forwarded parser -------------------------------------------


def test_parse_forwarded_and_split_node() -> None:
    value = 'for=192.0.2.60;proto=HTTP;by=203.0.113.43, for="[2001:db8:cafe::17]:4711";host="a,b"'
    assert parse_forwarded(value) == [
        {"for": "192.0.2.60", "proto": "HTTP", "by": "203.0.113.43"},
        {"for": "[2001:db8:cafe::17]:4711", "host": "a,b"},
    ]
    assert split_node("[2001:db8:cafe::17]:4711") == ("2001:db8:cafe::17", 4711)
    assert split_node("192.0.2.60:80") == ("192.0.2.60", 80)
    assert split_node("2001:db8::1") == ("2001:db8::1", None)
    assert split_node("_hidden") == ("_hidden", None)


def test_resolve_walks_from_the_right_skipping_trusted_proxies() -> None:
    trusted = TrustedProxies(["10.0.0.0/8", "127.0.0.1"])
    spoofed = [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.7, 10.1.1.1")]
    assert resolve_forwarded(spoofed, trusted).client == ("203.0.113.7", 0)
    all_trusted = [(b"x-forwarded-for", b"10.0.0.2, 10.0.0.3")]
    assert resolve_forwarded(all_trusted, trusted).client == ("10.0.0.2", 0)
    split = [(b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"198.51.100.1")]
    assert resolve_forwarded(split, trusted).client == ("198.51.100.1", 0)
    forwarded = [
        (
            b"forwarded",
            b"for=6.6.6.6;proto=http, "
            b'for="198.51.100.2:99";proto=https;host=shop.example, for=10.2.2.2',
        )
    ]
    info = resolve_forwarded(forwarded, trusted)
    assert (info.client, info.scheme, info.host) == (("198.51.100.2", 99), "https", "shop.example")
    bad_proto = [(b"x-forwarded-proto", b"javascript")]
    assert resolve_forwarded(bad_proto, trusted).scheme is None
    with pytest.raises(ValueError, match="not-an-ip"):
        TrustedProxies(["not-an-ip"])


async def test_proxy_headers_from_a_trusted_peer() -> None:
    app = ProxyHeaders(make_router(), trusted=["127.0.0.1", "10.0.0.0/8"])
    client = AsyncTestClient(app, client=("127.0.0.1", 5000))
    headers = {
        "x-forwarded-for": "6.6.6.6, 198.51.100.9, 10.0.0.5",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "shop.example",
    }
    response = await client.get("/where", headers=headers)
    assert response.json()["client"] == ["198.51.100.9", 0]
    assert response.json()["scheme"] == "https"
    assert response.json()["host"] == "shop.example"
    assert response.json()["original"] == [["127.0.0.1", 5000], "http", "testserver"]
    async with client.websocket("/ws", headers={"x-forwarded-proto": "https"}) as ws:
        assert await ws.receive_json() == {"scheme": "wss"}


async def test_proxy_headers_ignored_from_an_untrusted_peer() -> None:
    app = ProxyHeaders(make_router(), trusted=["127.0.0.1"])
    client = AsyncTestClient(app, client=("203.0.113.50", 5000))
    headers = {
        "x-forwarded-for": "1.2.3.4",
        "x-forwarded-proto": "https",
        "forwarded": "for=1.2.3.4",
    }
    response = await client.get("/where", headers=headers)
    assert response.json()["client"] == ["203.0.113.50", 5000]
    assert response.json()["scheme"] == "http"
    assert response.json()["original"] == [None, None, None]


def test_proxy_headers_bad_option() -> None:
    with pytest.raises(OptionError, match="'trusted'"):
        ProxyHeaders(make_router(), trusted=["localhost"])
