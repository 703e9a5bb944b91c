"""How long the usage writer and the usage rollup hold the event loop: what a request arriving
meanwhile waits at worst.

Each round writes `--events` events in one batch (the usage writer's insert; 9,000 is about what a
gateway at 900 req/s records between two rollups, 10 s apart) and rolls them up, while a task that
stands in for the requests asks for a turn of the loop every millisecond and notes how late each
turn came. Prints, per round and step, its wall time, its three latest turns and its collections of
the oldest generation of garbage (what made the longest waits at thousands of keys). SQLite by default;
`--database-url` names a PostgreSQL server where this script may create and drop a scratch database.
Usage: python bench/usage_stalls.py [--events 9000] [--rounds 3] [--tenants 1] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).parent))

from scratch_db import scratch_database
from usage_writer import events

from tenantgate.billing.rollups import RollupJob
from tenantgate.metering.garbage import settle_collector
from tenantgate.storage.migrate import ensure_schema
from tenantgate.storage.sql import SqlStore

SCRATCH = "tenantgate_usage_stalls"
TICK_S = 0.001
T = TypeVar("T")


async def late_turns(lateness: list[float]) -> None:
    """A turn of the loop asked for every TICK_S; how much later than asked each one came."""
    while True:
        asked = time.perf_counter()
        await asyncio.sleep(TICK_S)
        lateness.append(time.perf_counter() - asked - TICK_S)


async def watched(step: str, work: Awaitable[T]) -> T:
    """`work`'s result, after printing its wall time and the latest turns of the loop meanwhile."""
    lateness: list[float] = []
    collections: list[float] = []  # how long each collection of the oldest generation took
    began = 0.0

    def timed(phase: str, info: dict[str, int]) -> None:
        nonlocal began
        if info["generation"] == 2:
            if phase == "start":
                began = time.perf_counter()
            else:
                collections.append(time.perf_counter() - began)

    gc.callbacks.append(timed)
    watcher = asyncio.create_task(late_turns(lateness))
    started = time.perf_counter()
    try:
        result = await work
    finally:
        gc.callbacks.remove(timed)
    wall_ms = (time.perf_counter() - started) * 1e3
    watcher.cancel()
    worst = ", ".join(f"{late * 1e3:.1f}" for late in sorted(lateness)[-3:])
    longest = max(collections, default=0.0) * 1e3
    print(f"  {step:<10} {wall_ms:5.0f} ms; latest turns {worst} ms; {len(collections)} full garbage "
          f"collections, the longest {longest:.1f} ms", flush=True)  # fmt: skip
    return result


async def rounds(url: str, count: int, rounds: int, tenants: int) -> None:
    store = SqlStore.from_url(url)
    settle_collector()  # as the gateway does once started
    try:
        for number in range(1, rounds + 1):
            print(f"round {number}: {count} events", flush=True)
            now = datetime.now(UTC)
            batch = [
                replace(e, created_at=now, tenant_id=f"t{i % tenants}", key_id=f"k{i % (8 * tenants)}")
                for i, e in enumerate(events(count))
            ]
            await watched("write", store.insert_usage(batch))
            rolled = await watched("roll up", RollupJob(store, lambda deployment: 0, {}).roll_pending())
            assert rolled == count, f"rolled up {rolled} of {count} events"
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=9000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tenants", type=int, default=1, help="the events spread over this many (8 keys each)")
    parser.add_argument("--database-url", help="a PostgreSQL server (default: a SQLite file)")
    options = parser.parse_args()
    if options.database_url is None:
        url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/rollup.db"
        ensure_schema(url)
        asyncio.run(rounds(url, options.events, options.rounds, options.tenants))
        return
    with scratch_database(options.database_url, SCRATCH) as url:
        asyncio.run(rounds(url, options.events, options.rounds, options.tenants))


if __name__ == "__main__":
    main()
