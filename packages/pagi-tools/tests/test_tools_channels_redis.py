"""RedisBackend on a real Redis-protocol server (redis_server.py): asyncio only.

The ``redis`` package's asyncio client does not run on trio, so these tests
pin ``anyio_backend`` to asyncio; the last one checks the trio refusal.
Two ``Channels`` objects on two backends stand for two processes: each has
its own client and its own pub/sub connection.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from redis_server import free_port, redis_url, require_binary, start_server, stop_server  # noqa: F401

from pagi.tools.channels import BackendUnavailable, Channels, MessageTooLarge, RedisBackend

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def pair(redis_url: str) -> AsyncIterator[tuple[Channels, Channels]]:  # noqa: F811
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    one = Channels(RedisBackend(redis_url, prefix=prefix), max_message_size=1000)
    two = Channels(RedisBackend(redis_url, prefix=prefix), max_message_size=1000)
    async with one, two:
        yield one, two


async def next_events(events: Any, count: int) -> list[Any]:
    with anyio.fail_after(5):
        return [(await events.__anext__()) for _ in range(count)]


async def eventually(check: Any, timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not await check():
            await anyio.sleep(0.02)


async def test_a_message_published_in_one_process_reaches_the_other(pair: Any) -> None:
    one, two = pair
    async with two.subscribe("room") as theirs, one.subscribe("room") as ours:
        await one.publish("room", {"hello": "world"})
        await two.publish("room", b"\xffbinary")
        for events in (theirs, ours):
            got = await next_events(events, 2)
            assert [e.data for e in got] == [{"hello": "world"}, b"\xffbinary"]
    with pytest.raises(MessageTooLarge):
        await one.publish("room", "x" * 1001)


async def test_presence_counts_every_process_and_drops_leavers(pair: Any) -> None:
    one, two = pair

    async def counts(expected: int) -> bool:
        return await one.presence("p") == expected and await two.presence("p") == expected

    async with one.subscribe("p"), one.subscribe("p"), two.subscribe("p"):
        await eventually(lambda: counts(3))
    await eventually(lambda: counts(0))


async def test_one_pubsub_connection_per_process_whatever_the_subscribers(
    pair: Any,
    redis_url: str,  # noqa: F811
) -> None:
    import redis.asyncio

    one, _ = pair
    name = one.backend._channel_key("many")
    probe = redis.asyncio.from_url(redis_url)
    try:
        async with anyio.create_task_group() as group:
            stop = anyio.Event()
            entered = 0

            async def subscriber() -> None:
                nonlocal entered
                async with one.subscribe("many"):
                    entered += 1
                    await stop.wait()

            for _ in range(50):
                group.start_soon(subscriber)
            await eventually(lambda: _true(entered == 50))
            assert dict(await probe.pubsub_numsub(name))[name.encode()] == 1
            stop.set()
        await eventually(lambda: _numsub_is(probe, name, 0))  # the last one out unsubscribes
    finally:
        await probe.aclose()


async def _true(value: bool) -> bool:
    return value


async def _numsub_is(probe: Any, name: str, expected: int) -> bool:
    return bool(dict(await probe.pubsub_numsub(name))[name.encode()] == expected)


async def test_history_lives_in_a_capped_stream_and_replays_in_another_process(
    pair: Any,
) -> None:
    one, two = pair
    for hub in pair:
        hub.configure("news", history=3)
    ids = [await one.publish("news", f"m{n}") for n in range(5)]
    assert all(i and "-" in i for i in ids)
    assert [e.data for e in await two.history("news")] == ["m2", "m3", "m4"]
    async with two.subscribe("news", last_event_id=ids[2]) as events:
        await one.publish("news", "live")
        got = await next_events(events, 3)
    assert [e.data for e in got] == ["m3", "m4", "live"]
    assert [e.id for e in got[:2]] == ids[3:]


async def test_redis_going_away_publish_raises_and_subscribers_come_back(
    tmp_path: Path,
) -> None:
    binary = require_binary()
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = start_server(binary, port, tmp_path)
    backend = RedisBackend(url, reconnect_initial=0.05, reconnect_max=0.2)
    publisher = Channels(RedisBackend(url))
    try:
        async with Channels(backend) as channels, publisher:
            async with channels.subscribe("c") as events:
                await publisher.publish("c", "before")
                assert (await next_events(events, 1))[0].data == "before"
                stop_server(server)
                with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{port}.*unreachable"):
                    await publisher.publish("c", "lost")
                await eventually(lambda: _true(not backend.connected))
                server = start_server(binary, port, tmp_path)
                await eventually(lambda: _true(backend.connected), timeout=10)
                assert backend.reconnects >= 1

                async def delivered() -> bool:
                    await publisher.publish("c", "after")
                    await anyio.sleep(0.05)
                    return any(e.data == "after" for e in _drain_now(events))

                await eventually(delivered, timeout=10)
    finally:
        stop_server(server)


def _drain_now(events: Any) -> list[Any]:
    got = []
    while (event := events.get_nowait()) is not None:
        got.append(event)
    return got


async def test_startup_with_redis_down_fails_clearly() -> None:
    channels = Channels(RedisBackend(f"redis://127.0.0.1:{free_port()}/0"))
    with pytest.raises(BackendUnavailable, match="unreachable"):
        await channels.start()


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_on_trio_the_redis_backend_says_it_needs_asyncio(anyio_backend: str) -> None:
    with pytest.raises(RuntimeError, match="asyncio only"):
        await Channels(RedisBackend("redis://127.0.0.1:1/0")).start()
