"""The simulated engine's fault injection: failures, stalls and dropped streams, repeatable by seed."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tenantgate.sim.config import SimConfig
from tests.unit.sim.sim_support import HELLO, eventually, serve, sim_of


@pytest.mark.asyncio
async def test_injected_failure_is_an_openai_shaped_500() -> None:
    async with serve(SimConfig(instant=True, fail_rate=1.0)) as client:
        response = await client.post("/v1/chat/completions", json={"model": "sim-small", "messages": HELLO})
        error = (await response.json())["error"]
        embedding = await client.post("/v1/embeddings", json={"model": "sim-small", "input": "x"})
        stats = await (await client.get("/sim/stats")).json()
    assert (
        response.status == 500
        and error["type"] == "server_error"
        and set(error) == {"message", "type", "code", "param"}
    )
    assert embedding.status == 500
    assert stats["injected_failures"] == 2 and stats["running"] == 0 and stats["peak_running"] == 0


@pytest.mark.asyncio
async def test_faults_are_repeatable_for_a_seed() -> None:
    async def statuses(seed: int) -> list[int]:
        async with serve(SimConfig(instant=True, fail_rate=0.5, seed=seed)) as client:
            chat = {"model": "sim-small", "messages": HELLO, "max_tokens": 1}
            return [(await client.post("/v1/chat/completions", json=chat)).status for _ in range(24)]

    first = await statuses(7)
    assert first == await statuses(7)
    assert set(first) == {200, 500}
    assert first != await statuses(8)


@pytest.mark.asyncio
async def test_stall_delays_the_first_byte_and_counts_as_running() -> None:
    async with serve(SimConfig(instant=True, stall_rate=1.0, stall_s=0.3)) as client:
        started = time.monotonic()
        pending = asyncio.ensure_future(
            client.post("/v1/chat/completions", json={"model": "sim-small", "messages": HELLO, "stream": True})
        )

        async def stalled() -> bool:
            return sim_of(client).stats.running == 1

        await eventually(stalled)
        response = await pending
        first_chunk = await response.content.readuntil(b"\n\n")
        elapsed = time.monotonic() - started
        await response.read()
        stats = await (await client.get("/sim/stats")).json()
    assert first_chunk.startswith(b"data: ") and elapsed >= 0.3
    assert stats["stalls"] == 1 and stats["running"] == 0


@pytest.mark.parametrize("instant", [True, False])
@pytest.mark.asyncio
async def test_drop_cuts_the_stream_without_done(instant: bool) -> None:
    config = SimConfig(instant=instant, speed=200.0, drop_rate=1.0)
    async with serve(config) as client:
        chat = {"model": "sim-small", "messages": HELLO, "max_tokens": 50, "stream": True}
        response = await client.post("/v1/chat/completions", json=chat)
        received = b""
        with pytest.raises(aiohttp.ClientPayloadError):
            async for data in response.content.iter_any():
                received += data
        plain = await client.post("/v1/chat/completions", json={**chat, "stream": False})
        stats = await (await client.get("/sim/stats")).json()
    assert received.count(b"data: ") == 2 and b"[DONE]" not in received
    assert plain.status == 200  # only streams are cut
    assert stats["drops"] == 1 and stats["completion_tokens"] == 50
