"""Calls to a real Redis in batches: what waits, what goes together, what goes alone."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

from tenantgate.redis_batches import RedisBatches

ECHO = "return ARGV[1]"


def counting(batches: RedisBatches) -> list[int]:
    """The size of each pipeline `batches` sends (a call sent alone is not one)."""
    sizes: list[int] = []
    send = batches._pipeline

    async def counted(batch: list[Any]) -> list[Any]:
        sizes.append(len(batch))
        return await send(batch)

    batches._pipeline = counted  # type: ignore[method-assign]
    return sizes


async def test_a_deferred_call_goes_with_the_next_call_or_alone_after_its_wait(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        echo = redis.register_script(ECHO)
        await redis.script_load(ECHO)  # its first use would otherwise be sent twice (NOSCRIPT, then again)
        patient = RedisBatches(redis, defer_s=30)
        sizes = counting(patient)
        settled = asyncio.create_task(patient.script(echo, [], ["settled"], defer=True))
        await asyncio.sleep(0.05)
        assert not settled.done()  # it waits for company
        assert await patient.script(echo, [], ["reserved"]) == b"reserved"
        assert sizes == [2] and settled.done() and settled.result() == b"settled"  # one round trip for both
        assert await patient.script(echo, [], ["alone"]) == b"alone"
        assert sizes == [2]  # nothing deferred was waiting: it went alone, without a pipeline

        quick = RedisBatches(redis, defer_s=0.01)
        assert await asyncio.wait_for(quick.script(echo, [], ["in time"], defer=True), 5) == b"in time"
    finally:
        await redis.aclose()
