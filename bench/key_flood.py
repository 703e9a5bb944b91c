"""A flood of made-up API keys against one gateway on PostgreSQL: what it costs a real client.

A real client sends sequential requests and its latencies are taken alone, then while another
process sends `--flood` requests with random key ids (each new) at `--concurrency`. Prints p50 and
p99 of both phases, the flood's rate, how many queries PostgreSQL ran for the gateway's keys
table in each phase (from pg_stat_user_tables), and the gateway's CPU per guess in a second flood
with no real client. `--source` runs an earlier checkout's src directory.
The flood comes from another loopback address (`--flood-from`, 127.0.0.2), as a guesser would come
from its own; it prints what it was answered.
Usage: python bench/key_flood.py [--source DIR] [--requests 2000] [--flood 10000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).parent))

from procs import cpu_seconds, free_port, sim_engine, stop, wait_http
from run import make_key, start_tenantgate

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
CHAT = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}

FLOOD = """
import asyncio, collections, json, secrets, sys, httpx
url, total, concurrency, source = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
body = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
seen = collections.Counter()
async def worker(http, n):
    for _ in range(n):
        guess = {"Authorization": f"Bearer tg-{secrets.token_hex(6)}-{secrets.token_urlsafe(32)}"}
        try:
            answer = await http.post(url + "/v1/chat/completions", json=body, headers=guess)
            seen[answer.status_code] += 1
        except httpx.HTTPError as exc:  # a guesser goes on whatever it is answered
            seen[type(exc).__name__] += 1
async def main():
    transport = httpx.AsyncHTTPTransport(local_address=source)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits, transport=transport) as http:
        await asyncio.gather(*(worker(http, total // concurrency) for _ in range(concurrency)))
    print(json.dumps(seen))
asyncio.run(main())
"""


async def key_scans(database: str) -> int:
    connection = await asyncpg.connect(f"{POSTGRES}/{database}")
    try:
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        row = await connection.fetchrow(
            "SELECT coalesce(idx_scan, 0) + coalesce(seq_scan, 0) AS n FROM pg_stat_user_tables"
            " WHERE relname = 'api_keys'"
        )
        return int(row["n"]) if row else 0
    finally:
        await connection.close()


async def admin_sql(sql: str) -> None:
    connection = await asyncpg.connect(f"{POSTGRES}/postgres")
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def latencies(url: str, key: str, count: int) -> list[float]:
    taken = []
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {key}"}) as client:
        for _ in range(count):
            started = time.perf_counter()
            status = client.post(url + "/v1/chat/completions", json=CHAT).status_code
            taken.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise SystemExit(f"the real client got {status}")
    return taken


def summary(taken: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(taken, n=100)
    return {"p50_ms": round(cuts[49], 3), "p99_ms": round(cuts[98], 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", default=str(Path(__file__).resolve().parent.parent / "src"))
    parser.add_argument("--requests", type=int, default=2000, help="the real client's, per phase")
    parser.add_argument("--flood", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--flood-from", default="127.0.0.2", help="the flood's source address")
    parser.add_argument(
        "--control", action="store_true", help="flood a simulated engine of its own instead: what the flood's "
        "own CPU costs the real client on this machine, with the gateway untouched by it",
    )  # fmt: skip
    options = parser.parse_args()
    database = f"tg_flood_{os.getpid()}"
    asyncio.run(admin_sql(f"CREATE DATABASE {database}"))
    workdir = Path(tempfile.mkdtemp(prefix="tg-flood-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    engine, upstream = sim_engine("--instant")
    processes = [engine]
    try:
        gateway, _ = start_tenantgate(
            port, upstream, workdir, database_url=f"{POSTGRES}/{database}", source=options.source
        )
        processes.append(gateway)
        wait_http(url + "/readyz")
        key = make_key(url)
        latencies(url, key, 200)  # warm
        scans = asyncio.run(key_scans(database))
        alone = latencies(url, key, options.requests)
        scans_alone = asyncio.run(key_scans(database)) - scans
        target = url
        if options.control:
            decoy, target = sim_engine("--instant")
            processes.append(decoy)
        flood_args = [target, str(options.flood), str(options.concurrency), options.flood_from]
        flood = subprocess.Popen([sys.executable, "-c", FLOOD, *flood_args], stdout=subprocess.PIPE, text=True)
        started = time.monotonic()
        during: list[float] = []
        while flood.poll() is None:
            during += latencies(url, key, 50)
        flood_s = time.monotonic() - started
        answered = json.loads(flood.communicate()[0] or "{}")
        cpu = cpu_seconds(gateway.pid)  # then the flood again, alone: the gateway's CPU per guess
        subprocess.run([sys.executable, "-c", FLOOD, *flood_args], stdout=subprocess.DEVNULL, check=True)
        cpu_flood = cpu_seconds(gateway.pid) - cpu
        scans_flood = asyncio.run(key_scans(database)) - scans - scans_alone
        result = {
            "source": options.source,
            "flooded": "a simulated engine of its own (control)" if options.control else "the gateway",
            "alone": {**summary(alone), "key_table_scans": scans_alone},
            "during_flood": {**summary(during), "requests": len(during), "key_table_scans": scans_flood},
            "flood_rps": round(options.flood / flood_s),
            "flood_answered": answered,
            "gateway_cpu_us_per_guess": round(cpu_flood / options.flood * 1e6),
        }
        print(json.dumps(result, indent=2))
    finally:
        for process in reversed(processes):
            stop(process)
        asyncio.run(admin_sql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))


if __name__ == "__main__":
    main()
