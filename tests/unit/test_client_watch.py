"""A request waiting on behalf of its client stops when the client leaves: told by the server's
watch (serving.py), or, under another server, by a task waiting on `receive`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from tenantgate.dataplane.client_watch import ClientWatch
from tenantgate.dataplane.pipeline import unless_client_leaves
from tenantgate.errors import ClientGone


class Waiting:
    """Work that waits until released, and says whether it was cancelled."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.cancelled = False

    async def __call__(self) -> str:
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return "answer"


async def bounded(task: Awaitable[str]) -> str:
    """The task's result; a wait that nothing stops fails here instead of hanging the test."""
    async with asyncio.timeout(5):
        return await task


def receive_until(disconnect: asyncio.Event) -> Any:
    async def receive() -> dict[str, str]:
        await disconnect.wait()
        return {"type": "http.disconnect"}

    return receive


async def test_the_servers_word_that_the_client_left_stops_the_wait() -> None:
    watch, work = ClientWatch(), Waiting()
    waiting = asyncio.create_task(unless_client_leaves(work(), receive_until(asyncio.Event()), watch))
    await asyncio.sleep(0)  # it waits
    watch.lost()
    with pytest.raises(ClientGone):
        await bounded(waiting)
    assert work.cancelled


async def test_without_a_watch_a_disconnect_on_receive_stops_the_wait() -> None:
    disconnect, work = asyncio.Event(), Waiting()
    waiting = asyncio.create_task(unless_client_leaves(work(), receive_until(disconnect)))
    await asyncio.sleep(0)
    disconnect.set()
    with pytest.raises(ClientGone):
        await bounded(waiting)
    assert work.cancelled


async def test_a_client_already_gone_stops_the_wait_at_its_first_step() -> None:
    watch, work = ClientWatch(), Waiting()
    watch.lost()
    with pytest.raises(ClientGone):
        await bounded(unless_client_leaves(work(), receive_until(asyncio.Event()), watch))
    assert work.cancelled


async def test_a_cancel_of_another_cause_stays_a_cancel() -> None:
    watch, work = ClientWatch(), Waiting()
    waiting = asyncio.create_task(unless_client_leaves(work(), receive_until(asyncio.Event()), watch))
    await asyncio.sleep(0)
    waiting.cancel()  # a shutdown, say
    with pytest.raises(asyncio.CancelledError):
        await bounded(waiting)


async def test_a_client_that_leaves_after_its_answer_cancels_nothing() -> None:
    watch, work = ClientWatch(), Waiting()
    work.release.set()
    assert await unless_client_leaves(work(), receive_until(asyncio.Event()), watch) == "answer"
    watch.lost()  # the request's task goes on to send the answer
    await asyncio.sleep(0)  # a cancel left behind would land here
    assert not work.cancelled
