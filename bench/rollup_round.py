"""What a round of the usage rollup costs per event, step by step, on SQLite and on PostgreSQL.

Each round writes 20,000 events (the usage writer's insert), reads them back as the rollup job does,
sums them into hour rows, and merges the rows while marking the events rolled up (one transaction).
Wall time per event for each step, and this process's CPU time: on PostgreSQL the difference is the
server's work. Three rounds into one database, so later rounds run beside the earlier rounds' rows.
Usage: python bench/rollup_round.py [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
The PostgreSQL URL must name a server where this script may create and drop a scratch database.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).parent))

from scratch_db import scratch_database
from usage_writer import events

from tenantgate.billing.rollups import ROUND, SLICE, roll_events
from tenantgate.domain import UsageEvent
from tenantgate.storage.migrate import ensure_schema
from tenantgate.storage.sql import SqlStore

SCRATCH = "tenantgate_rollup_round"
T = TypeVar("T")


async def timed(step: str, count: int, work: Callable[[], Awaitable[T]]) -> T:
    wall, cpu = time.perf_counter(), time.process_time()
    result = await work()
    wall_us = (time.perf_counter() - wall) / count * 1e6
    cpu_us = (time.process_time() - cpu) / count * 1e6
    print(f"  {step:<34} {wall_us:7.1f} µs wall  {cpu_us:6.1f} µs CPU here", flush=True)
    return result


async def read_back(store: SqlStore) -> list[UsageEvent]:
    return [event async for events in store.unrolled_usage(ROUND, SLICE) for event in events]


async def rounds(url: str) -> None:
    store = SqlStore.from_url(url)
    try:
        for number in range(1, 4):
            print(f"round {number}: {ROUND} events", flush=True)
            now = datetime.now(UTC)
            batch = [replace(e, created_at=now, key_id=f"k{i % 8}") for i, e in enumerate(events(ROUND))]
            await timed("insert (the usage writer)", ROUND, partial(store.insert_usage, batch))
            read = await timed("read back (unrolled_usage)", ROUND, partial(read_back, store))
            started = time.perf_counter()
            rows = roll_events(read, lambda deployment: 0, {})
            print(f"  {'sum into hour rows':<34} {(time.perf_counter() - started) / ROUND * 1e6:7.1f} µs")
            ids = [e.request_id for e in read]
            hours = [("hour", row) for row in rows]
            merged = await timed("mark and merge (merge_rollups)", ROUND, partial(store.merge_rollups, hours, ids))
            assert merged, "another process rolled these events"
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", help="a PostgreSQL server (default: a SQLite file)")
    options = parser.parse_args()
    if options.database_url is None:
        url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/rollup.db"
        ensure_schema(url)
        asyncio.run(rounds(url))
        return
    with scratch_database(options.database_url, SCRATCH) as url:
        asyncio.run(rounds(url))


if __name__ == "__main__":
    main()
