"""How long the usage rollup holds the event loop: what a request arriving meanwhile waits at worst.

Each round writes `--events` events (about what a gateway at 900 req/s records between two rollups,
10 s apart) and rolls them up, while a task that stands in for the requests asks for a turn of the
loop every millisecond and notes how late each turn came. Prints, per round, the wall time of the
rollup and its three latest turns. SQLite by default; `--database-url` names a PostgreSQL server
where this script may create and drop a scratch database.
Usage: python bench/rollup_stall.py [--events 9000] [--rounds 3] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from scratch_db import scratch_database
from usage_writer import events

from tenantgate.billing.rollups import RollupJob
from tenantgate.storage.migrate import ensure_schema
from tenantgate.storage.sql import SqlStore

SCRATCH = "tenantgate_rollup_stall"
TICK_S = 0.001


async def late_turns(lateness: list[float]) -> None:
    """A turn of the loop asked for every TICK_S; how much later than asked each one came."""
    while True:
        asked = time.perf_counter()
        await asyncio.sleep(TICK_S)
        lateness.append(time.perf_counter() - asked - TICK_S)


async def rounds(url: str, count: int, rounds: int) -> None:
    store = SqlStore.from_url(url)
    try:
        for number in range(1, rounds + 1):
            now = datetime.now(UTC)
            await store.insert_usage(
                [replace(e, created_at=now, key_id=f"k{i % 8}") for i, e in enumerate(events(count))]
            )
            lateness: list[float] = []
            watcher = asyncio.create_task(late_turns(lateness))
            started = time.perf_counter()
            rolled = await RollupJob(store, lambda deployment: 0, {}).roll_pending()
            wall_ms = (time.perf_counter() - started) * 1e3
            watcher.cancel()
            worst = ", ".join(f"{late * 1e3:.1f}" for late in sorted(lateness)[-3:])
            print(f"round {number}: {rolled} events rolled up in {wall_ms:.0f} ms; latest turns {worst} ms", flush=True)
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=9000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", help="a PostgreSQL server (default: a SQLite file)")
    options = parser.parse_args()
    if options.database_url is None:
        url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/rollup.db"
        ensure_schema(url)
        asyncio.run(rounds(url, options.events, options.rounds))
        return
    with scratch_database(options.database_url, SCRATCH) as url:
        asyncio.run(rounds(url, options.events, options.rounds))


if __name__ == "__main__":
    main()
