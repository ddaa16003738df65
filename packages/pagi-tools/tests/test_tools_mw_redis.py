"""RedisStore and RedisBackend against a real Redis-protocol server (see redis_server.py).

The ``redis`` package's asyncio client runs on asyncio only, so these tests
pin ``anyio_backend`` to asyncio; one test checks that trio gets a clear
error rather than a crash deep inside the client.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis_server import redis_url  # noqa: F401  (the fixture)

from pagi.tools import Request, Router
from pagi.tools.middleware import RateLimit, RedisBackend, RedisStore, Session
from pagi.tools.testing import AsyncTestClient

pytestmark = pytest.mark.anyio

SECRET = "redis-session-secret-" + "r" * 32


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def prefix() -> str:
    return f"test:{secrets.token_hex(4)}:"


def make_app(url: str, prefix: str, store: RedisStore, backend: RedisBackend) -> Any:
    router = Router()

    @router.get("/read")
    async def read(request: Request) -> Any:
        return {"session": dict(request.session)}

    @router.post("/login")
    async def login(request: Request) -> Any:
        request.session["user"] = (await request.json())["user"]
        request.session.regenerate()  # type: ignore[attr-defined]
        return {"ok": True}

    @router.post("/logout")
    async def logout(request: Request) -> Any:
        request.session.clear()
        return {"ok": True}

    limited = RateLimit(router, rate=0.01, burst=3, backend=backend)
    return Session(limited, SECRET, store=store)


@pytest.fixture
async def two_instances(
    redis_url: str,  # noqa: F811
    prefix: str,
) -> AsyncIterator[tuple[Any, Any, list[Any]]]:
    # Two separately built apps, each with its own Redis client: two "processes".
    parts = [
        (RedisStore(redis_url, prefix=prefix + "s:"), RedisBackend(redis_url, prefix=prefix + "r:"))
        for _ in range(2)
    ]
    apps = [make_app(redis_url, prefix, store, backend) for store, backend in parts]
    yield apps[0], apps[1], [p for pair in parts for p in pair]
    for closable in parts:
        for item in closable:
            await item.aclose()


async def test_session_written_by_one_instance_is_read_by_the_other(
    two_instances: tuple[Any, Any, list[Any]],
) -> None:
    first, second, (store, *_) = two_instances
    alice = AsyncTestClient(first)
    await alice.post("/login", json={"user": "alice"})
    sid = alice.cookies["session"]
    assert await store.load(sid) == {"user": "alice"}
    other = AsyncTestClient(second, client=("198.51.100.1", 1))  # its own rate bucket
    read = await other.get("/read", headers={"cookie": f"session={sid}"})
    assert read.json() == {"session": {"user": "alice"}}
    out = await other.post("/logout", headers={"cookie": f"session={sid}"})
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert await store.load(sid) is None
    again = await alice.get("/read", headers={"cookie": f"session={sid}"})
    assert again.json() == {"session": {}}


async def test_rate_limit_is_shared_between_instances(
    two_instances: tuple[Any, Any, list[Any]],
) -> None:
    first, second, _ = two_instances
    one, two = AsyncTestClient(first), AsyncTestClient(second)
    statuses = [
        (await one.get("/read")).status_code,
        (await two.get("/read")).status_code,
        (await one.get("/read")).status_code,
        (await two.get("/read")).status_code,
    ]
    assert statuses == [200, 200, 200, 429]
    refused = await one.get("/read")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    # Another client address has its own bucket in the same Redis.
    elsewhere = AsyncTestClient(second, client=("198.51.100.3", 1))
    assert (await elsewhere.get("/read")).status_code == 200


async def test_redis_backend_refills_and_expires_keys(redis_url: str, prefix: str) -> None:  # noqa: F811
    import redis.asyncio

    client = redis.asyncio.from_url(redis_url)
    try:
        backend = RedisBackend(client=client, prefix=prefix)
        # 4 tokens a second: the three takes fit well inside one refill (250 ms)
        # even on a loaded machine, so the third is refused.
        decisions = [await backend.take("k", 4.0, 2) for _ in range(3)]
        assert [d.allowed for d in decisions] == [True, True, False]
        assert decisions[0].remaining == 1 and decisions[2].retry_after <= 0.25
        ttl = await client.pttl(prefix + "k")
        assert 0 < ttl <= 1500  # full again after 500 ms, plus a second of slack
        slow = [await backend.take("slow", 0.001, 1) for _ in range(2)]
        assert [d.allowed for d in slow] == [True, False]
        assert 999 <= slow[1].retry_after <= 1000
        await backend.aclose()  # a client passed in stays open for its owner
        assert await client.ping()
    finally:
        await client.aclose()


async def test_redis_store_expiry_and_bad_data(redis_url: str, prefix: str) -> None:  # noqa: F811
    store = RedisStore(redis_url, prefix=prefix)
    try:
        await store.save("abc", {"n": 1}, 100)
        assert await store.load("abc") == {"n": 1}
        client = store.redis.get()
        assert 0 < await client.ttl(prefix + "abc") <= 100
        await client.set(prefix + "bad", b"not json")
        assert await store.load("bad") is None
        await store.delete("abc")
        assert await store.load("abc") is None
    finally:
        await store.aclose()


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_on_trio_the_redis_backends_say_they_need_asyncio(anyio_backend: str) -> None:
    store = RedisStore("redis://127.0.0.1:1/0")
    with pytest.raises(RuntimeError, match="asyncio only"):
        await store.load("x")
    with pytest.raises(RuntimeError, match="asyncio only"):
        await RedisBackend("redis://127.0.0.1:1/0").take("k", 1.0, 1)
