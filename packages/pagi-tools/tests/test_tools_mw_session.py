"""Session middleware: cookie-stored and server-side sessions, through the test client."""

from __future__ import annotations

import time
from typing import Any

import pytest
from itsdangerous import URLSafeTimedSerializer

from pagi.tools import SSE, Request, Router, WebSocket
from pagi.tools.middleware import MemoryStore, Middleware, OptionError, Session
from pagi.tools.testing import AsyncTestClient

pytestmark = pytest.mark.anyio

SECRET = "session-secret-" + "x" * 32


def make_router() -> Router:
    router = Router()

    @router.get("/read")
    async def read(request: Request) -> Any:
        return {"session": dict(request.session), "id": getattr(request.session, "id", None)}

    @router.post("/set")
    async def set_(request: Request) -> Any:
        request.session.update(await request.json())
        return {"ok": True}

    @router.post("/append")
    async def append(request: Request) -> Any:
        request.session.setdefault("items", [])
        request.session["items"].append(len(request.session["items"]))
        return {"ok": True}

    @router.post("/login")
    async def login(request: Request) -> Any:
        request.session["user"] = "alice"
        request.session.regenerate()  # type: ignore[attr-defined]
        return {"id": request.session.id}  # type: ignore[attr-defined]

    @router.post("/logout")
    async def logout(request: Request) -> Any:
        request.session.clear()
        return {"ok": True}

    @router.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        session = websocket.session
        try:
            session["x"] = 1
            outcome = "wrote"
        except TypeError:
            outcome = "read-only"
        await websocket.send_json({"user": session.get("user"), "write": outcome})
        await websocket.close()

    @router.sse("/events")
    async def events(sse: SSE) -> None:
        await sse.start()
        await sse.send({"user": sse.session.get("user")})
        await sse.close()

    return router


def client_for(**options: Any) -> AsyncTestClient:
    return AsyncTestClient(Session(make_router(), SECRET, **options))


async def test_cookie_session_round_trip_and_set_cookie_only_on_change() -> None:
    client = client_for()
    first = await client.get("/read")
    assert first.json()["session"] == {}
    assert "set-cookie" not in first.headers  # nothing created, nothing sent
    written = await client.post("/set", json={"user": "alice"})
    cookie = written.headers["set-cookie"]
    assert cookie.startswith("session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Max-Age=1209600" in cookie and "Secure" not in cookie
    again = await client.get("/read")
    assert again.json()["session"] == {"user": "alice"}
    assert "set-cookie" not in again.headers  # unchanged: no new cookie
    same = await client.post("/set", json={"user": "alice"})
    assert "set-cookie" not in same.headers  # the same value again is no change


async def test_nested_changes_are_saved() -> None:
    client = client_for()
    await client.post("/append")
    changed = await client.post("/append")
    assert "set-cookie" in changed.headers
    assert (await client.get("/read")).json()["session"] == {"items": [0, 1]}


async def test_tampered_foreign_and_expired_cookies_start_empty_sessions() -> None:
    client = client_for(max_age=60)
    await client.post("/set", json={"user": "alice"})
    good = client.cookies["session"]
    client.cookies["session"] = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    assert (await client.get("/read")).json()["session"] == {}
    foreign = URLSafeTimedSerializer("another-key-" + "y" * 32, salt="pagi.session")
    client.cookies["session"] = foreign.dumps({"user": "mallory"})
    assert (await client.get("/read")).json()["session"] == {}
    client.cookies["session"] = "garbage"
    assert (await client.get("/read")).json()["session"] == {}
    # Signed with the right key but 2 minutes old: expired for max_age=60.
    mine = URLSafeTimedSerializer(SECRET, salt="pagi.session")
    real_time = time.time
    try:
        time.time = lambda: real_time() - 120  # type: ignore[assignment]
        old = mine.dumps({"user": "alice"})
    finally:
        time.time = real_time  # type: ignore[assignment]
    client.cookies["session"] = old
    assert (await client.get("/read")).json()["session"] == {}
    client.cookies["session"] = mine.dumps({"user": "alice"})
    assert (await client.get("/read")).json()["session"] == {"user": "alice"}


async def test_clearing_deletes_the_cookie() -> None:
    client = client_for()
    await client.post("/set", json={"user": "alice"})
    out = await client.post("/logout")
    cookie = out.headers["set-cookie"]
    assert cookie.startswith("session=;") and "Max-Age=0" in cookie
    assert "session" not in client.cookies
    assert (await client.get("/read")).json()["session"] == {}


async def test_cookie_attributes_follow_options() -> None:
    client = client_for(
        cookie_name="sid", path="/", same_site="strict", https_only=True, domain="example.com"
    )
    response = await client.post("/set", json={"a": 1})
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("sid=")
    for part in ("Domain=example.com", "Secure", "SameSite=Strict", "HttpOnly"):
        assert part in cookie


async def test_memory_store_keeps_only_an_id_in_the_cookie_and_regenerates_on_login() -> None:
    store = MemoryStore()
    client = client_for(store=store)
    await client.post("/set", json={"cart": [1, 2]})
    first_id = client.cookies["session"]
    assert "cart" not in first_id and len(first_id) >= 40
    assert await store.load(first_id) == {"cart": [1, 2]}
    login = await client.post("/login")
    new_id = login.json()["id"]
    assert new_id != first_id and client.cookies["session"] == new_id
    assert await store.load(first_id) is None  # the pre-login id is dead
    assert await store.load(new_id) == {"cart": [1, 2], "user": "alice"}
    # An attacker replaying the old id gets an empty session.
    stale = await AsyncTestClient(Session(make_router(), SECRET, store=store)).get(
        "/read", headers={"cookie": f"session={first_id}"}
    )
    assert stale.json()["session"] == {}
    await client.post("/logout")
    assert await store.load(new_id) is None and len(store) == 0


async def test_memory_store_changes_do_not_resend_the_cookie_and_unknown_ids_are_replaced() -> None:
    store = MemoryStore()
    client = client_for(store=store)
    await client.post("/set", json={"n": 1})
    sid = client.cookies["session"]
    changed = await client.post("/set", json={"n": 2})
    assert "set-cookie" not in changed.headers  # same id, data saved server-side
    assert await store.load(sid) == {"n": 2}
    client.cookies["session"] = "unknown-id-" + "z" * 30
    fresh = await client.post("/set", json={"n": 3})
    assert client.cookies["session"] != "unknown-id-" + "z" * 30
    assert "set-cookie" in fresh.headers


async def test_memory_store_is_bounded_and_expires() -> None:
    store = MemoryStore(max_sessions=2)
    for n in range(3):
        await store.save(f"id{n}", {"n": n}, None)
    assert len(store) == 2 and await store.load("id0") is None
    await store.save("short", {"n": 1}, 1)
    store._data["short"] = (time.monotonic() - 1, '{"n":1}')
    assert await store.load("short") is None


async def test_header_and_bearer_transports() -> None:
    store = MemoryStore()
    app = Session(make_router(), SECRET, store=store, transport="header")
    client = AsyncTestClient(app)
    made = await client.post("/set", json={"user": "bob"})
    sid = made.headers["x-session-id"]
    assert "set-cookie" not in made.headers
    read = await client.get("/read", headers={"x-session-id": sid})
    assert read.json()["session"] == {"user": "bob"}
    bearer = AsyncTestClient(Session(make_router(), SECRET, store=store, transport="bearer"))
    read = await bearer.get("/read", headers={"authorization": f"Bearer {sid}"})
    assert read.json()["session"] == {"user": "bob"}
    login = await bearer.post("/login", headers={"authorization": f"Bearer {sid}"})
    assert login.json()["id"] != sid and await store.load(sid) is None


async def test_websocket_and_sse_see_the_session_read_only() -> None:
    client = client_for()
    await client.post("/set", json={"user": "carol"})
    async with client.websocket("/ws") as ws:
        assert await ws.receive_json() == {"user": "carol", "write": "read-only"}
    async with client.sse("/events") as sse:
        assert (await sse.receive_json()) == {"user": "carol"}


async def test_request_session_without_middleware_is_a_clear_error() -> None:
    client = AsyncTestClient(make_router())
    with pytest.raises(RuntimeError, match="Session middleware"):
        await client.get("/read")


async def test_router_middleware_form() -> None:
    router = make_router()
    app = Router(middleware=[Middleware(Session, secret_key=SECRET)])
    app.mount("", router)
    client = AsyncTestClient(app)
    await client.post("/set", json={"k": "v"})
    assert (await client.get("/read")).json()["session"] == {"k": "v"}


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"secret_key": ""}, "secret_key"),
        ({"secret_key": SECRET, "cookie_name": "bad name"}, "cookie_name"),
        ({"secret_key": SECRET, "max_age": 0}, "max_age"),
        ({"secret_key": SECRET, "same_site": "sometimes"}, "same_site"),
        ({"secret_key": SECRET, "same_site": "none"}, "same_site"),
        ({"secret_key": SECRET, "store": object()}, "store"),
        ({"secret_key": SECRET, "transport": "bearer"}, "transport"),
        ({"secret_key": SECRET, "transport": "carrier-pigeon"}, "transport"),
        ({"secret_key": SECRET, "path": "/a;b"}, "path"),
    ],
)
def test_bad_options_fail_at_construction(options: dict[str, Any], option: str) -> None:
    with pytest.raises(OptionError) as info:
        Session(make_router(), **options)
    assert info.value.option == option and repr(option) in str(info.value)


async def test_a_remembered_cookie_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    import pagi.tools.middleware.session as session_module

    client = client_for(max_age=60)
    await client.post("/set", json={"user": "alice"})
    cookie = {"cookie": f"session={client.cookies['session']}"}  # the jar would drop it
    assert (await client.get("/read", headers=cookie)).json()["session"] == {"user": "alice"}
    later = time.time() + 120
    monkeypatch.setattr(session_module.time, "time", lambda: later)
    assert (await client.get("/read", headers=cookie)).json()["session"] == {}
