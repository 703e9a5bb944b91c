"""A request waiting on behalf of its client stops when the client leaves: told by the server's
watch (serving.py), or, under another server, by a task waiting on `receive`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest

from tenantgate.dataplane.client_watch import CLIENT_WATCH, ClientWatch
from tenantgate.dataplane.pipeline import unless_client_leaves
from tenantgate.dataplane.relay import RelayHooks, StreamRelay
from tenantgate.domain import CLIENT_CLOSED, Usage
from tenantgate.errors import ClientGone
from tenantgate.providers.openai_usage import SseUsageSniffer


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


class HangingStream:
    """An engine's stream that sends one event and then nothing more."""

    status = 200
    content_type = "text/event-stream"

    def __init__(self) -> None:
        self.closed = False

    async def read(self) -> bytes:
        raise AssertionError("a stream is relayed, not read whole")

    async def first_bytes(self) -> None:
        return None

    async def chunks(self) -> AsyncIterator[bytes]:
        yield b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'
        await asyncio.Event().wait()

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("told_by", ["watch", "receive"])
async def test_a_stream_whose_client_leaves_stops_and_is_charged_for_what_it_delivered(told_by: str) -> None:
    upstream, watch, disconnect = HangingStream(), ClientWatch(), asyncio.Event()
    outcomes: list[tuple[int, str | None, Usage | None]] = []
    hooks = RelayHooks(lambda: None, lambda status, error, usage: outcomes.append((status, error, usage)))
    relay = StreamRelay(upstream, SseUsageSniffer(strip_usage_chunk=True), [], hooks, prompt_estimate=3)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"extensions": {CLIENT_WATCH: watch}} if told_by == "watch" else {}
    relaying = asyncio.create_task(relay(scope, receive_until(disconnect), send))
    while len(sent) < 2:  # the head and the first event are out; the engine says nothing more
        await asyncio.sleep(0)
    if told_by == "watch":
        watch.lost()
    else:
        disconnect.set()
    async with asyncio.timeout(5):
        await relaying
    assert outcomes == [(CLIENT_CLOSED, "client_disconnected", Usage(3, 1, estimated=True))]
    assert upstream.closed  # the engine's connection dropped: it stops generating
