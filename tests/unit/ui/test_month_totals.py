"""The console's month totals are read again once a rollup interval has passed, not before."""

from __future__ import annotations

from datetime import UTC, datetime

from tenantgate.billing.records import Rollup, RollupKey
from tenantgate.storage.memory import MemoryStore
from tenantgate.ui.views import MonthTotals
from tests.unit.manual_clock import ManualClock

MONTH = datetime(2026, 11, 1, tzinfo=UTC)


def month_of(requests: int) -> Rollup:
    return Rollup(RollupKey(MONTH, "t-acme", "k1", "", "chat/completions", "small", "d", "p"), requests)


async def test_totals_are_kept_for_one_rollup_interval_then_read_again() -> None:
    store, clock = MemoryStore(), ManualClock(100.0)
    totals = MonthTotals(store, ttl_s=10, clock=clock)
    await store.replace_rollups("month", MONTH, MONTH.replace(month=12), [month_of(3)])
    assert [t.requests for t in (await totals.of("2026-11"))["t-acme"]] == [3]
    await store.replace_rollups("month", MONTH, MONTH.replace(month=12), [month_of(5)])
    clock.now = 109.9
    assert [t.requests for t in (await totals.of("2026-11"))["t-acme"]] == [3]
    clock.now = 110.0
    assert [t.requests for t in (await totals.of("2026-11"))["t-acme"]] == [5]
    assert await totals.of("2026-10") == {}  # another month is its own reading
