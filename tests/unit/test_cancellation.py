"""A cancel that arrives in the same turn as what was awaited finishes still stops the task: at
shutdown and when a client leaves the fair queue; and one that swallows it is cancelled again."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from tenantgate.metering.recorder import UsageRecorder
from tenantgate.runtime import stop_background
from tenantgate.storage.memory import MemoryStore
from tests.integration.test_store_suite import event
from tests.unit.scheduling.test_lanes import TERMS, run_now, scheduler


async def ended(task: asyncio.Task[None]) -> None:
    """Wait for the task, bounded: a task that swallowed its cancel would wait forever."""
    await asyncio.wait([task], timeout=5)
    assert task.done(), "the task swallowed its cancel and kept running"


async def test_the_usage_writer_stops_when_cancelled_as_a_batch_fills() -> None:
    writer = UsageRecorder(MemoryStore(), flush_s=60, batch_size=1, buffer_limit=10)
    task = asyncio.create_task(writer.run())
    await asyncio.sleep(0)  # it waits for a batch
    writer.record(event("r1", "t", "m", 1, 1))  # a full batch wakes it ...
    task.cancel()  # ... in the same turn as the shutdown's cancel
    await ended(task)
    assert task.cancelled()


async def test_a_request_leaving_the_queue_as_its_turn_comes_is_cancelled_and_frees_its_seat() -> None:
    s = scheduler("only")
    lane = s.lanes["only"]
    running = run_now(s, lane, "a")
    waiter = s.enqueue(lane, s.ticket("b", "b", 10, 10, TERMS), TERMS)
    assert waiter is not None
    task = asyncio.create_task(s.wait(waiter, deadline=60))
    await asyncio.sleep(0)  # it waits for its turn
    s.release(lane, running, output_tokens=10)  # its turn comes ...
    task.cancel()  # ... in the same turn as its client leaves
    await ended(task)
    assert task.cancelled()
    assert not lane.dispatcher.running and not lane.waiters  # the seat it was given came back


async def test_a_task_that_swallows_one_cancel_is_cancelled_again_and_ends() -> None:
    swallowed = asyncio.Event()

    async def swallows_once() -> None:  # as a library's wait that ends in the cancel's turn does
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.set()
        await asyncio.Event().wait()  # the loop around it goes on

    task = asyncio.create_task(swallows_once())
    await asyncio.sleep(0)
    await stop_background([task], within_s=5)
    assert swallowed.is_set() and task.cancelled()


async def test_a_task_that_ignores_every_cancel_is_left_behind_and_named(caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()

    async def obedient() -> None:
        await asyncio.Event().wait()

    tasks = [asyncio.create_task(stubborn(), name="stubborn"), asyncio.create_task(obedient(), name="obedient")]
    await asyncio.sleep(0)
    try:
        with caplog.at_level(logging.ERROR, "tenantgate.runtime"):
            await stop_background(tasks, within_s=0.2)
    finally:
        release.set()  # else it would hold the test's own loop at its close
    assert tasks[1].cancelled()
    [left_behind] = [r.getMessage() for r in caplog.records]
    assert "stubborn did not end within" in left_behind and "test_cancellation.py" in left_behind
    await ended(tasks[0])
