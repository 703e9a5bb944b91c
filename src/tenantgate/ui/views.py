"""What each page shows, assembled from the stores and services the management API uses."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from tenantgate.admission.periods import day_start, month_label
from tenantgate.api.platform.pools import DeploymentState
from tenantgate.billing.invoices import MonthUsage, parse_month
from tenantgate.billing.prices import PriceBook
from tenantgate.billing.records import UsageTotals
from tenantgate.billing.reports import grouped, report_row, revenue_of
from tenantgate.billing.rollups import HOUR, hour_start
from tenantgate.clock import utcnow
from tenantgate.domain import Price, Tenant
from tenantgate.runtime import Gateway
from tenantgate.storage.base import BillingStore

Period = Literal["24h", "7d", "30d"]
PERIODS: dict[str, timedelta] = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
GROUPINGS = ("model", "key", "user")


@dataclass(frozen=True, slots=True)
class TenantRow:
    """One line of the operator's all-tenants table (this month so far)."""

    slug: str
    name: str
    plan: str
    status: str
    requests: int
    tokens: int
    errors: int
    rejected: int
    charged_micros: int
    revenue_micros: int
    margin_micros: int
    waiting: int  # its requests in the fair queues now
    quota_used: float | None  # percent of its plan's monthly tokens (None: the plan has no quota)
    slo_attainment: float | None  # percent of its streams whose first token met the plan's target (None: none)
    queue_wait_ms: float | None  # its requests' mean wait in the fair queue (None: none waited)
    credit_micros: int  # unexpired prepaid credit left after its final invoices
    credit_used: float | None  # percent of that credit this month's bill so far would take (None: no credit)

    @property
    def error_rate(self) -> float:
        return 0.0 if not self.requests else 100.0 * self.errors / self.requests


class MonthTotals:
    """Every tenant's month so far, summed by the database from the month rollups and kept for one
    rollup interval: they change no more often than that, and an operator's console is read repeatedly."""

    def __init__(self, store: BillingStore, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._clock = clock
        self._kept: dict[str, tuple[float, dict[str, list[UsageTotals]]]] = {}

    async def of(self, month: str) -> dict[str, list[UsageTotals]]:
        """Tenant id -> its totals per model."""
        now = self._clock()
        kept = self._kept.get(month)
        if kept is not None and now - kept[0] < self._ttl_s:
            return kept[1]
        start, end = parse_month(month)
        by_tenant: dict[str, list[UsageTotals]] = {}
        for total in await self._store.tenant_totals("month", start, end):
            by_tenant.setdefault(total.tenant_id, []).append(total)
        self._kept = {month: (now, by_tenant)}  # one month at a time
        return by_tenant


async def all_tenants(gw: Gateway, totals: MonthTotals, month: str | None = None) -> tuple[str, list[TenantRow]]:
    """Every live tenant with its month so far (no percentiles: those are on each tenant's page)."""
    month = month or month_label(utcnow())
    tenants = [t for t in await gw.store.list_tenants() if t.status != "deleted"]
    by_tenant = await totals.of(month)
    plans = {p.name: p for p in gw.settings.catalog.plans}
    queues = [lane.dispatcher.queue for lane in gw.scheduler.lanes.values()]
    rows = []
    for tenant in tenants:
        mine = by_tenant.get(tenant.id, [])
        usage = MonthUsage.of_totals(mine)
        plan = plans.get(tenant.plan)
        revenue = revenue_of(plan, usage)
        quota = None if plan is None or not plan.monthly_tokens else 100.0 * usage.tokens / plan.monthly_tokens
        slo_requests = sum(t.slo_requests for t in mine)
        slo = 100.0 * sum(t.slo_met for t in mine) / slo_requests if slo_requests else None
        credit = gw.prepaid.balance(tenant.id)
        waits = sum(t.queue_waits for t in mine)
        rows.append(TenantRow(
            slug=tenant.slug, name=tenant.name, plan=tenant.plan, status=str(tenant.status), requests=usage.requests,
            tokens=usage.tokens, errors=usage.errors, rejected=sum(t.rejected for t in mine),
            charged_micros=sum(usage.charged_by_model.values()), revenue_micros=revenue,
            margin_micros=revenue - usage.gpu_cost_micros, waiting=sum(queue.queued(tenant.id) for queue in queues),
            quota_used=quota, slo_attainment=slo, credit_micros=credit,
            queue_wait_ms=sum(t.queue_wait_ms_sum for t in mine) / waits if waits else None,
            credit_used=min(100.0, 100.0 * revenue / credit) if credit > 0 else None,
        ))  # fmt: skip
    return month, rows


def top_chart(rows: list[TenantRow], field: str, title: str, limit: int = 10) -> dict[str, object]:
    """A horizontal bar chart of the `limit` largest tenants by `field` (plotly's figure format)."""
    top = sorted(rows, key=lambda r: getattr(r, field), reverse=True)[:limit]
    scale = 1_000_000 if field.endswith("micros") else 1
    return {
        "data": [{"type": "bar", "orientation": "h", "y": [r.slug for r in reversed(top)],
                  "x": [getattr(r, field) / scale for r in reversed(top)]}],
        "layout": {"height": 300, "margin": {"l": 120, "r": 20, "t": 10, "b": 30}},
        "caption": title,
    }  # fmt: skip


def errors_chart(counts: dict[tuple[datetime, str], int], days: int) -> dict[str, object]:
    """Failed requests per day by error type, every tenant together (stacked bars)."""
    kinds = sorted({kind for _, kind in counts})
    buckets = sorted({bucket for bucket, _ in counts})
    x = [bucket.date().isoformat() for bucket in buckets]
    return {
        "data": [{"type": "bar", "name": kind, "x": x, "y": [counts.get((b, kind), 0) for b in buckets]}
                 for kind in kinds],
        "layout": {"barmode": "stack", "height": 300, "margin": {"l": 50, "r": 20, "t": 10, "b": 40},
                   "legend": {"orientation": "h"}, "xaxis": {"type": "category"}},
        "caption": f"Errors by type, last {days} days",
    }  # fmt: skip


def utilisation_chart(pools: list[DeploymentState]) -> dict[str, object]:
    """Busy GPU time over capacity per deployment since start-up."""
    return {
        "data": [{"type": "bar", "x": [d.name for d in pools], "y": [round(d.utilisation * 100, 1) for d in pools]}],
        "layout": {"height": 300, "margin": {"l": 50, "r": 20, "t": 10, "b": 60}, "yaxis": {"range": [0, 100]}},
        "caption": "Utilisation by deployment since start-up (%)",
    }  # fmt: skip


def price_states(book: PriceBook, now: datetime) -> list[tuple[Price, str]]:
    """Each price version (by model, oldest first) with whether it is in force, scheduled or
    superseded at `now`; the book says which is in force."""
    shown = []
    for price in book.versions():
        if price.effective_from > now:
            shown.append((price, "scheduled"))
        else:
            shown.append((price, "in force" if book.at(price.model, now) == price else "superseded"))
    return shown


@dataclass(frozen=True, slots=True)
class UsageView:
    period: str
    group: str
    since: datetime
    until: datetime
    rows: list[dict[str, object]]
    total: dict[str, object]
    chart: dict[str, object]


async def tenant_usage(gw: Gateway, tenant: Tenant, period: str, group: str) -> UsageView:
    """The tenant's usage over `period`, as a table by `group` and a chart over time."""
    period = period if period in PERIODS else "7d"
    group = group if group in GROUPINGS else "model"
    until = utcnow()
    since = until - PERIODS[period]
    by_hour = period == "24h"
    if by_hour:
        lo, hi = hour_start(since), hour_start(until) + HOUR
    else:
        lo, hi = day_start(since), day_start(until) + timedelta(days=1)
    rows = await gw.store.list_rollups("hour" if by_hour else "day", lo, hi, tenant.id)
    table = [report_row(row, (group,)) for row in grouped(rows, (group,))]
    [total] = [report_row(row, ()) for row in grouped(rows, ())] or [{}]
    bucket = "hour" if by_hour else "day"
    series = [report_row(row, (bucket,)) for row in grouped(rows, (bucket,))]
    x = [str(point[bucket]) for point in series]
    chart: dict[str, object] = {
        "data": [
            {"type": "bar", "name": "tokens in", "x": x, "y": [point["prompt_tokens"] for point in series]},
            {"type": "bar", "name": "tokens out", "x": x, "y": [point["completion_tokens"] for point in series]},
            {"type": "scatter", "mode": "lines+markers", "name": "requests", "yaxis": "y2", "x": x,
             "y": [point["requests"] for point in series]},
        ],
        "layout": {"barmode": "stack", "height": 320, "margin": {"l": 60, "r": 60, "t": 20, "b": 40},
                   "yaxis": {"title": {"text": "tokens"}},
                   "yaxis2": {"title": {"text": "requests"}, "overlaying": "y", "side": "right"},
                   "legend": {"orientation": "h"}},
    }  # fmt: skip
    return UsageView(period, group, since, until, table, total, chart)


@dataclass(frozen=True, slots=True)
class PoolStatus:
    """What the public status page says of a pool: no deployment names, no tenants."""

    name: str
    state: str  # operational | degraded | down
    deployments: int
    healthy: int
    waiting: int
    wait_s: float | None  # when the last request waiting now should start


class PublicStatus:
    """The public status page's view of the pools, worked out at most once a second: anyone may ask
    for it, and each reading forecasts every queue."""

    def __init__(self, ttl_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._kept: tuple[float, list[PoolStatus]] | None = None

    def of(self, gw: Gateway) -> list[PoolStatus]:
        now = self._clock()
        if self._kept is None or now - self._kept[0] >= self._ttl_s:
            self._kept = (now, pool_status(gw))
        return self._kept[1]


def pool_status(gw: Gateway) -> list[PoolStatus]:
    now = gw.scheduler.clock()
    pools: dict[str, list[tuple[bool, int, float | None]]] = {}
    for lane in gw.scheduler.lanes.values():
        queue = lane.dispatcher.forecast(now).values() if len(lane.dispatcher.queue) else ()
        starts = [forecast.predicted_start_s for forecast in queue]
        known = [s for s in starts if s is not None]
        up = lane.deployment.accepts_work and lane.deployment.health.state != "circuit_open"
        pools.setdefault(lane.deployment.pool, []).append((up, len(starts), max(known, default=None)))
    shown = []
    for name, lanes in sorted(pools.items()):
        healthy = sum(up for up, _, _ in lanes)
        waits = [w for _, _, w in lanes if w is not None]
        state = "operational" if healthy == len(lanes) else "down" if healthy == 0 else "degraded"
        waiting = sum(n for _, n, _ in lanes)
        shown.append(PoolStatus(name, state, len(lanes), healthy, waiting, max(waits, default=None)))
    return shown
