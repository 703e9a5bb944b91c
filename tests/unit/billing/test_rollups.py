"""Rollups: every event lands in exactly one hour, one day and one month's invoice, at UTC midnight,
month ends and leap days alike; re-rolling changes nothing; groups merge their sketches."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenantgate.billing.invoices import MonthUsage, parse_month
from tenantgate.billing.reports import grouped, margins, report_row
from tenantgate.billing.rollups import SLICE, RollupJob, roll_events
from tenantgate.domain import Usage
from tenantgate.settings import PlanConfig
from tenantgate.storage.memory import MemoryStore
from tests.integration.test_store_suite import event

BOUNDARIES = [datetime(2028, 2, 29, tzinfo=UTC), datetime(2028, 3, 1, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC),
              datetime(2027, 1, 1, tzinfo=UTC), datetime(2026, 11, 30, 23, tzinfo=UTC)]  # fmt: skip
moments = st.builds(
    lambda base, offset: base + timedelta(microseconds=offset),
    st.sampled_from(BOUNDARIES),
    st.integers(min_value=-3 * 3_600_000_000, max_value=3 * 3_600_000_000),
)


def month_of(moment: datetime) -> str:
    return moment.strftime("%Y-%m")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(moments, st.integers(0, 500), st.integers(0, 500)), min_size=1, max_size=30))
def test_every_event_counts_once_in_its_hour_day_and_month(spec: list[tuple[datetime, int, int]]) -> None:
    async def check() -> None:
        store = MemoryStore()
        events = [replace(event(f"r{i}", "t1", "m", p, c), created_at=at) for i, (at, p, c) in enumerate(spec)]
        job = RollupJob(store, lambda _: 0, {})
        first, last = min(at for at, _, _ in spec), max(at for at, _, _ in spec)
        half = len(events) // 2
        await store.insert_usage(events[:half])
        assert await job.roll_pending() == half
        await store.insert_usage(events[half:])  # the rest arrive later, some of them in hours rolled already
        assert await job.roll_pending() == len(events) - half
        assert await job.roll_pending() == 0  # nothing is counted twice
        incremental = await store.list_rollups("day", first - timedelta(days=1), last + timedelta(days=1))
        await job.rebuild(first, last + timedelta(hours=1))  # recomputing from raw events agrees
        rebuilt = await store.list_rollups("day", first - timedelta(days=1), last + timedelta(days=1))
        assert {r.key: (r.requests, r.prompt_tokens) for r in incremental} == {
            r.key: (r.requests, r.prompt_tokens) for r in rebuilt
        }
        for month in {month_of(at) for at, _, _ in spec}:
            start, end = parse_month(month)
            usage = MonthUsage.of(await store.list_rollups("day", start, end, "t1"))
            expected = [(p, c) for at, p, c in spec if month_of(at) == month]
            assert usage.tokens == sum(p + c for p, c in expected)
            assert usage.requests == len(expected)
        hours = await store.list_rollups("hour", first - timedelta(hours=1), last + timedelta(hours=2))
        assert sum(r.requests for r in hours) == len(spec)
        for row in hours:
            inside = [at for at, _, _ in spec if row.key.bucket <= at < row.key.bucket + timedelta(hours=1)]
            assert row.requests == len(inside)

    asyncio.run(check())


def test_a_busy_round_writes_each_row_once_not_once_per_slice() -> None:
    """4,500 events of 3 keys in one hour: one transaction adds them (a stored row costs the same for
    one event as for thousands), with every event counted and its GPU cost and latencies in."""

    async def check() -> None:
        store = MemoryStore()
        at = datetime(2026, 11, 5, 10, 30, tzinfo=UTC)
        events = [
            replace(event(f"r{i}", "t1", "m", 2, 1), created_at=at, key_id=f"k{i % 3}", gpu_seconds=0.5,
                    latency_ms=float(i % 100), deployment="d")
            for i in range(4500)
        ]  # fmt: skip
        await store.insert_usage(events)
        merges = []
        merge = store.merge_rollups

        async def counted(rows, rolled):  # type: ignore[no-untyped-def]
            merges.append(len(rows))
            return await merge(rows, rolled)

        store.merge_rollups = counted  # type: ignore[method-assign]
        assert await RollupJob(store, lambda _: 3_600_000, {}).roll_pending() == 4500
        assert merges == [3 + 3 + 3]  # 3 keys' hour, day and month rows, once
        hours = await store.list_rollups("hour", at - timedelta(hours=1), at + timedelta(hours=1))
        assert sorted((r.key.key_id, r.requests, r.prompt_tokens, r.gpu_cost_micros) for r in hours) == [
            (f"k{k}", 1500, 3000, 750_000) for k in range(3)
        ]
        assert all(r.latency_ms.count == 1500 for r in hours)

    asyncio.run(check())


def test_a_round_lets_requests_run_between_its_pages() -> None:
    """A round of thousands held the event loop while it read them all (a stall of a quarter second
    at 9,000 events here): each page of events is read and summed in a turn of its own."""

    async def check() -> None:
        store = MemoryStore()
        at = datetime(2026, 11, 5, 10, 30, tzinfo=UTC)
        await store.insert_usage(
            [replace(event(f"r{i}", "t1", "m", 2, 1), created_at=at) for i in range(2 * SLICE + 1)]
        )
        turns = 0
        seen: list[int] = []  # the other task's turns so far, as each page arrives
        pages = store.unrolled_usage

        async def watched(limit, page):  # type: ignore[no-untyped-def]
            async for events in pages(limit, page):
                seen.append(turns)
                yield events

        async def other_task() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        store.unrolled_usage = watched  # type: ignore[method-assign]
        ticking = asyncio.create_task(other_task())
        await asyncio.sleep(0)
        assert await RollupJob(store, lambda _: 0, {}).roll_pending() == 2 * SLICE + 1
        ticking.cancel()
        assert len(seen) == 3 and seen[0] < seen[1] < seen[2]

    asyncio.run(check())


def test_grouping_merges_rows_and_their_percentiles() -> None:
    base = datetime(2026, 11, 5, 10, tzinfo=UTC)
    events = [
        replace(event(f"m{i}", "t1", "m", 10, 5), created_at=base, latency_ms=float(i), key_id=f"k{i % 2}")
        for i in range(1, 101)
    ]  # latencies 1..100 ms over two keys
    events.append(replace(event("bad", "t1", "m", 0, 0, status=502), created_at=base, key_id="k1"))
    events.append(replace(event("cut", "t1", "n", 1, 1), created_at=base, usage=Usage(1, 1, estimated=True)))
    for i, reason in enumerate(("concurrency_limit_exceeded", "concurrency_limit_exceeded", "queue_full")):
        refused = event(f"no{i}", "t1", "m", 0, 0, status=429)
        events.append(replace(refused, created_at=base, key_id="k1", error_type=reason, latency_ms=9999.0))
    rows = roll_events(events, lambda _: 0, {})
    assert len(rows) == 3  # one per key and model
    by_model = {r.key.model: report_row(r, ("model",)) for r in grouped(rows, ("model",))}
    assert by_model["m"]["requests"] == 101 and by_model["m"]["errors"] == 1
    assert by_model["m"]["errors_by_type"] == {"upstream_error": 1}
    # refused attempts are counted apart: not requests, not errors, not in the latency percentiles
    assert by_model["m"]["rejected"] == 3
    assert by_model["m"]["rejected_by_reason"] == {"concurrency_limit_exceeded": 2, "queue_full": 1}
    assert 94 <= by_model["m"]["latency_ms_p95"] <= 97  # type: ignore[operator]  # 1 % relative accuracy
    assert 49 <= by_model["m"]["latency_ms_p50"] <= 52  # type: ignore[operator]
    assert by_model["n"]["estimated_requests"] == 1
    [total] = grouped(rows, ())
    assert total.requests == 102 and total.prompt_tokens == 1001


def test_margins_flag_tenants_plans_and_pools_priced_below_cost() -> None:
    base = datetime(2026, 11, 5, tzinfo=UTC)
    cheap = replace(event("a", "t1", "m", 10, 5), created_at=base, gpu_seconds=3600.0, cost_micros=1_000_000)
    dear = replace(event("b", "t2", "m", 10, 5), created_at=base, gpu_seconds=60.0, cost_micros=5_000_000)
    rows = roll_events([cheap, dear], lambda _: 2_000_000, {"d": "gpu-pool"})  # $2 per GPU-hour
    plans = {"payg": PlanConfig(name="payg", display_name="PAYG")}
    report = margins(rows, {"t1": ("cheap", "payg"), "t2": ("dear", "payg")}, plans.get)
    tenants = {row["tenant"]: row for row in report["tenants"]}
    assert tenants["cheap"]["below_cost"] and tenants["cheap"]["margin_micros"] == 1_000_000 - 2_000_000
    assert not tenants["dear"]["below_cost"]
    assert report["pools"] == [{"pool": "gpu-pool", "revenue_micros": 6_000_000, "gpu_cost_micros": 2_033_333,
                                "margin_micros": 3_966_667, "margin_ratio": 0.6611, "below_cost": False}]  # fmt: skip


def test_streams_count_toward_the_ttft_target_only_when_their_plan_has_one() -> None:
    met, missed, untimed = (replace(event(f"r{n}", "t1", "m", 1, 1), ttft_slo_met=flag, queue_wait_ms=wait)
                            for n, (flag, wait) in enumerate(((True, 4.0), (False, 8.0), (None, None))))  # fmt: skip
    [row] = roll_events([met, missed, untimed], lambda _: 0, {})
    assert (row.requests, row.slo_requests, row.slo_met) == (3, 2, 1)
    assert (row.totals().slo_requests, row.totals().slo_met) == (2, 1)
    assert (row.queue_waits, row.queue_wait_ms_sum) == (2, 12.0)  # a mean without the sketch: 6 ms
