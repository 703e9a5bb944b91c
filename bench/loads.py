"""Load generators: wrk for plain requests, an asyncio client for streams."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import aiohttp

LUA = Path(__file__).with_name("wrk_chat.lua")
MANY_KEYS_LUA = Path(__file__).with_name("wrk_many_keys.lua")


def wrk(
    url: str, key: str, connections: int, seconds: int, headers: dict[str, str] | None = None,
    keys: list[str] | None = None,
) -> dict[str, float]:  # fmt: skip
    """`headers`: sent instead of the key's Authorization (a peer's own); `keys`: each request with the
    next of them instead of `key`."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    threads = 1 if connections == 1 else 2
    script = MANY_KEYS_LUA if keys else LUA
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script)]
    env = {**os.environ, "BENCH_KEY": key, "BENCH_HEADERS": "\n".join(f"{k}: {v}" for k, v in (headers or {}).items())}
    env["BENCH_KEYS"] = " ".join(keys or [])
    out = subprocess.run([*command, url + "/v1/chat/completions"], capture_output=True, text=True, env=env).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "rps": rps,
        "p50_ms": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),  # type: ignore[union-attr]
        "p99_ms": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),  # type: ignore[union-attr]
        "errors": float(non_2xx.group(1)) if non_2xx else 0.0,
    }


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


async def _streams(
    url: str, headers: dict[str, str], concurrency: int, total: int, tokens: int
) -> tuple[float, int, int]:
    body = {
        "model": "sim-small",
        "messages": [{"role": "user", "content": "stream please"}],
        "max_tokens": tokens,
        "stream": True,
    }
    remaining = total
    chunks = 0
    failures = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal remaining, chunks, failures
        while remaining > 0:
            remaining -= 1
            async with session.post(url + "/v1/chat/completions", json=body, headers=headers) as response:
                if response.status != 200:
                    failures += 1
                async for line in response.content:
                    if line.startswith(b"data: {"):
                        chunks += 1

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return time.perf_counter() - started, chunks, failures


def streams(
    url: str, key: str, concurrency: int, total: int, tokens: int = 50, headers: dict[str, str] | None = None
) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {key}"} if headers is None else headers
    elapsed, chunks, failures = asyncio.run(_streams(url, headers, concurrency, total, tokens))
    return {"seconds": elapsed, "streams_per_s": total / elapsed, "chunks": chunks, "failures": failures}
