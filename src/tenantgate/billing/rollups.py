"""Usage rollups: raw events summed per hour, per UTC day and per calendar month, the only thing
dashboards, invoices and exports read.

Dimensions: tenant, key, user, endpoint, model, deployment (and its pool). Measures: requests,
errors by type, tokens by kind, estimated requests, GPU-seconds, what the tenant is charged, the
GPU cost to the operator, and TTFT / queue-wait / latency sketches (DDSketch, 1 % relative
accuracy) that merge across hours, days and instances. Month rows keep the measures without the
sketches: they exist so the operator's console sums every tenant's month from a few rows each
(percentiles come from the day rows, one tenant at a time).

The job is incremental: every `every_s` it takes up to `ROUND` events not yet rolled up, sums them
into hour, day and month rows (in slices of `SLICE`, yielding to the event loop between them), and
adds those into the stored rows while marking the events rolled up, in one transaction. A stored
row costs the same to update for one event as for thousands, so the rounds are large: with a
thousand keys busy, rounds of 1,000 events cost more CPU than the requests themselves. An event
is counted once however many instances run the job (the marking decides; a round another instance
took first is dropped and retried), and an event that arrives late (a journal replayed after a
crash) lands in its own hour. `rebuild` recomputes a range from the raw events still kept, and
the months it touches from their days.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from contextlib import aclosing
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from tenantgate.admission.periods import day_start, month_start, next_month
from tenantgate.billing.records import Rollup, RollupKey
from tenantgate.domain import REFUSED_STATUS, UsageEvent
from tenantgate.storage.base import Store

log = logging.getLogger(__name__)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
SLICE = 250  # events read and summed in one turn of the event loop (about 8 ms of it on a slow machine)
ROUND = 20_000  # events added into the stored rows in one transaction (about 10 MB of them)
GpuPrice = Callable[[str], int]  # deployment name -> operator's micros per GPU-hour


def hour_start(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def gpu_cost_micros(gpu_seconds: float, micros_per_hour: int) -> int:
    return int((Decimal(repr(gpu_seconds)) * micros_per_hour / 3600).quantize(Decimal(1), ROUND_HALF_UP))


def roll_events(events: Iterable[UsageEvent], gpu_price: GpuPrice, pools: dict[str, str]) -> list[Rollup]:
    """Hour rows of the events, each in the hour it ended in."""
    rows: dict[RollupKey, Rollup] = {}
    for event in events:
        deployment = event.deployment or ""
        key = RollupKey(
            hour_start(event.created_at), event.tenant_id, event.key_id, event.user_id or "", event.endpoint,
            event.model, deployment, event.pool or pools.get(deployment, ""),
        )  # fmt: skip
        row = rows.get(key)
        if row is None:
            row = rows[key] = Rollup(key)
        usage = event.usage
        if event.status == REFUSED_STATUS:  # a limit or a full queue refused it: an attempt, not a request that failed
            reason = event.error_type or str(event.status)
            row.rejected[reason] = row.rejected.get(reason, 0) + 1
            continue
        row.requests += 1
        if event.status >= 400:
            kind = event.error_type or str(event.status)
            row.errors[kind] = row.errors.get(kind, 0) + 1
        row.prompt_tokens += usage.prompt_tokens
        row.completion_tokens += usage.completion_tokens
        row.cached_tokens += usage.cached_tokens
        row.estimated += usage.estimated
        row.gpu_seconds += event.gpu_seconds
        row.charged_micros += event.cost_micros
        if event.ttft_slo_met is not None:
            row.slo_requests += 1
            row.slo_met += event.ttft_slo_met
        if event.ttft_ms is not None:
            row.ttft_ms.add(event.ttft_ms)
        if event.queue_wait_ms is not None:
            row.queue_wait_ms.add(event.queue_wait_ms)
            row.queue_waits += 1
            row.queue_wait_ms_sum += event.queue_wait_ms
        row.latency_ms.add(event.latency_ms)
    for row in rows.values():
        row.gpu_cost_micros = gpu_cost_micros(row.gpu_seconds, gpu_price(row.key.deployment))
    return list(rows.values())


def roll_up(rows: Iterable[Rollup], bucket: Callable[[RollupKey], RollupKey]) -> list[Rollup]:
    """Merge rows whose keys map to the same coarser key (a day, or fewer dimensions)."""
    merged: dict[RollupKey, Rollup] = {}
    for row in rows:
        fold(merged, bucket(row.key), row)
    return list(merged.values())


def fold(totals: dict[RollupKey, Rollup], key: RollupKey, row: Rollup, sketches: bool = True) -> None:
    """Add `row` into the total of `key` (without its latency sketches: a month row keeps none)."""
    total = totals.get(key)
    if total is None:
        total = totals[key] = Rollup(key)
    total.merge(row, sketches)


class RollupJob:
    def __init__(self, store: Store, gpu_price: GpuPrice, pools: dict[str, str]) -> None:
        self._store = store
        self._gpu_price = gpu_price
        self._pools = pools
        self._lock = asyncio.Lock()  # one round at a time in this process

    async def roll_pending(self) -> int:
        """Add every event not yet rolled up into the hour and day rows; returns how many."""
        done = 0
        async with self._lock:
            while True:
                hours: dict[RollupKey, Rollup] = {}
                days: dict[RollupKey, Rollup] = {}
                months: dict[RollupKey, Rollup] = {}
                rolled: list[str] = []
                async with aclosing(self._store.unrolled_usage(ROUND, SLICE)) as pages:
                    async for events in pages:  # each page summed into the round's rows in a turn of its own
                        for row in roll_events(events, self._gpu_price, self._pools):
                            fold(hours, row.key, row)
                            fold(days, replace(row.key, bucket=day_start(row.key.bucket)), row)
                            fold(months, replace(row.key, bucket=month_start(row.key.bucket)), row, sketches=False)
                        rolled += [e.request_id for e in events]
                        await asyncio.sleep(0)  # let requests run between pages
                if not rolled:
                    break
                rows = [("hour", row) for row in hours.values()] + [("day", row) for row in days.values()]
                rows += [("month", row) for row in months.values()]
                if not await self._store.merge_rollups(rows, rolled):
                    break  # another instance took some of these first; the rest wait for the next round
                done += len(rolled)
                await asyncio.sleep(0)  # let requests run between rounds
        return done

    async def roll_hour(self, hour: datetime) -> int:
        """Recompute one hour from its raw events, then its day from its hours; returns the hour's rows."""
        hour = hour_start(hour)
        async with self._lock:
            events = await self._store.usage_between(hour, hour + HOUR)
            rows = roll_events(events, self._gpu_price, self._pools)
            await self._store.replace_rollups("hour", hour, hour + HOUR, rows)
            day = day_start(hour)
            hours = await self._store.list_rollups("hour", day, day + DAY)
            days = roll_up(hours, lambda key: replace(key, bucket=day))
            await self._store.replace_rollups("day", day, day + DAY, days)
        return len(rows)

    async def roll_month(self, month: datetime) -> None:
        """Recompute the month's rows from its day rows."""
        start, end = month_start(month), next_month(month)
        async with self._lock:
            days = await self._store.list_rollups("day", start, end, percentiles=False)
            months = roll_up(days, lambda key: replace(key, bucket=start))
            await self._store.replace_rollups("month", start, end, [row.counts_only() for row in months])

    async def rebuild(self, since: datetime, until: datetime) -> int:
        """Recompute every hour in the range from the raw events still kept, then the months they are
        in (a repair tool); returns how many hours."""
        hours = 0
        hour = hour_start(since)
        months = set()
        while hour < until:
            await self.roll_hour(hour)
            months.add(month_start(hour))
            hour += HOUR
            hours += 1
        for month in sorted(months):
            await self.roll_month(month)
        return hours

    async def run(self, every_s: float) -> None:
        while True:
            try:
                await self.roll_pending()
            except Exception:
                log.warning("usage rollup failed; retried in %.0f s", every_s, exc_info=True)
            await asyncio.sleep(every_s)
