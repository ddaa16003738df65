"""Token buckets for :class:`~pagi.tools.middleware.rate_limit.RateLimit`, in memory or in Redis.

Theory of operation
-------------------
A bucket holds up to ``burst`` tokens and fills at ``rate`` tokens per
second. Each request takes ``cost`` tokens (one); with too few left it is
refused. A bucket is stored as two numbers, the tokens left and when that
was measured, and brought up to date lazily when the key is next seen, so
an idle key costs nothing and no timer runs.

* :class:`MemoryBackend` keeps buckets in one process, at most
  ``max_keys`` of them: the least recently seen key is dropped first (it
  comes back full, which errs on the side of letting a client through).
  Each instance is separate; nothing is module-global.
* :class:`RedisBackend` keeps them in Redis, so every server process
  shares one limit per key. One Lua script reads, refills, takes and
  writes atomically, with Redis's own clock, so processes on hosts with
  skewed clocks still agree. Keys expire once they would be full again.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pagi.tools.redis_client import LazyRedis

__all__ = ["MemoryBackend", "RateDecision", "RateLimitBackend", "RedisBackend", "refill"]


@dataclass(frozen=True)
class RateDecision:
    """The answer for one request: allowed or not, and what to tell the client."""

    allowed: bool
    #: Whole tokens left after this request.
    remaining: int
    #: Seconds until the bucket is full again.
    reset_after: float
    #: Seconds until one more request would be allowed (0 when allowed).
    retry_after: float

    @classmethod
    def from_tokens(
        cls, allowed: bool, tokens: float, rate: float, burst: float, cost: float
    ) -> RateDecision:
        """The decision for a bucket that now holds ``tokens``."""
        return cls(
            allowed=allowed,
            remaining=max(0, math.floor(tokens + 1e-9)),
            reset_after=max(0.0, (burst - tokens) / rate),
            retry_after=0.0 if allowed else max(0.0, (cost - tokens) / rate),
        )


@runtime_checkable
class RateLimitBackend(Protocol):
    """Where buckets live: one coroutine that takes tokens atomically."""

    async def take(self, key: str, rate: float, burst: float, cost: float = 1.0) -> RateDecision:
        """Take ``cost`` tokens from ``key``'s bucket if it has them."""
        ...


def refill(
    tokens: float, stamp: float, now: float, rate: float, burst: float, cost: float
) -> tuple[float, bool]:
    """Bring a bucket up to ``now`` and try to take ``cost``: ``(tokens left, allowed)``."""
    tokens = min(burst, tokens + max(0.0, now - stamp) * rate)
    if tokens >= cost:
        return tokens - cost, True
    return tokens, False


class MemoryBackend:
    """Buckets in this process, at most ``max_keys`` (least recently used dropped first)."""

    def __init__(self, max_keys: int = 10_000) -> None:
        if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
            raise ValueError(f"max_keys must be an int >= 1, got {max_keys!r}")
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.clock = time.monotonic

    async def take(self, key: str, rate: float, burst: float, cost: float = 1.0) -> RateDecision:
        now = self.clock()
        tokens, stamp = self._buckets.pop(key, (burst, now))
        tokens, allowed = refill(tokens, stamp, now, rate, burst, cost)
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return RateDecision.from_tokens(allowed, tokens, rate, burst, cost)

    def __len__(self) -> int:
        return len(self._buckets)


# KEYS[1] bucket; ARGV rate, burst, cost. Returns {allowed (0/1), tokens as text}.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local stamp = tonumber(state[2])
if tokens == nil or stamp == nil then
  tokens = burst
  stamp = now
end
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local allowed = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts',
           string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, string.format('%.17g', tokens)}
"""


class RedisBackend:
    """Buckets in Redis under ``prefix + key``, shared by every process using that Redis.

    ``RedisBackend("redis://localhost:6379/0")`` or ``RedisBackend(client=...)``.
    Needs the ``redis`` extra and asyncio (the redis client does not run on trio).
    """

    def __init__(
        self, url: str | None = None, *, client: Any = None, prefix: str = "pagi:ratelimit:"
    ) -> None:
        self.redis = LazyRedis("RedisBackend", url, client)
        self.prefix = prefix
        self._script: Any = None
        self._script_client: Any = None

    async def take(self, key: str, rate: float, burst: float, cost: float = 1.0) -> RateDecision:
        client = self.redis.get()
        if self._script is None or self._script_client is not client:
            self._script = client.register_script(_TAKE)
            self._script_client = client
        allowed, tokens = await self._script(keys=[self.prefix + key], args=[rate, burst, cost])
        left = float(tokens.decode() if isinstance(tokens, bytes) else tokens)
        return RateDecision.from_tokens(bool(int(allowed)), left, rate, burst, cost)

    async def aclose(self) -> None:
        """Close the Redis connection pool this backend opened."""
        await self.redis.aclose()
