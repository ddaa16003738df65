"""pagi.tools.channels with the memory backend: fan-out, overflow policies, replay, presence.

Runs on asyncio and trio. The Redis backend is in test_tools_channels_redis.py.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from pagi.tools import JSONResponse, Lifespan, Request
from pagi.tools.channels import (
    ChannelPolicy,
    Channels,
    MemoryBackend,
    MessageTooLarge,
    Overflow,
    SubscriberTooSlow,
)
from pagi.tools.testing import AsyncTestClient

pytestmark = pytest.mark.anyio


async def drain(events: Any, count: int) -> list[Any]:
    with anyio.fail_after(5):
        return [(await events.__anext__()) for _ in range(count)]


async def test_bytes_text_and_json_arrive_as_published() -> None:
    channels = Channels()
    async with channels.subscribe("room") as events:
        assert await channels.publish("room", b"\x00raw") is None  # no history: no ids
        await channels.publish("room", "text é")
        await channels.publish("room", {"n": [1, 2]})
        first, second, third = await drain(events, 3)
    assert first.data == b"\x00raw" and first.is_binary
    assert second.data == "text é" and second.text == "text é"
    assert third.data == {"n": [1, 2]} and third.text == '{"n":[1,2]}'
    assert third.channel == "room" and third.id is None
    with pytest.raises(TypeError, match="bytes, str or JSON-able"):
        await channels.publish("room", object())


async def test_instances_share_nothing_and_unsubscribed_channels_are_silent() -> None:
    one, two = Channels(), Channels()
    async with one.subscribe("c") as events, two.subscribe("c") as others:
        await one.publish("c", "for one")
        await one.publish("elsewhere", "nobody")
        assert (await drain(events, 1))[0].data == "for one"
        assert others.get_nowait() is None and len(events) == 0


async def test_drop_oldest_counts_drops_and_never_blocks_the_publisher() -> None:
    channels = Channels(queue_size=3)
    async with channels.subscribe("c") as slow, channels.subscribe("c") as fast:
        received: list[Any] = []
        with anyio.fail_after(5):  # 10,000 publishes with a reader that never reads
            for n in range(10_000):
                await channels.publish("c", n)
                received.extend(e.data for e in [fast.get_nowait()] if e)
        assert received == list(range(10_000))  # the fast one lost nothing
        assert [e.data for e in await drain(slow, 3)] == [9_997, 9_998, 9_999]
        assert slow.dropped == 9_997 and fast.dropped == 0


async def test_disconnect_policy_ends_the_slow_subscriber_and_removes_it_at_once() -> None:
    channels = Channels()
    channels.configure("strict", queue_size=2, overflow="disconnect")
    assert channels.policy("strict") == ChannelPolicy(queue_size=2, overflow=Overflow.DISCONNECT)
    assert channels.policy("other").overflow is Overflow.DROP_OLDEST
    async with channels.subscribe("strict") as slow, channels.subscribe("strict") as fast:
        assert await channels.presence("strict") == 2
        for n in range(3):
            await channels.publish("strict", n)
            await drain(fast, 1)
        assert slow.closed and await channels.presence("strict") == 1
        with pytest.raises(SubscriberTooSlow):
            await slow.__anext__()
        await channels.publish("strict", "still served")
        assert (await drain(fast, 1))[0].data == "still served"
    assert await channels.presence("strict") == 0


async def test_a_stalled_transport_shrinks_the_queue_until_it_drains() -> None:
    class Transport:
        def __init__(self) -> None:
            self.high: list[Any] = []
            self.drain: list[Any] = []

        def on_high_water(self, callback: Any) -> None:
            self.high.append(callback)

        def on_drain(self, callback: Any) -> None:
            self.drain.append(callback)

    channels = Channels(queue_size=100, stalled_queue_size=2)
    transport = Transport()
    async with channels.subscribe("c", transport=transport) as events:
        transport.high[0]()
        assert events.stalled
        for n in range(5):
            await channels.publish("c", n)
        assert len(events) == 2 and events.dropped == 3
        transport.drain[0]()
        for n in range(5, 15):
            await channels.publish("c", n)
        assert len(events) == 12 and not events.stalled


async def test_replay_after_last_event_id_then_live_without_gaps_or_doubles() -> None:
    channels = Channels()
    channels.configure("news", history=5)
    ids = [await channels.publish("news", f"m{n}") for n in range(8)]
    assert ids == [str(n) for n in range(1, 9)]
    assert [e.data for e in await channels.history("news")] == ["m3", "m4", "m5", "m6", "m7"]
    async with channels.subscribe("news", last_event_id=ids[4]) as events:
        await channels.publish("news", "live")
        got = await drain(events, 4)
    assert [(e.id, e.data) for e in got] == [("6", "m5"), ("7", "m6"), ("8", "m7"), ("9", "live")]
    # An id older than the history (or unknown) replays everything kept.
    async with channels.subscribe("news", last_event_id="1") as events:
        assert [e.data for e in await drain(events, 5)] == ["m4", "m5", "m6", "m7", "live"]
    async with channels.subscribe("news") as events:  # no id: live only
        assert events.get_nowait() is None


async def test_oversize_messages_are_refused_at_publish() -> None:
    channels = Channels(max_message_size=10)
    await channels.publish("c", "x" * 10)
    with pytest.raises(MessageTooLarge, match="11 bytes for channel 'c' exceeds"):
        await channels.publish("c", "x" * 11)
    with pytest.raises(ValueError):
        await channels.publish("c", b"y" * 64)


async def test_a_shared_memory_backend_serves_two_hubs() -> None:
    backend = MemoryBackend()
    one, two = Channels(backend), Channels(backend)
    async with two.subscribe("c") as events:
        await one.publish("c", "across")
        assert (await drain(events, 1))[0].data == "across"


async def test_close_ends_iteration_and_aclose_ends_every_subscription() -> None:
    channels = Channels()
    async with channels.subscribe("c") as events:

        async def consume() -> list[Any]:
            return [e async for e in events]

        async with anyio.create_task_group() as group:
            group.start_soon(consume)
            await anyio.wait_all_tasks_blocked()  # consume() is waiting for an event
            await channels.aclose()
        assert events.closed
    assert channels.local_channels() == []


async def test_lifespan_starts_and_closes_the_channels_and_puts_them_in_state() -> None:
    channels = Channels()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        hub = request.state["channels"]
        await hub.publish("c", "x")
        await JSONResponse({"same": hub is channels})(scope, receive, send)

    async with AsyncTestClient(Lifespan(app, context=[channels.lifespan])) as client:
        assert (await client.get("/")).json() == {"same": True}
        assert channels._started
    assert not channels._started
