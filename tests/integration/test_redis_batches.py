"""Calls to a real Redis in batches: what waits, what goes together, what goes alone."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

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


# A script that takes a list of operations: each answered with itself, or an error for "fail".
OPERATIONS = """
local answers = {}
for i, op in ipairs(cjson.decode(ARGV[1])) do
  if op == 'fail' then answers[i] = {err = 'failed on purpose'} else answers[i] = op end
end
return answers
"""


def counting_commands(redis: Redis) -> list[int]:
    """The number of commands in each pipeline `redis` sends."""
    sizes: list[int] = []
    make = redis.pipeline

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = make(*args, **kwargs)
        execute = pipe.execute

        async def counted(*args: Any, **kwargs: Any) -> Any:
            sizes.append(len(pipe.command_stack))
            return await execute(*args, **kwargs)

        pipe.execute = counted  # type: ignore[method-assign]
        return pipe

    redis.pipeline = pipeline  # type: ignore[method-assign]
    return sizes


async def test_a_batchs_operations_of_one_script_are_one_call_and_fail_alone(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        operations, echo = redis.register_script(OPERATIONS), redis.register_script(ECHO)
        for script in (OPERATIONS, ECHO):
            await redis.script_load(script)
        batches = RedisBatches(redis)
        commands = counting_commands(redis)
        first = asyncio.create_task(batches.operation(operations, b'"first"'))  # goes alone
        answers = await asyncio.gather(
            first,
            *(batches.operation(operations, orjson.dumps(f"op{i}")) for i in range(5)),
            batches.operation(operations, b'"fail"'),
            batches.script(echo, [], ["echoed"]),
            return_exceptions=True,
        )
        assert answers[:6] == [b"first", b"op0", b"op1", b"op2", b"op3", b"op4"]
        assert isinstance(answers[6], ResponseError) and "failed on purpose" in str(answers[6])
        assert answers[7] == b"echoed"
        assert commands == [2]  # the seven made meanwhile: the six operations as one call, and the echo
        with pytest.raises(ResponseError, match="failed on purpose"):
            await batches.operation(operations, b'"fail"')  # alone, the same
    finally:
        await redis.aclose()
