"""The Redis backend of :mod:`pagi.tools.channels`: fan-out across processes and hosts.

Theory of operation
-------------------
One ``redis.asyncio`` client per backend (so per process): a pool for
commands and a single PUBLISH/SUBSCRIBE connection owned by a reader task,
whatever the number of local subscribers. A channel is SUBSCRIBEd when its
first local subscriber arrives and UNSUBSCRIBEd when the last one leaves;
:meth:`RedisBackend.subscribe` returns once Redis has confirmed, so nothing
published afterwards is missed.

Wire format on ``<prefix>ch:<channel>``: ``<id>\\n<payload>``, the id empty
for channels without history. A channel with history is published by one
Lua script that XADDs to the capped stream ``<prefix>h:<channel>``
(``MAXLEN history``) and PUBLISHes with the stream id, atomically, so ids
on the pub/sub side are in stream order. Replay is an exclusive XRANGE from
the client's ``Last-Event-ID``; any process can serve it.

Losing Redis: the reader logs, then reconnects with exponential backoff
(``reconnect_initial`` doubling up to ``reconnect_max`` seconds) and
resubscribes every wanted channel. For channels with history it then
replays from the last id it delivered, skipping ids already seen, so
subscribers with history lose nothing across a Redis restart that kept the
stream. Meanwhile :meth:`publish` raises
:class:`~pagi.tools.channels.BackendUnavailable`.

Presence: each process writes ``<prefix>p:<channel>:<process id>`` = its
local count, with a TTL of ``presence_ttl`` seconds, refreshed every third
of it and rewritten promptly on change, and adds its id to the set
``<prefix>p:<channel>``. A reader sums the live keys of the set's members
(dropping members whose key expired: a crashed process stops counting
after at most one TTL).

The ``redis`` client runs on asyncio only; on trio :meth:`start` raises a
``RuntimeError`` saying so.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any

import anyio

from pagi.tools.redis_client import LazyRedis

if TYPE_CHECKING:
    from pagi.tools.channels import Deliver

__all__ = ["RedisBackend"]

logger = logging.getLogger("pagi.tools.channels")

# KEYS: stream, pub/sub channel; ARGV: payload, history length.
_PUBLISH_WITH_HISTORY = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], '*', 'd', ARGV[1])
redis.call('PUBLISH', KEYS[2], id .. '\\n' .. ARGV[1])
return id
"""


class RedisBackend:
    """Channels over Redis PUBLISH/SUBSCRIBE, history in capped streams, shared presence."""

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        prefix: str = "pagi:channels:",
        presence_ttl: float = 30.0,
        reconnect_initial: float = 0.1,
        reconnect_max: float = 5.0,
        confirm_timeout: float = 5.0,
    ) -> None:
        self.redis = LazyRedis("RedisBackend", url, client)
        self.url = url
        self.prefix = prefix
        self.presence_ttl = presence_ttl
        self.reconnect_initial = reconnect_initial
        self.reconnect_max = reconnect_max
        self.confirm_timeout = confirm_timeout
        #: This process's id in the presence keys.
        self.process_id = uuid.uuid4().hex
        #: True while the pub/sub connection is up.
        self.connected = False
        #: How many times the reader reconnected after losing Redis.
        self.reconnects = 0
        self._deliver: Deliver | None = None
        self._wanted: set[str] = set()
        self._confirmed: dict[str, asyncio.Event] = {}
        self._last_ids: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._dirty_signal: asyncio.Event | None = None
        self._up: asyncio.Event | None = None
        self._pubsub: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._script: Any = None
        self._control = f"{prefix}ctl:{self.process_id}"

    def _channel_key(self, channel: str) -> str:
        return f"{self.prefix}ch:{channel}"

    def _stream_key(self, channel: str) -> str:
        return f"{self.prefix}h:{channel}"

    def _unavailable(self, exc: BaseException) -> Exception:
        from pagi.tools.channels import BackendUnavailable

        where = self.url or "the Redis server"
        return BackendUnavailable(f"{where} is unreachable: {type(exc).__name__}: {exc}")

    @staticmethod
    def _errors() -> tuple[type[BaseException], ...]:
        import redis.exceptions

        return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)

    # -- life cycle

    async def start(self, deliver: Deliver) -> None:
        """Connect (raises ``BackendUnavailable`` when Redis is down) and start the reader."""
        client = self.redis.get()
        try:
            await client.ping()
        except self._errors() as exc:
            raise self._unavailable(exc) from exc
        self._deliver = deliver
        self._script = client.register_script(_PUBLISH_WITH_HISTORY)
        self._up = asyncio.Event()
        self._stopping = False
        self._dirty_signal = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._read_forever(client)),
            asyncio.create_task(self._presence_forever(client)),
        ]
        with anyio.move_on_after(self.confirm_timeout):
            await self._up.wait()
        if not self._up.is_set():
            await self.aclose()
            raise self._unavailable(TimeoutError("no SUBSCRIBE confirmation")) from None

    async def aclose(self) -> None:
        """Stop the tasks, withdraw this process's presence, close the client."""
        tasks, self._tasks = self._tasks, []
        # The presence loop is stopped by a flag, not cancel(): a cancel that
        # lands as its wait completes can be swallowed on Python 3.10/3.11.
        self._stopping = True
        self._wake_presence()
        for task in tasks[:1]:
            task.cancel()
        for task in tasks:
            try:
                await task
            except BaseException:
                pass
        if self._counts and self.connected:
            try:
                with anyio.fail_after(2.0):
                    await self._withdraw_presence(self.redis.get())
            except Exception:  # best effort: the keys expire anyway
                logger.debug("could not withdraw presence", exc_info=True)
        self._counts.clear()
        self._wanted.clear()
        self.connected = False
        self._deliver = None
        await self.redis.aclose()

    # -- publish / subscribe

    async def publish(self, channel: str, payload: bytes, history: int) -> str | None:
        client = self.redis.get()
        try:
            if history > 0:
                keys = [self._stream_key(channel), self._channel_key(channel)]
                raw = await self._script(keys=keys, args=[payload, history], client=client)
                return raw.decode() if isinstance(raw, bytes) else str(raw)
            await client.publish(self._channel_key(channel), b"\n" + payload)
            return None
        except self._errors() as exc:
            raise self._unavailable(exc) from exc

    async def subscribe(self, channel: str) -> None:
        self._wanted.add(channel)
        pubsub = self._pubsub
        if pubsub is None:
            return  # the reader subscribes when it reconnects
        confirmed = self._confirmed[channel] = asyncio.Event()
        errors: tuple[type[BaseException], ...] = (TimeoutError, *self._errors())
        try:
            await pubsub.subscribe(self._channel_key(channel))
            with anyio.fail_after(self.confirm_timeout):
                await confirmed.wait()
        except errors as exc:
            # The reader resubscribes on reconnect; the subscriber just waits.
            logger.warning("SUBSCRIBE %s not confirmed yet: %r", channel, exc)

    async def unsubscribe(self, channel: str) -> None:
        self._wanted.discard(channel)
        self._last_ids.pop(channel, None)
        pubsub = self._pubsub
        if pubsub is not None:
            try:
                await pubsub.unsubscribe(self._channel_key(channel))
                if channel in self._wanted:
                    # A subscriber arrived while UNSUBSCRIBE was on its way: undo it.
                    await pubsub.subscribe(self._channel_key(channel))
            except self._errors():
                pass

    async def history(self, channel: str, after: str | None) -> list[tuple[str, bytes]]:
        import redis.exceptions

        client = self.redis.get()
        start = "-" if after is None else "(" + after
        try:
            rows = await client.xrange(self._stream_key(channel), start, "+")
        except redis.exceptions.ResponseError:
            rows = await client.xrange(self._stream_key(channel), "-", "+")  # unknown id form
        except self._errors() as exc:
            raise self._unavailable(exc) from exc
        return [(_text(row_id), bytes(fields[b"d"])) for row_id, fields in rows]

    # -- the reader

    async def _read_forever(self, client: Any) -> None:
        delay = self.reconnect_initial
        prefix_len = len(self.prefix) + 3
        while True:
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self._control)
                for channel in sorted(self._wanted):
                    await pubsub.subscribe(self._channel_key(channel))
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None:
                        continue
                    kind, name = message["type"], _text(message["channel"])
                    if kind == "message":
                        self._on_message(name[prefix_len:], message["data"])
                    elif kind == "subscribe":
                        if name == self._control:
                            self._pubsub = pubsub
                            self.connected = True
                            delay = self.reconnect_initial
                            self._dirty.update(self._counts)
                            self._wake_presence()
                            assert self._up is not None
                            self._up.set()
                        else:
                            await self._on_subscribed(name[prefix_len:])
            except asyncio.CancelledError:
                await _quietly(pubsub.aclose())
                raise
            except Exception as exc:
                if self.connected:
                    logger.warning("lost Redis pub/sub connection: %r; reconnecting", exc)
                self.connected = False
                self._pubsub = None
                await _quietly(pubsub.aclose())
            await asyncio.sleep(delay)
            self.reconnects += 1
            delay = min(delay * 2, self.reconnect_max)

    async def _on_subscribed(self, channel: str) -> None:
        confirmed = self._confirmed.pop(channel, None)
        if confirmed is not None:
            confirmed.set()
        last = self._last_ids.get(channel)
        if last is None or self._deliver is None:
            return
        # A resubscription after losing Redis: send what was published meanwhile.
        try:
            missed = await self.history(channel, last)
        except Exception as exc:
            logger.warning("could not replay %s after reconnecting: %r", channel, exc)
            return
        for event_id, payload in missed:
            self._last_ids[channel] = event_id
            self._deliver(channel, event_id, payload)

    def _on_message(self, channel: str, data: bytes) -> None:
        if channel not in self._wanted or self._deliver is None:
            return
        head, _, payload = bytes(data).partition(b"\n")
        event_id = head.decode() if head else None
        if event_id is not None:
            last = self._last_ids.get(channel)
            if last is not None and _stream_key(event_id) <= _stream_key(last):
                return  # already delivered by a replay
            self._last_ids[channel] = event_id
        self._deliver(channel, event_id, payload)

    # -- presence

    def set_local_presence(self, channel: str, count: int) -> None:
        self._counts[channel] = count
        self._dirty.add(channel)
        self._wake_presence()

    def _wake_presence(self) -> None:
        if self._dirty_signal is not None:
            self._dirty_signal.set()

    async def presence(self, channel: str, local: int) -> int:
        client = self.redis.get()
        members_key = f"{self.prefix}p:{channel}"
        try:
            members = [_text(m) for m in await client.smembers(members_key)]
            others = [m for m in members if m != self.process_id]
            if not others:
                return local
            values = await client.mget([f"{members_key}:{m}" for m in others])
        except self._errors() as exc:
            raise self._unavailable(exc) from exc
        total = local
        gone = []
        for member, value in zip(others, values, strict=True):
            if value is None:
                gone.append(member)
            else:
                total += int(value)
        if gone:
            await _quietly(client.srem(members_key, *gone))
        return total

    async def _presence_forever(self, client: Any) -> None:
        assert self._dirty_signal is not None
        ttl_ms = int(self.presence_ttl * 1000)
        while not self._stopping:
            with anyio.move_on_after(self.presence_ttl / 3) as waited:
                await self._dirty_signal.wait()
            if waited.cancelled_caught:
                self._dirty.update(self._counts)  # the periodic refresh
            self._dirty_signal.clear()
            if self._stopping or not self.connected or not self._dirty:
                continue
            dirty, self._dirty = self._dirty, set()
            try:
                async with client.pipeline(transaction=False) as pipe:
                    for channel in dirty:
                        members_key = f"{self.prefix}p:{channel}"
                        key = f"{members_key}:{self.process_id}"
                        count = self._counts.get(channel, 0)
                        if count > 0:
                            pipe.set(key, count, px=ttl_ms)
                            pipe.sadd(members_key, self.process_id)
                            pipe.pexpire(members_key, ttl_ms * 4)
                        else:
                            pipe.delete(key)
                            pipe.srem(members_key, self.process_id)
                            self._counts.pop(channel, None)
                    await pipe.execute()
            except Exception as exc:
                logger.debug("presence refresh failed: %r", exc)
                self._dirty |= dirty

    async def _withdraw_presence(self, client: Any) -> None:
        async with client.pipeline(transaction=False) as pipe:
            for channel in self._counts:
                members_key = f"{self.prefix}p:{channel}"
                pipe.delete(f"{members_key}:{self.process_id}")
                pipe.srem(members_key, self.process_id)
            await pipe.execute()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _stream_key(event_id: str) -> tuple[int, ...]:
    from pagi.tools.channels import id_key

    return id_key(event_id)


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception:  # closing a connection that is already broken
        logger.debug("ignored while closing", exc_info=True)
