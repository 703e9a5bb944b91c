"""The usage path off the request: journal cost per event (fast and strict) and the writer's rate into a database.

Usage: python bench/usage_writer.py [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
       [--events 100000]
The database URL must name a server where this script may create and drop a scratch database.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from tenantgate.domain import Usage, UsageEvent
from tenantgate.metering.journal import UsageJournal
from tenantgate.metering.recorder import UsageRecorder
from tenantgate.storage.migrate import upgrade
from tenantgate.storage.sql import SqlStore

EVENT = UsageEvent(
    request_id="", tenant_id="t" * 24, key_id="k" * 12, user_id=None, model="sim-small", deployment="sim-1",
    endpoint="chat/completions", status=200, error_type=None, usage=Usage(120, 64, 0), ttft_ms=12.5,
    latency_ms=80.1, created_at=datetime(2026, 11, 25, tzinfo=UTC), queue_wait_ms=0.0, pool="main",
    gpu_seconds=0.0123, cost_micros=431, price_version="sim-small@2026-11-01T00:00:00Z",
)  # fmt: skip


def events(count: int) -> list[UsageEvent]:
    prefix = secrets.token_hex(4)
    return [replace(EVENT, request_id=f"{prefix}{n:016x}") for n in range(count)]


async def journal_cost(strict: bool, count: int, concurrency: int) -> float:
    """Microseconds of event-loop time per event: append, plus the (group) commit in strict mode."""
    with tempfile.TemporaryDirectory() as directory:
        journal = UsageJournal(Path(directory), strict=strict)
        journal.open()
        batch = events(count)

        def n_since_write() -> int:
            return len(journal._pending)

        started = time.perf_counter()

        async def client(items: list[UsageEvent]) -> None:
            for item in items:
                journal.append(item)
                if strict or n_since_write() >= 1000:  # fast mode: the 0.1 s loop writes ~1,000 at a time
                    await journal.commit()

        await asyncio.gather(*(client(batch[i::concurrency]) for i in range(concurrency)))
        await journal.commit()
        elapsed = time.perf_counter() - started
        await journal.close()
    return elapsed / count * 1e6


async def writer_rate(url: str, count: int, batch: int) -> float:
    store = SqlStore.from_url(url)
    recorder = UsageRecorder(store, flush_s=3600, batch_size=batch, buffer_limit=count + 1)
    for event in events(count):
        recorder.record(event)
    started = time.perf_counter()
    await recorder.flush()
    elapsed = time.perf_counter() - started
    assert recorder.written == count
    await store.close()
    return count / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--writer-only", action="store_true")
    args = parser.parse_args()
    for strict, concurrency in ((False, 1), (True, 1), (True, 64)) if not args.writer_only else ():
        runs = [await journal_cost(strict, 20_000 if not strict else 2_000, concurrency) for _ in range(3)]
        mode = "strict" if strict else "fast"
        print(f"journal {mode:6} {concurrency:>2} writers: {statistics.median(runs):8.1f} us/event (median of 3)")
    scratch = "tg_bench_" + secrets.token_hex(4)
    admin = await asyncpg.connect(args.database_url)
    await admin.execute(f'CREATE DATABASE "{scratch}"')
    try:
        base = args.database_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        url = f"{base}/{scratch}"
        await asyncio.to_thread(upgrade, url)
        for batch in (500, 2000, 5000):
            rates = [await writer_rate(url, args.events, batch) for _ in range(3)]
            rate = statistics.median(rates)
            print(f"writer into PostgreSQL, batches of {batch}: {rate:,.0f} events/s (median of 3 x {args.events:,})")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
