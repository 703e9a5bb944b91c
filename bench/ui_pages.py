"""Server time of the UI's pages with 1,000 tenants and a month of their usage.

Fills a scratch PostgreSQL database with 1,000 tenants and their daily rollups for a month (the rows
of `rollup_query.py`: 30 days x 6 key/model combinations each, with latency sketches, and the month
rows the rollup job keeps beside them), starts a gateway on it, logs in as an operator and times
each page as a browser would fetch it.
Usage: python bench/ui_pages.py [--database-url URL] [--tenants 1000] [--repeat 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
import httpx
import sqlalchemy as sa
from procs import TENANTGATE, free_port, spawn, stop, wait_http
from rollup_query import rows_for
from sqlalchemy.ext.asyncio import create_async_engine

from tenantgate.billing.rollups import roll_up
from tenantgate.domain import Tenant, TenantMode, TenantStatus
from tenantgate.storage.migrate import upgrade
from tenantgate.storage.sql import SqlStore
from tenantgate.storage.sql_billing import rollup_values
from tenantgate.storage.tables import usage_rollups

ADMIN = "bench-admin-token"
PASSWORD = "bench password 1234"


async def fill(url: str, tenants: int) -> None:
    await asyncio.to_thread(upgrade, url)
    store = SqlStore.from_url(url, row_security=False)
    now = datetime.now(UTC)
    for n in range(tenants):
        await store.create_tenant(Tenant(f"t{n:04d}", f"t{n:04d}", f"Tenant {n}", TenantMode.ENTERPRISE, "growth", None,
                                         TenantStatus.ACTIVE, None, now, now))  # fmt: skip
    await store.close()
    month = datetime(now.year, now.month, 1, tzinfo=UTC)
    template = [replace(r, key=replace(r.key, bucket=month + (r.key.bucket - r.key.bucket.replace(day=1))))
                for r in rows_for(0)]  # fmt: skip
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        for n in range(tenants):
            rows = [replace(r, key=replace(r.key, tenant_id=f"t{n:04d}")) for r in template]
            months = roll_up(rows, lambda key: replace(key, bucket=month))
            await conn.execute(usage_rollups.insert(), [rollup_values("day", r) for r in rows]
                               + [rollup_values("month", r.counts_only()) for r in months])  # fmt: skip
        await conn.execute(sa.text("ANALYZE"))  # as autovacuum would have by now: plans from real row counts
    await engine.dispose()


def timed(client: httpx.Client, path: str, repeat: int) -> tuple[float, float, float, int]:
    times = []
    size = 0
    for _ in range(repeat):
        begin = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - begin) * 1000)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        size = len(response.content)
    return times[0], statistics.median(times[1:]), max(times[1:]), size


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    scratch = "tg_bench_" + secrets.token_hex(4)
    admin = await asyncpg.connect(args.database_url)
    await admin.execute(f'CREATE DATABASE "{scratch}"')
    gateway = None
    try:
        base = args.database_url.rsplit("/", 1)[0]
        url = base.replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + scratch
        started = time.perf_counter()
        await fill(url, args.tenants)
        print(f"filled {args.tenants} tenants and {args.tenants * 180:,} daily rollup rows in "
              f"{time.perf_counter() - started:.0f} s")  # fmt: skip
        port = free_port()
        env = {**os.environ, "TENANTGATE_ADMIN_TOKEN": ADMIN, "TENANTGATE_DATA_DIR": tempfile.mkdtemp(),
               "TENANTGATE_ROW_SECURITY": "false"}  # fmt: skip
        gateway = spawn([*TENANTGATE, "serve", "--port", str(port), "--database-url", base + "/" + scratch], env)
        site = f"http://127.0.0.1:{port}"
        wait_http(site + "/readyz")
        with httpx.Client(base_url=site, timeout=120) as client:
            made = client.post(
                "/api/v1/operators",
                headers={"Authorization": f"Bearer {ADMIN}"},
                json={"email": "ops@bench.example", "role": "platform-viewer", "password": PASSWORD},
            )
            assert made.status_code == 201, made.text
            assert client.post("/api/v1/login", json={"email": "ops@bench.example", "password": PASSWORD}).is_success
            for label, path in (("operator console (all tenants)", "/ui/"), ("tenant dashboard", "/ui/tenants/t0500"),
                                ("tenant dashboard, 30 days by key", "/ui/tenants/t0500?period=30d&group=key"),
                                ("request log", "/ui/tenants/t0500/requests"), ("status", "/status")):  # fmt: skip
                first, median, worst, size = timed(client, path, args.repeat)
                print(f"{label:34s} first {first:6.1f} ms, then median {median:6.1f} ms, max {worst:6.1f} ms "
                      f"({size / 1024:.0f} KiB)")  # fmt: skip
    finally:
        if gateway is not None:
            stop(gateway)
        await admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
