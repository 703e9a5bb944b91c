"""What the instances of one installation share through Redis, when it is configured, and each
process's own stand-ins without it. Redis's client is imported only when it is configured: with the
OpenTelemetry and cryptography packages it loads, it is about 0.2 s of a start, and memory."""

from __future__ import annotations

from dataclasses import dataclass

from tenantgate.admission.counters import CounterStore, MemoryCounterStore
from tenantgate.auth.replay import MemorySeenOnce, SeenOnce
from tenantgate.dataplane.response_cache import MemoryResponseCache, ResponseCache
from tenantgate.scheduling.shared_counters import FairCounterSync
from tenantgate.settings import Settings


@dataclass(frozen=True, slots=True)
class Shared:
    counters: CounterStore  # every limit's counters
    fair_sync: FairCounterSync | None  # the fair queue's counters
    seen: SeenOnce  # end-user assertions, each accepted once
    answers: ResponseCache  # the response cache


def shared(settings: Settings) -> Shared:
    if not settings.redis_url:
        answers = MemoryResponseCache(settings.response_cache_entries, settings.response_cache_bytes)
        return Shared(MemoryCounterStore(), None, MemorySeenOnce(), answers)
    from redis.asyncio import Redis

    from tenantgate.admission.redis_counters import RedisCounterStore
    from tenantgate.auth.redis_replay import RedisSeenOnce
    from tenantgate.dataplane.redis_response_cache import RedisResponseCache

    url, timeout_s = settings.redis_url, settings.redis_timeout_s
    return Shared(
        RedisCounterStore.from_url(url, timeout_s),
        FairCounterSync(Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)),
        RedisSeenOnce.from_url(url),
        RedisResponseCache.from_url(url, timeout_s, settings.redis_probe_s),
    )
