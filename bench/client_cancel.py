"""Does cancelling a request stop it upstream? The gateway relies on it: a client that leaves cancels the
task waiting on the engine, and only a dropped connection tells the engine to stop generating.

For each upstream client (aiohttp, rnet, pyreqwest), against a simulated engine at its normal speed: a
request for 5,000 tokens (about 4 s of generation), read whole; cancel the task after 0.5 s; ask the
engine 2 s later whether the request is still running. Run by bench/libraries.py with bench/.clients on
PYTHONPATH; alone: PYTHONPATH=bench/.clients python bench/client_cancel.py
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).parent))

from procs import TENANTGATE, free_port, spawn, stop, wait_http

BODY = b'{"model":"sim-small","messages":[{"role":"user","content":"hi"}],"max_tokens":5000}'
JSON = {"Content-Type": "application/json"}


def aiohttp_call(url: str) -> Callable[[], Awaitable[bytes]]:
    async def call() -> bytes:
        async with aiohttp.ClientSession() as session, session.post(url, data=BODY, headers=JSON) as response:
            return await response.read()

    return call


def rnet_call(url: str) -> Callable[[], Awaitable[bytes]]:
    import rnet

    client = rnet.Client()

    async def call() -> bytes:
        response = await client.post(url, body=BODY, headers=JSON)
        return bytes(await response.bytes())

    return call


def pyreqwest_call(url: str) -> Callable[[], Awaitable[bytes]]:
    from pyreqwest.client import ClientBuilder

    client = ClientBuilder().http1_only().read_timeout(timedelta(seconds=30)).build()

    async def call() -> bytes:
        response = await client.post(url).body_bytes(BODY).headers(JSON).build().send()
        return bytes(await response.bytes())

    return call


def pyreqwest_streamed_call(url: str) -> Callable[[], Awaitable[bytes]]:
    """The streamed form: the response is a context, left (closed) when the cancel comes through it."""
    from pyreqwest.client import ClientBuilder

    client = ClientBuilder().http1_only().read_timeout(timedelta(seconds=30)).build()

    async def call() -> bytes:
        async with client.post(url).body_bytes(BODY).headers(JSON).build_streamed() as response:
            return bytes(await response.bytes())

    return call


async def still_running(engine: str, call: Callable[[], Awaitable[bytes]]) -> int:
    task = asyncio.ensure_future(call())
    await asyncio.sleep(0.5)  # the engine is generating
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(2)  # time enough for a dropped connection to reach the engine
    running = httpx.get(engine + "/sim/stats").json()["running"]
    return int(running)


async def main() -> None:
    port = free_port()
    engine = f"http://127.0.0.1:{port}"
    process = spawn([*TENANTGATE, "sim-engine", "--port", str(port)])
    try:
        wait_http(engine + "/health")
        url = engine + "/v1/chat/completions"
        clients = {"aiohttp": aiohttp_call, "rnet": rnet_call, "pyreqwest": pyreqwest_call,
                   "pyreqwest, streamed": pyreqwest_streamed_call}  # fmt: skip
        for name, make in clients.items():
            running = await still_running(engine, make(url))
            verdict = "stopped" if running == 0 else "STILL RUNNING upstream"
            print(f"{name}: cancelled after 0.5 s; 2 s later the engine runs {running} request(s): {verdict}")
            while running:  # a request left running ends before the next client's turn
                await asyncio.sleep(0.5)
                running = httpx.get(engine + "/sim/stats").json()["running"]
    finally:
        stop(process)


if __name__ == "__main__":
    asyncio.run(main())
