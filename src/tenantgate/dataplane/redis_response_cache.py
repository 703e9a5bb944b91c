"""The response cache in Redis, shared by every instance (the in-process one and what both keep are
in response_cache.py)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.exceptions import RedisError

from tenantgate.breaker import StoreBreaker
from tenantgate.dataplane.response_cache import tenant_prefix
from tenantgate.errors import StoreUnavailable
from tenantgate.redis_batches import RedisBatches

_ANSWER = b"tg:answer:"


class RedisResponseCache:
    """A Redis that fails is a miss: a breaker opens, requests stop asking it, and it is pinged in the
    background (at most once per `probe_s`) until it answers."""

    def __init__(self, redis: Redis, timeout_s: float = 0.5, probe_s: float = 1.0) -> None:
        self._redis = redis
        self._batches = RedisBatches(redis)  # a GET per request: concurrent ones share round trips
        self._timeout_s = timeout_s
        self._probe_s = probe_s
        self._breaker = StoreBreaker("the response cache (Redis)", "requests go to the engines")
        self._next_probe = 0.0
        self._probing: asyncio.Task[bool] | None = None

    @classmethod
    def from_url(cls, url: str, timeout_s: float = 0.5, probe_s: float = 1.0) -> RedisResponseCache:
        redis = Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        return cls(redis, timeout_s, probe_s)

    async def get(self, key: bytes) -> bytes | None:
        if self._skipped():
            return None
        try:
            found = await self._batches.command("GET", _ANSWER + key)
        except (RedisError, OSError) as exc:
            self._breaker.failed(exc)
            return None
        return found if isinstance(found, bytes) else None

    async def put(self, key: bytes, answer: bytes, ttl_s: float) -> None:
        if self._skipped():
            return
        try:
            await self._batches.command("SET", _ANSWER + key, answer, "PX", max(1, int(ttl_s * 1000)))
        except (RedisError, OSError) as exc:
            self._breaker.failed(exc)

    def _skipped(self) -> bool:
        """True while the breaker is open; then, now and again, a ping that nobody waits for."""
        if not self._breaker.open:
            return False
        now = time.monotonic()
        if now >= self._next_probe and (self._probing is None or self._probing.done()):
            self._next_probe = now + self._probe_s
            self._probing = asyncio.get_running_loop().create_task(
                self._breaker.probe(self._redis.ping, self._timeout_s)
            )
        return True

    async def purge(self, tenant_id: str) -> int:
        """Unlike get and put, a failure here is the caller's error: the answers may still be kept."""
        pattern = _ANSWER + re.sub(rb"([*?\[\]\\])", rb"\\\1", tenant_prefix(tenant_id)) + b"*"
        forgotten = 0
        try:
            async for batch in _batches(self._redis.scan_iter(match=pattern, count=500), 500):
                forgotten += int(await self._redis.unlink(*batch))
        except (RedisError, OSError):
            left = "the rest may still be kept; purge again once Redis answers"
            raise StoreUnavailable(
                f"The response cache in Redis cannot be reached; {forgotten} answers were purged, {left}."
            ) from None
        return forgotten

    async def close(self) -> None:
        if self._probing is not None:
            self._probing.cancel()
        await self._redis.aclose()


async def _batches(keys: AsyncIterator[bytes], size: int) -> AsyncIterator[list[bytes]]:
    batch: list[bytes] = []
    async for key in keys:
        batch.append(key)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
