"""Soak: mixed load on one gateway for `--minutes`, watching for growth in memory, descriptors and tasks.

The load, from 8 concurrent clients at about `--rate` requests a second, in turn: whole and
streamed chat completions, embeddings, a stream the client abandons half-way, a wrong key (401),
a malformed body (400), and a tenant held at 30 requests a minute (429s). Every 30 s it samples
the gateway's RSS and open descriptors (from /proc) and its event loop's tasks
(`tenantgate_event_loop_tasks` on /metrics). Prints each sample and a summary: the first sample
after the warm-up, the last, the largest, and the least-squares slope per 10 minutes.
Usage: python bench/soak.py [--minutes 30] [--rate 200] [--database-url URL] [--trace-memory FILE]
       [--native-memory FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from procs import free_port, rss_mib, sim_engine, stop, wait_http
from run import ADMIN, make_key, start_tenantgate

CHAT = {"model": "sim-small", "messages": [{"role": "user", "content": "soak"}], "max_tokens": 16}
WARM_UP_S = 120
EVERY_S = 30


async def client(url: str, key: str, limited: str, stop_at: float, pace_s: float, counts: dict[int, int]) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    chat, stream = "/v1/chat/completions", {**CHAT, "stream": True}
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        turn = 0
        while time.monotonic() < stop_at:
            turn += 1
            kind = turn % 7
            if kind == 0:
                response = await http.post(chat, json=CHAT, headers=auth)
            elif kind == 1:
                async with http.stream("POST", chat, json=stream, headers=auth) as response:
                    async for _ in response.aiter_lines():
                        pass
            elif kind == 2:
                response = await http.post("/v1/embeddings", json={"model": "sim-small", "input": "soak"}, headers=auth)
            elif kind == 3:  # a client that goes away mid-stream
                async with http.stream("POST", chat, json=stream, headers=auth) as response:
                    await anext(response.aiter_lines(), None)
            elif kind == 4:
                response = await http.post(chat, json=CHAT, headers={"Authorization": "Bearer tg-0"})
            elif kind == 5:
                response = await http.post(chat, content=b"{not json", headers=auth)
            else:
                response = await http.post(chat, json=CHAT, headers={"Authorization": f"Bearer {limited}"})
            counts[response.status_code] = counts.get(response.status_code, 0) + 1
            await asyncio.sleep(pace_s)  # the load's pace, not a wait for anything


def sample(url: str, pid: int) -> dict[str, float]:
    text = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"}).text
    tasks = next(
        float(line.split()[-1]) for line in text.splitlines() if line.startswith("tenantgate_event_loop_tasks ")
    )
    return {"rss_mib": round(rss_mib(pid), 1), "fds": len(os.listdir(f"/proc/{pid}/fd")), "tasks": tasks}


def slope_per_10_min(times: list[float], values: list[float]) -> float:
    return round(statistics.linear_regression(times, values).slope * 600, 3)


async def soak(url: str, key: str, limited: str, pid: int, minutes: float, rate: float) -> None:
    started = time.monotonic()
    stop_at = started + minutes * 60
    counts: dict[int, int] = {}
    load = asyncio.gather(*(client(url, key, limited, stop_at, 8 / rate, counts) for _ in range(8)))
    samples: list[tuple[float, dict[str, float]]] = []
    while time.monotonic() < stop_at:
        await asyncio.sleep(EVERY_S)
        at = time.monotonic() - started
        taken = await asyncio.to_thread(sample, url, pid)
        samples.append((at, taken))
        print(json.dumps({"t_s": round(at), **taken, "responses": dict(sorted(counts.items()))}), flush=True)
    await load
    steady = [(t, s) for t, s in samples if t >= WARM_UP_S] or samples
    summary = {}
    for metric in ("rss_mib", "fds", "tasks"):
        values = [s[metric] for _, s in steady]
        summary[metric] = {
            "after_warm_up": values[0], "last": values[-1], "max": max(values),
            "slope_per_10_min": slope_per_10_min([t for t, _ in steady], values) if len(values) > 1 else 0.0,
        }  # fmt: skip
    print(json.dumps({"minutes": minutes, "responses": dict(sorted(counts.items())), "summary": summary}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=200, help="requests a second, about")
    parser.add_argument("--database-url", help="the gateway's database (default: SQLite in a temporary directory)")
    parser.add_argument(
        "--trace-memory", metavar="FILE", help="trace the gateway's Python allocations (bench/memtrace) and "
        "append the sites that grew most to FILE every 2 minutes; slows the gateway",
    )  # fmt: skip
    parser.add_argument(
        "--native-memory", metavar="FILE", help="append the gateway's C heap and SQLite's memory (per connection: "
        "page cache, schema, prepared statements) to FILE every 30 s (bench/memtrace/native_memory.py)",
    )  # fmt: skip
    options = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tg-soak-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    engine, upstream = sim_engine("--instant")
    processes = [engine]
    try:
        env = None
        if options.trace_memory or options.native_memory:
            tracer = Path(__file__).parent / "memtrace"
            source = Path(__file__).resolve().parent.parent / "src"
            env = {"PYTHONPATH": f"{tracer}:{source}"}
            for variable, file in (("TG_MEMTRACE", options.trace_memory), ("TG_NATIVE_MEMORY", options.native_memory)):
                if file:
                    env[variable] = str(Path(file).resolve())
        gateway, _ = start_tenantgate(port, upstream, workdir, database_url=options.database_url, env=env)
        processes.append(gateway)
        wait_http(url + "/readyz")
        key = make_key(url)
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"})
        admin.post("/admin/tenants", json={"slug": "limited", "plan": "bench"})
        limited = admin.post("/admin/tenants/limited/keys", json={"name": "l", "limits": {"rpm": 30}}).json()["key"]
        asyncio.run(soak(url, key, str(limited), gateway.pid, options.minutes, options.rate))
    finally:
        for process in reversed(processes):
            stop(process)


if __name__ == "__main__":
    main()
