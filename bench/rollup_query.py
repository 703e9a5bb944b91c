"""A dashboard's month of usage from the rollups, with 1,000 tenants' month in the table.

Fills a scratch PostgreSQL database with daily rollups (1,000 tenants x 30 days x 6 key/model
combinations, each with three latency sketches) and times what a tenant's dashboard asks: its month
by model and by day, percentiles included. Usage: python bench/rollup_query.py [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
from sqlalchemy.ext.asyncio import create_async_engine

from tenantgate.billing.records import Rollup, RollupKey
from tenantgate.billing.reports import grouped, report_row
from tenantgate.storage.migrate import upgrade
from tenantgate.storage.sql import SqlStore
from tenantgate.storage.sql_billing import rollup_values
from tenantgate.storage.tables import usage_rollups

MONTH = datetime(2026, 11, 1, tzinfo=UTC)


def rows_for(tenant: int) -> list[Rollup]:
    rows = []
    for day in range(30):
        for key in range(3):
            for model in ("small", "large"):
                key_of = RollupKey(MONTH + timedelta(days=day), f"t{tenant:04d}", f"k{key}", "", "chat/completions",
                                   model, "d1", "main")  # fmt: skip
                row = Rollup(key_of, requests=100, prompt_tokens=10_000, completion_tokens=5_000, charged_micros=900)
                for ms in range(1, 101):
                    row.latency_ms.add(ms * 7.0)
                    row.ttft_ms.add(ms * 1.5)
                    row.queue_wait_ms.add(ms * 0.2)
                rows.append(row)
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--tenants", type=int, default=1000)
    args = parser.parse_args()
    scratch = "tg_bench_" + secrets.token_hex(4)
    admin = await asyncpg.connect(args.database_url)
    await admin.execute(f'CREATE DATABASE "{scratch}"')
    try:
        url = args.database_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + scratch
        await asyncio.to_thread(upgrade, url)
        store = SqlStore.from_url(url)
        engine = create_async_engine(url)
        started = time.perf_counter()
        template = rows_for(0)
        async with engine.begin() as conn:
            for tenant in range(args.tenants):
                rows = [replace(r, key=replace(r.key, tenant_id=f"t{tenant:04d}")) for r in template]
                await conn.execute(usage_rollups.insert(), [rollup_values("day", r) for r in rows])
        await engine.dispose()
        filled = time.perf_counter() - started
        timings = []
        for tenant in range(0, args.tenants, max(1, args.tenants // 20)):
            begin = time.perf_counter()
            rows = await store.list_rollups("day", MONTH, MONTH + timedelta(days=30), f"t{tenant:04d}")
            by_model = [report_row(r, ("model",)) for r in grouped(rows, ("model",))]
            by_day = [report_row(r, ("day",)) for r in grouped(rows, ("day",))]
            timings.append((time.perf_counter() - begin) * 1000)
            assert len(rows) == 180 and len(by_model) == 2 and len(by_day) == 30
        print(f"filled {args.tenants * 180:,} daily rollup rows in {filled:.0f} s")
        print(f"a tenant's month by model and by day, with percentiles: median {statistics.median(timings):.1f} ms, "
              f"max {max(timings):.1f} ms over {len(timings)} tenants")  # fmt: skip
        await store.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
