"""Period totals survive losing the counter store: rebuilt from recorded usage before they admit again."""

from __future__ import annotations

import secrets
from dataclasses import replace

import pytest
from redis.asyncio import Redis

from tenantgate.admission.counters import CounterStore, MemoryCounterStore
from tenantgate.admission.limits import checks_for
from tenantgate.admission.redis_counters import RedisCounterStore
from tenantgate.admission.service import Admission
from tenantgate.clock import utcnow
from tenantgate.dataplane.request import Endpoint, parse_request
from tenantgate.domain import Limits, Principal, Usage
from tenantgate.errors import RateLimited
from tenantgate.storage.memory import MemoryStore
from tests.integration.test_store_suite import event


async def lose_totals(counters: CounterStore, keys: list[str], redis_url: str | None) -> None:
    if isinstance(counters, MemoryCounterStore):
        counters.forget_totals()
        return
    assert redis_url is not None
    client = Redis.from_url(redis_url)
    await client.delete(*keys)
    await client.aclose()


async def test_a_lost_daily_quota_and_budget_continue_from_the_recorded_usage(
    counter_store: CounterStore, request: pytest.FixtureRequest
) -> None:
    counters = counter_store
    tenant = "t" + secrets.token_hex(6)
    limits = Limits(daily_tokens=1000, budget_micros=5000)
    principal = Principal(tenant, "t", "k" + tenant, None, "growth", None, None, tenant_limits=limits)
    usage = MemoryStore()
    admission = Admission(counters, lambda m, p, c: p + c, lease_ttl_s=30, output_estimate=10, output_cap=10,
                          recorded=usage)  # fmt: skip
    body = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}'
    chat = parse_request(Endpoint.CHAT, body)
    # 900 tokens and 4,000 micros recorded today, before the counters were lost
    await usage.insert_usage([replace(event("old", tenant, "m", 600, 300), created_at=utcnow(), cost_micros=4000)])
    view = checks_for(f"tenant:{tenant}", limits, 0, 0, utcnow(), 30)
    reservation = await admission.reserve(principal, chat, "r1")  # the first reservation of the day seeds
    assert reservation is not None
    await admission.settle(reservation, Usage(50, 10))
    assert await counters.peek(view) == (960, 4060)

    redis_url = request.getfixturevalue("redis_url") if isinstance(counters, RedisCounterStore) else None
    await lose_totals(counters, [c.counter for c in view], redis_url)
    assert await counters.peek(view) == (0, 0)  # lost
    await usage.insert_usage([replace(event("r1", tenant, "m", 50, 10), created_at=utcnow(), cost_micros=60)])
    second = await admission.reserve(principal, chat, "r2")
    assert second is not None
    await admission.settle(second, Usage(10, 10))
    assert await counters.peek(view) == (980, 4080)  # recorded 960 + this one's 20, not 20
    with pytest.raises(RateLimited):
        await admission.reserve(principal, replace(chat, body=b"x" * 400), "r3")  # ~110 tokens left: refused
