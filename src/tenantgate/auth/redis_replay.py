"""Each end-user assertion is accepted once by every instance: the record kept in Redis (replay.py
says why)."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

from tenantgate.errors import StoreUnavailable
from tenantgate.redis_batches import RedisBatches


class RedisSeenOnce:
    """One SET NX per assertion, expiring when the assertion does; an unreachable Redis refuses (503)
    rather than let a replay through."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._batches = RedisBatches(redis)  # one per request: concurrent ones share round trips

    @classmethod
    def from_url(cls, url: str, timeout_s: float = 2.0) -> RedisSeenOnce:
        return cls(Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s))

    async def first_time(self, tenant_id: str, jti: str, until: float) -> bool:
        try:
            taken = await self._batches.command(
                "SET", f"tg:assertion:{tenant_id}:{jti}", b"1", "NX", "EXAT", int(until) + 1
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable("The assertion replay guard (Redis) is unreachable; retry shortly.") from exc
        return bool(taken)

    async def close(self) -> None:
        await self._redis.aclose()
