"""A noisy neighbour for the fair-queue tests: tenant A holds 100 long streams while tenant B
measures its time to first token."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from tenantgate.sim.engine_model import EngineConfig
from tests.e2e.procs import Gateway
from tests.e2e.scheduling_support import chat, until

SPEED = "10"  # an A request of 256 tokens takes about 1 s at 8 sequences
# A's first 8 streams arrive spread over one request's length, as real traffic does, so that its slots
# free up one at a time; with every stream started at once they would all end at once, in lockstep.
A_SPREAD_S = 256 * EngineConfig().decode_floor_s / float(SPEED) / 8
RETRY_AFTER_ERROR_S = 0.05  # A's client backs off a little after a failed request, as real clients do


@dataclass
class Flood:
    """Tenant A: many long streams at once; refused ones retry when one of A's streams ends."""

    gw: Gateway
    key: str
    model: str
    durations: list[float] = field(default_factory=list)
    refused: int = 0
    failed: int = 0
    ended: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def worker(self, client: httpx.AsyncClient) -> None:
        while True:
            async with client.stream(
                "POST", self.gw.url + "/v1/chat/completions", json=chat(self.model, 256, stream=True),
                headers={"Authorization": f"Bearer {self.key}"},
            ) as response:  # fmt: skip
                if response.status_code == 429:
                    self.refused += 1
                    await response.aread()
                    async with self.ended:
                        await self.ended.wait()
                    continue
                if response.status_code != 200:
                    self.failed += 1
                    await response.aread()
                    await asyncio.sleep(RETRY_AFTER_ERROR_S)
                    continue
                first = None
                try:
                    async for line in response.aiter_lines():
                        if first is None and line.startswith("data: "):
                            first = time.perf_counter()
                except httpx.HTTPError:
                    self.failed += 1
                    continue
                if first is not None:
                    self.durations.append(time.perf_counter() - first)
            async with self.ended:
                self.ended.notify(1)

    async def start(self, client: httpx.AsyncClient, streams: int = 100) -> list[asyncio.Task[None]]:
        workers = []
        for index in range(streams):
            workers.append(asyncio.create_task(self.worker(client)))
            if index < 8:
                await asyncio.sleep(A_SPREAD_S)  # the arrival process of the load, see A_SPREAD_S
        return workers


async def stop(workers: list[asyncio.Task[None]]) -> None:
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)


def flood_client() -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    return httpx.AsyncClient(timeout=300, limits=limits)


async def ttft(
    client: httpx.AsyncClient, gw: Gateway, key: str, model: str, prompt: str, queued: list[int | None] | None = None
) -> float:
    """Seconds to the first data line; `queued` gets the stream's first place in the gateway's queue
    (0: next), from the `: queue` comments a waiting stream hears before its data, or None if it did
    not wait."""
    started = time.perf_counter()
    async with client.stream(
        "POST", gw.url + "/v1/chat/completions", json=chat(model, 4, stream=True, prompt=prompt),
        headers={"Authorization": f"Bearer {key}"},
    ) as response:  # fmt: skip
        assert response.status_code == 200
        first, place = None, None
        async for line in response.aiter_lines():
            if place is None and first is None and line.startswith(": queue "):
                place = int(json.loads(line.removeprefix(": queue "))["position"])
            if first is None and line.startswith("data: "):
                first = time.perf_counter() - started
    assert first is not None
    if queued is not None:
        queued.append(place)
    return first


async def b_under_flood(
    gw: Gateway,
    a_key: str,
    b_key: str,
    model: str,
    backlog: Callable[[], bool],
    samples: int,
    prompt: str,
    queued: list[int | None] | None = None,
) -> tuple[list[float], Flood]:
    flood = Flood(gw, a_key, model)
    async with flood_client() as client:
        workers = await flood.start(client)
        try:
            await asyncio.to_thread(until, backlog, 30, "tenant A's backlog")
            waits = [await ttft(client, gw, b_key, model, prompt, queued) for _ in range(samples)]
        finally:
            await stop(workers)
    return waits, flood


async def idle(gw: Gateway, key: str, prompt: str, model: str = "sim-fair") -> list[float]:
    async with httpx.AsyncClient(timeout=60) as client:
        return [await ttft(client, gw, key, model, prompt) for _ in range(7)]


def p50(values: list[float]) -> float:
    return statistics.median(values)
