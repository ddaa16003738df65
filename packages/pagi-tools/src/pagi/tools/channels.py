"""Channels: publish/subscribe fan-out for SSE streams and WebSockets, in memory or over Redis.

Theory of operation
-------------------
A :class:`Channels` object is the per-process hub. It keeps, for each
channel name, the set of local :class:`Subscription` objects, and hands
messages to a *backend* that carries them between processes:

* :class:`MemoryBackend` (the default) delivers within the process that
  published. Each instance is separate; nothing is module-global.
* :class:`RedisBackend` (``pagi.tools.channels_redis``) uses Redis
  PUBLISH/SUBSCRIBE over one connection per process, whatever the number of
  subscribers, so every process sees every message.

A message is ``bytes``, ``str`` or a JSON-able value. It is encoded once at
publish (a one-byte kind tag, the optional sender token, the body), checked
against ``max_message_size`` (:class:`MessageTooLarge`), and decoded once
per process on delivery into an :class:`Event` shared by every local
subscriber.

Delivery never waits. Each subscription owns a bounded queue; putting an
event into it is a plain append. When the queue is full the channel's
:class:`Overflow` policy decides: ``DROP_OLDEST`` drops the oldest queued
event and counts it in :attr:`Subscription.dropped`, ``DISCONNECT`` ends
the subscription (iteration raises :class:`SubscriberTooSlow`) and removes
it at once. A publisher therefore costs O(local subscribers) appends and is
never slowed by a slow reader. Given a ``pagi.transport`` handle, a
subscription notices its client is stalled (the server's outbound buffer
crossed its high-water mark) before its queue fills: while stalled its
queue limit drops to ``stalled_queue_size``, so the overflow policy acts
early, and the full limit comes back on drain.

Replay: a channel configured with ``history=N`` keeps its last N events
with ids (in memory, or in a capped Redis stream shared by all processes).
``subscribe(channel, last_event_id=...)`` registers the subscription first,
then fetches the history after that id, then lets live events through,
skipping any whose id was already replayed; nothing is lost or doubled in
between.

Presence: :meth:`Channels.presence` counts subscribers of a channel, in
every process with Redis.

Lifespan: ``Lifespan(app, context=[channels.lifespan])`` (or
``async with channels:``) starts the backend at startup and closes it at
shutdown. Used without either, the backend starts on first use.
"""

from __future__ import annotations

import enum
import json
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, Protocol

import anyio

__all__ = [
    "BackendUnavailable",
    "ChannelBackend",
    "ChannelError",
    "ChannelPolicy",
    "Channels",
    "Event",
    "MemoryBackend",
    "MessageTooLarge",
    "Overflow",
    "RedisBackend",
    "SubscriberTooSlow",
    "Subscription",
]


class ChannelError(Exception):
    """Base class of the channel layer's errors."""


class MessageTooLarge(ChannelError, ValueError):
    """A published message exceeds ``max_message_size``."""


class SubscriberTooSlow(ChannelError):
    """Raised from a subscription ended by the ``DISCONNECT`` overflow policy."""


class BackendUnavailable(ChannelError):
    """The backend cannot be reached (for example Redis is down)."""


class Overflow(enum.Enum):
    """What happens when a subscriber's queue is full."""

    DROP_OLDEST = "drop_oldest"
    DISCONNECT = "disconnect"


@dataclass(frozen=True)
class ChannelPolicy:
    """Per-channel settings (see :meth:`Channels.configure`)."""

    #: Events a subscriber may fall behind before the overflow policy acts.
    queue_size: int = 256
    overflow: Overflow = Overflow.DROP_OLDEST
    #: Events kept for replay (0: none, events carry no id).
    history: int = 0
    #: The queue limit while the subscriber's transport is above its high-water mark.
    stalled_queue_size: int = 16

    def __post_init__(self) -> None:
        if self.queue_size < 1 or self.stalled_queue_size < 1:
            raise ValueError("queue sizes must be at least 1")
        if self.history < 0:
            raise ValueError("history must be >= 0")


#: ``deliver(channel, id, payload)``: how a backend hands a message to a hub.
Deliver = Callable[[str, "str | None", bytes], None]


class ChannelBackend(Protocol):
    """What :class:`Channels` needs from a backend."""

    async def start(self, deliver: Deliver) -> None:
        """Connect; afterwards call ``deliver`` for every message of a subscribed channel."""

    async def aclose(self) -> None:
        """Disconnect and stop delivering."""

    async def publish(self, channel: str, payload: bytes, history: int) -> str | None:
        """Send ``payload`` to every process; keep it for replay when ``history`` > 0."""

    async def subscribe(self, channel: str) -> None:
        """Start receiving ``channel`` (called for its first local subscriber)."""

    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving ``channel`` (called when its last local subscriber leaves)."""

    async def history(self, channel: str, after: str | None) -> list[tuple[str, bytes]]:
        """Kept ``(id, payload)`` pairs newer than ``after`` (all of them when unknown)."""

    def set_local_presence(self, channel: str, count: int) -> None:
        """Record this process's subscriber count for ``channel``."""

    async def presence(self, channel: str, local: int) -> int:
        """Subscribers of ``channel`` in every process (``local`` is this one's)."""


# ---------------------------------------------------------------- encoding

_BYTES, _TEXT, _JSON = b"b", b"t", b"j"


def encode_message(message: Any, sender: str | None = None) -> bytes:
    """The wire payload: kind tag, sender length and sender, then the body."""
    if isinstance(message, (bytes, bytearray, memoryview)):
        kind, body = _BYTES, bytes(message)
    elif isinstance(message, str):
        kind, body = _TEXT, message.encode()
    else:
        try:
            text = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"a channel message is bytes, str or JSON-able: {exc}") from None
        kind, body = _JSON, text.encode()
    token = (sender or "").encode()
    if len(token) > 255:
        raise ValueError("sender tokens are at most 255 bytes")
    return kind + bytes((len(token),)) + token + body


def id_key(event_id: str) -> tuple[int, ...]:
    """Sort key of an event id (``"12"`` in memory, ``"1700000000000-0"`` in Redis)."""
    try:
        return tuple(int(part) for part in event_id.split("-"))
    except ValueError:
        return (-1,)


class Event:
    """One delivered message; the same object is shared by every local subscriber."""

    __slots__ = ("channel", "data", "id", "sender", "text")

    def __init__(self, channel: str, event_id: str | None, payload: bytes) -> None:
        kind, size = payload[:1], payload[1]
        body = payload[2 + size :]
        self.channel = channel
        #: The id when the channel keeps history (use it as the SSE ``id``).
        self.id = event_id
        #: The publisher's ``sender`` token, if any (lets a WebSocket skip its own messages).
        self.sender: str | None = payload[2 : 2 + size].decode() or None
        #: The message as published: ``bytes``, ``str`` or the decoded JSON value.
        self.data: Any
        #: The message as text: ``str`` as is, JSON compact, bytes decoded as UTF-8.
        self.text: str = body.decode("utf-8", "replace")
        if kind == _BYTES:
            self.data = body
        elif kind == _JSON:
            self.data = json.loads(self.text)
        else:
            self.data = self.text

    @property
    def is_binary(self) -> bool:
        """True when the message was published as bytes."""
        return isinstance(self.data, bytes)

    def __repr__(self) -> str:
        return f"Event(channel={self.channel!r}, id={self.id!r}, data={self.data!r})"


# ---------------------------------------------------------------- subscriptions


class Subscription:
    """A bounded queue of :class:`Event`; iterate it with ``async for``.

    Iteration ends when the subscription is closed, and raises
    :class:`SubscriberTooSlow` when the ``DISCONNECT`` policy ended it.
    """

    def __init__(self, hub: Channels, channel: str, policy: ChannelPolicy) -> None:
        self.hub = hub
        self.channel = channel
        self.policy = policy
        #: Events dropped by the ``DROP_OLDEST`` policy.
        self.dropped = 0
        #: True while the client's transport is above its high-water mark.
        self.stalled = False
        self._queue: deque[Event] = deque()
        self._wakeup: anyio.Event | None = None
        self._closed = False
        self._error: ChannelError | None = None
        self._replayed_up_to: tuple[int, ...] | None = None

    @property
    def closed(self) -> bool:
        """True once closed, by the consumer or by the overflow policy."""
        return self._closed

    def __len__(self) -> int:
        return len(self._queue)

    def offer(self, event: Event) -> None:
        """Queue ``event`` without waiting, applying the overflow policy."""
        if self._closed:
            return
        if self._replayed_up_to is not None and event.id is not None:
            if id_key(event.id) <= self._replayed_up_to:
                return  # already sent from history
        limit = self.policy.stalled_queue_size if self.stalled else self.policy.queue_size
        if len(self._queue) >= limit:
            if self.policy.overflow is Overflow.DISCONNECT:
                self._end(SubscriberTooSlow(f"subscriber of {self.channel!r} fell {limit} behind"))
                self.hub._forget(self)
                return
            while len(self._queue) >= limit:
                self._queue.popleft()
                self.dropped += 1
        self._queue.append(event)
        if self._wakeup is not None:
            self._wakeup.set()

    def watch_transport(self, transport: Any) -> None:
        """Track a ``pagi.transport`` handle: stalled above high water, normal after drain."""
        if transport is None:
            return
        on_high = getattr(transport, "on_high_water", None)
        on_drain = getattr(transport, "on_drain", None)
        if on_high is None or on_drain is None:
            return

        def high() -> None:
            self.stalled = True

        def drained() -> None:
            self.stalled = False

        on_high(high)
        on_drain(drained)

    def close(self) -> None:
        """Stop receiving; pending iteration ends."""
        if not self._closed:
            self._end(None)
            self.hub._forget(self)

    def _end(self, error: ChannelError | None) -> None:
        self._closed = True
        self._error = error
        if error is not None:
            self._queue.clear()
        if self._wakeup is not None:
            self._wakeup.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        while not self._queue:
            if self._closed:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._wakeup = anyio.Event()
            await self._wakeup.wait()
            self._wakeup = None
        if self._error is not None:
            raise self._error
        return self._queue.popleft()

    def get_nowait(self) -> Event | None:
        """The next queued event, or ``None`` when the queue is empty."""
        return self._queue.popleft() if self._queue else None


# ---------------------------------------------------------------- the hub


class Channels:
    """Publish/subscribe over a backend (in memory by default).

    >>> channels = Channels()                       # or Channels(RedisBackend(url))
    >>> await channels.publish("news", {"title": "hi"})
    >>> async with channels.subscribe("news") as events:
    ...     async for event in events:
    ...         print(event.data)
    """

    def __init__(
        self,
        backend: ChannelBackend | None = None,
        *,
        queue_size: int = 256,
        overflow: Overflow | str = Overflow.DROP_OLDEST,
        history: int = 0,
        stalled_queue_size: int = 16,
        max_message_size: int = 1 << 20,
    ) -> None:
        self.backend: ChannelBackend = backend if backend is not None else MemoryBackend()
        self.defaults = ChannelPolicy(queue_size, Overflow(overflow), history, stalled_queue_size)
        self.max_message_size = max_message_size
        self._policies: dict[str, ChannelPolicy] = {}
        self._local: dict[str, dict[Subscription, None]] = {}
        self._started = False
        self._starting: anyio.Lock | None = None

    # -- configuration

    def configure(
        self,
        channel: str,
        *,
        queue_size: int | None = None,
        overflow: Overflow | str | None = None,
        history: int | None = None,
        stalled_queue_size: int | None = None,
    ) -> ChannelPolicy:
        """Set ``channel``'s policy (unset fields keep the current value); returns it."""
        changes: dict[str, Any] = {}
        for name, value in (
            ("queue_size", queue_size),
            ("history", history),
            ("stalled_queue_size", stalled_queue_size),
        ):
            if value is not None:
                changes[name] = value
        if overflow is not None:
            changes["overflow"] = Overflow(overflow)
        policy = replace(self.policy(channel), **changes)
        self._policies[channel] = policy
        return policy

    def policy(self, channel: str) -> ChannelPolicy:
        """The policy ``channel`` uses."""
        return self._policies.get(channel, self.defaults)

    # -- life cycle

    async def start(self) -> None:
        """Connect the backend (idempotent; also done on first use)."""
        if self._started:
            return
        if self._starting is None:
            self._starting = anyio.Lock()
        async with self._starting:
            if not self._started:
                await self.backend.start(self._deliver)
                self._started = True

    async def aclose(self) -> None:
        """End every subscription and close the backend."""
        for members in list(self._local.values()):
            for subscription in list(members):
                subscription.close()
        self._local.clear()
        if self._started:
            self._started = False
            await self.backend.aclose()

    async def __aenter__(self) -> Channels:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @asynccontextmanager
    async def lifespan(self, state: dict[str, Any]) -> AsyncIterator[Mapping[str, Any]]:
        """A :class:`~pagi.tools.lifespan.Lifespan` context; puts ``channels`` in the state."""
        await self.start()
        try:
            yield {"channels": self}
        finally:
            await self.aclose()

    # -- publish / subscribe

    async def publish(self, channel: str, message: Any, *, sender: str | None = None) -> str | None:
        """Send ``message`` (bytes, str or JSON-able) to every subscriber of ``channel``.

        Returns the event id when the channel keeps history. Raises
        :class:`MessageTooLarge` for an oversize message and
        :class:`BackendUnavailable` when the backend cannot be reached.
        """
        payload = encode_message(message, sender)
        if len(payload) - 2 > self.max_message_size:
            raise MessageTooLarge(
                f"message of {len(payload) - 2} bytes for channel {channel!r} exceeds "
                f"max_message_size={self.max_message_size}"
            )
        await self.start()
        return await self.backend.publish(channel, payload, self.policy(channel).history)

    @asynccontextmanager
    async def subscribe(
        self,
        channel: str,
        *,
        last_event_id: str | None = None,
        transport: Any = None,
    ) -> AsyncIterator[Subscription]:
        """Receive ``channel``'s events while the block runs.

        With ``last_event_id`` (and a channel that keeps history), the
        events after that id are queued first. ``transport`` is the
        scope's ``pagi.transport``, used to notice a stalled client early.
        """
        await self.start()
        subscription = Subscription(self, channel, self.policy(channel))
        subscription.watch_transport(transport)
        members = self._local.get(channel)
        first = members is None
        if members is None:
            members = self._local[channel] = {}
        members[subscription] = None
        self.backend.set_local_presence(channel, len(members))
        try:
            if first:
                await self.backend.subscribe(channel)
            if last_event_id is not None and subscription.policy.history:
                await self._replay(subscription, last_event_id)
            yield subscription
        finally:
            subscription.close()
            if channel not in self._local and self._started:
                with anyio.CancelScope(shield=True):
                    try:
                        await self.backend.unsubscribe(channel)
                    except ChannelError:
                        pass  # the backend is gone; nothing to undo

    async def _replay(self, subscription: Subscription, last_event_id: str) -> None:
        # Live events may already be queued: history goes in front of them.
        live = list(subscription._queue)
        subscription._queue.clear()
        kept = await self.backend.history(subscription.channel, last_event_id)
        for event_id, payload in kept:
            subscription.offer(Event(subscription.channel, event_id, payload))
        if kept:
            subscription._replayed_up_to = id_key(kept[-1][0])
        for event in live:
            subscription.offer(event)

    async def history(self, channel: str, after: str | None = None) -> list[Event]:
        """The events kept for ``channel`` (those after ``after`` when given)."""
        await self.start()
        return [Event(channel, i, p) for i, p in await self.backend.history(channel, after)]

    async def presence(self, channel: str) -> int:
        """How many subscribers ``channel`` has (in every process with Redis)."""
        await self.start()
        return await self.backend.presence(channel, self.local_presence(channel))

    def local_presence(self, channel: str) -> int:
        """Subscribers of ``channel`` in this process."""
        return len(self._local.get(channel, ()))

    def local_channels(self) -> list[str]:
        """Channels with at least one subscriber in this process."""
        return sorted(self._local)

    def _forget(self, subscription: Subscription) -> None:
        members = self._local.get(subscription.channel)
        if members is None or subscription not in members:
            return
        del members[subscription]
        if not members:
            del self._local[subscription.channel]
        self.backend.set_local_presence(subscription.channel, len(members))

    def _deliver(self, channel: str, event_id: str | None, payload: bytes) -> None:
        members = self._local.get(channel)
        if not members:
            return
        event = Event(channel, event_id, payload)
        for subscription in list(members):
            subscription.offer(event)


# ---------------------------------------------------------------- memory backend


class MemoryBackend:
    """Delivery within one process; history in a bounded deque per channel.

    Several :class:`Channels` may share one instance (each receives every
    message); separate instances share nothing.
    """

    def __init__(self) -> None:
        self._sinks: list[Deliver] = []
        self._history: dict[str, deque[tuple[str, bytes]]] = {}
        self._counters: dict[str, int] = {}

    async def start(self, deliver: Deliver) -> None:
        if deliver not in self._sinks:
            self._sinks.append(deliver)

    async def aclose(self) -> None:
        self._sinks.clear()

    async def publish(self, channel: str, payload: bytes, history: int) -> str | None:
        event_id: str | None = None
        if history > 0:
            number = self._counters.get(channel, 0) + 1
            self._counters[channel] = number
            event_id = str(number)
            kept = self._history.get(channel)
            if kept is None or kept.maxlen != history:
                kept = self._history[channel] = deque(kept or (), maxlen=history)
            kept.append((event_id, payload))
        for deliver in list(self._sinks):
            deliver(channel, event_id, payload)
        return event_id

    async def subscribe(self, channel: str) -> None:
        return None

    async def unsubscribe(self, channel: str) -> None:
        return None

    async def history(self, channel: str, after: str | None) -> list[tuple[str, bytes]]:
        kept = list(self._history.get(channel, ()))
        if after is None:
            return kept
        ids = [i for i, _ in kept]
        if after in ids:
            return kept[ids.index(after) + 1 :]
        boundary = id_key(after)
        return [(i, p) for i, p in kept if id_key(i) > boundary]

    def set_local_presence(self, channel: str, count: int) -> None:
        return None

    async def presence(self, channel: str, local: int) -> int:
        return local


from pagi.tools.channels_redis import RedisBackend  # noqa: E402  (it imports the names above)
