"""Migration 0017 gives existing rollup rows the sums of their error and refusal maps, and sums
existing day rows into month rows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.ext.asyncio import create_async_engine

from tenantgate.billing.records import UsageTotals
from tenantgate.storage.migrate import alembic_config, upgrade
from tenantgate.storage.sql import SqlStore

NOVEMBER, DECEMBER = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
ROW = {
    "granularity": "day", "bucket": datetime(2026, 11, 1, tzinfo=UTC), "tenant_id": "t1", "key_id": "k1",
    "user_id": "", "endpoint": "chat/completions", "model": "m", "deployment": "d", "pool": "p", "requests": 9,
    "errors": '{"upstream_error": 2, "timeout": 3}', "rejected": '{"rpm": 4}', "prompt_tokens": 1,
    "completion_tokens": 1, "cached_tokens": 0, "estimated": 0, "gpu_seconds": 0.0, "charged_micros": 0,
    "gpu_cost_micros": 0,
}  # fmt: skip


async def _run(url: str, statement: str, values: dict[str, object] | None = None) -> list[sa.Row[tuple[int, ...]]]:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(sa.text(statement), values or {})
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


@pytest.mark.parametrize("database", ["sqlite_url", "postgres_url"])
def test_existing_rollups_get_their_sums_and_their_month(database: str, request: pytest.FixtureRequest) -> None:
    url: str = request.getfixturevalue(database)
    command.downgrade(alembic_config(url), "0016")
    columns = ", ".join(ROW)
    as_json = "CAST(:{} AS JSON)" if database == "postgres_url" else ":{}"  # SQLite keeps JSON as text
    params = ", ".join(as_json.format(name) if name in ("errors", "rejected") else f":{name}" for name in ROW)
    insert = f"INSERT INTO usage_rollups ({columns}) VALUES ({params})"
    for day in (1, 30):
        asyncio.run(_run(url, insert, ROW | {"bucket": datetime(2026, 11, day, tzinfo=UTC)}))
    asyncio.run(_run(url, insert, ROW | {"bucket": datetime(2026, 12, 1, tzinfo=UTC), "errors": "{}"}))
    upgrade(url)
    counts = asyncio.run(_run(url, "SELECT granularity, requests, error_count, rejected_count, slo_requests, slo_met "
                                   "FROM usage_rollups ORDER BY granularity, bucket"))  # fmt: skip
    assert [tuple(row) for row in counts] == [
        ("day", 9, 5, 4, 0, 0), ("day", 9, 5, 4, 0, 0), ("day", 9, 0, 4, 0, 0),
        ("month", 18, 10, 8, 0, 0), ("month", 9, 0, 4, 0, 0),  # November's two days, then December's one
    ]  # fmt: skip

    # what the console reads: the month found by its range, as rows the rollup job writes are
    async def november() -> list[UsageTotals]:
        store = SqlStore.from_url(url, row_security=False)
        try:
            return await store.tenant_totals("month", NOVEMBER, DECEMBER)
        finally:
            await store.close()

    assert [(t.requests, t.errors, t.rejected) for t in asyncio.run(november())] == [(18, 10, 8)]
