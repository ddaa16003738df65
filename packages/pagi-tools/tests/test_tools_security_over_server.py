"""The security middleware over real sockets: pagi-server in a subprocess, httpx and websockets.

Cookies (a login session that survives across requests), a CORS preflight,
a WebSocket refused for its Origin, a 429 from the rate limit and a
refused Host header, as a browser or a client library would see them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_process import pagi_server
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

APP = Path(__file__).with_name("security_server_app.py")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with pagi_server(APP) as address:
        yield address


def test_login_session_cookie_round_trip(server: str) -> None:
    with httpx.Client(base_url=f"http://{server}") as client:
        assert client.get("/me").json() == {"user": None}
        login = client.post("/login", json={"user": "alice"})
        cookie = login.headers["set-cookie"]
        assert cookie.startswith("session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        me = client.get("/me")
        assert me.json() == {"user": "alice"}
        assert "set-cookie" not in me.headers
        assert me.headers["x-content-type-options"] == "nosniff"
        session = client.cookies["session"]
    with connect(f"ws://{server}/ws", additional_headers={"cookie": f"session={session}"}) as ws:
        assert ws.recv(timeout=5) == "hello alice"


def test_cors_preflight_and_actual_request(server: str) -> None:
    headers = {
        "origin": "https://app.example",
        "access-control-request-method": "PUT",
        "access-control-request-headers": "x-token",
    }
    preflight = httpx.options(f"http://{server}/api", headers=headers)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert preflight.headers["access-control-allow-headers"] == "x-token"
    refused = httpx.options(f"http://{server}/api", headers={**headers, "origin": "https://evil"})
    assert refused.status_code == 400
    actual = httpx.put(f"http://{server}/api", headers={"origin": "https://app.example"})
    assert actual.json() == {"method": "PUT"}
    assert actual.headers["access-control-allow-origin"] == "https://app.example"
    assert actual.headers["vary"] == "Origin"


def test_websocket_from_a_foreign_origin_is_denied(server: str) -> None:
    with pytest.raises(InvalidStatus) as info:
        with connect(f"ws://{server}/ws", origin="https://evil.example"):  # type: ignore[arg-type]
            pass
    assert info.value.response.status_code == 403


def test_rate_limit_answers_429_with_retry_after(server: str) -> None:
    with httpx.Client(base_url=f"http://{server}") as client:
        first = client.get("/limited")
        assert first.headers["ratelimit-limit"] == "2"
        assert client.get("/limited").status_code == 200
        refused = client.get("/limited")
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["ratelimit-remaining"] == "0"
        assert client.get("/me").status_code == 200  # other paths are not limited


def test_untrusted_host_is_refused(server: str) -> None:
    response = httpx.get(f"http://{server}/me", headers={"host": "evil.example"})
    assert response.status_code == 400
