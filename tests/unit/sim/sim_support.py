"""Helpers for the simulated engine's server tests: an in-process server and SSE parsing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tenantgate.sim.config import SimConfig
from tenantgate.sim.server import SIM_SERVER, SimServer, create_sim_app

FAST = SimConfig(speed=200.0)
HELLO = [{"role": "user", "content": "Count to five for me please"}]  # 6 words + 3 of framing = 9 tokens


@asynccontextmanager
async def serve(config: SimConfig = FAST) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    client = TestClient(TestServer(create_sim_app(config), handler_cancellation=True))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


def sim_of(client: TestClient[web.Request, web.Application]) -> SimServer:
    return client.app[SIM_SERVER]


def events(body: str) -> list[Any]:
    """Every SSE `data:` payload in order; the end marker stays the string "[DONE]"."""
    out: list[Any] = []
    for block in body.split("\n\n"):
        if block:
            assert block.startswith("data: "), block
            data = block.removeprefix("data: ")
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Poll the server's state until it holds (the state changes on the server's own schedule)."""
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)
