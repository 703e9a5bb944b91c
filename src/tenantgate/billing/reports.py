"""Usage reports and the operator's margin view, both from rollups (never from raw events)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

from tenantgate.admission.periods import day_start
from tenantgate.billing.invoices import MonthUsage, charge_lines
from tenantgate.billing.prices import EPOCH
from tenantgate.billing.records import Rollup, RollupKey
from tenantgate.billing.rollups import roll_up
from tenantgate.billing.sketches import quantile
from tenantgate.errors import InvalidRequest
from tenantgate.settings import PlanConfig

GROUPS = {"model": "model", "key": "key_id", "user": "user_id", "endpoint": "endpoint",
          "deployment": "deployment", "pool": "pool", "day": "bucket", "hour": "bucket"}  # fmt: skip


def parse_group_by(raw: str | None) -> tuple[str, ...]:
    names = tuple(n.strip() for n in (raw or "").split(",") if n.strip())
    unknown = [n for n in names if n not in GROUPS]
    if unknown or ("day" in names and "hour" in names):
        raise InvalidRequest(
            f"group_by takes a comma-separated list of {', '.join(GROUPS)} (day or hour, not both); got {raw!r}.",
            param="group_by",
        )
    return names


def grouped(rows: Iterable[Rollup], group_by: Sequence[str]) -> list[Rollup]:
    """Merge rows that agree on the grouped dimensions; the others are blanked."""
    keep = {GROUPS[name] for name in group_by}

    def key(k: RollupKey) -> RollupKey:
        def kept(name: str) -> str:
            return str(getattr(k, name)) if name in keep else ""

        bucket = (day_start(k.bucket) if "day" in group_by else k.bucket) if "bucket" in keep else EPOCH
        return RollupKey(bucket, kept("tenant_id") or k.tenant_id, kept("key_id"), kept("user_id"), kept("endpoint"),
                         kept("model"), kept("deployment"), kept("pool"))  # fmt: skip

    return sorted(roll_up(rows, key), key=lambda r: dataclasses.astuple(r.key)[:8])


def report_row(row: Rollup, group_by: Sequence[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for name in group_by:
        value = getattr(row.key, GROUPS[name])
        out[name] = value.isoformat().replace("+00:00", "Z") if name in ("day", "hour") else value
    out |= {
        "requests": row.requests, "errors": row.error_count, "errors_by_type": dict(sorted(row.errors.items())),
        "rejected": row.rejected_count, "rejected_by_reason": dict(sorted(row.rejected.items())),
        "prompt_tokens": row.prompt_tokens, "completion_tokens": row.completion_tokens,
        "cached_tokens": row.cached_tokens, "total_tokens": row.prompt_tokens + row.completion_tokens,
        "estimated_requests": row.estimated, "gpu_seconds": round(row.gpu_seconds, 6),
        "charged_micros": row.charged_micros,
        "ttft_ms_p50": quantile(row.ttft_ms, 0.5), "ttft_ms_p95": quantile(row.ttft_ms, 0.95),
        "queue_wait_ms_p95": quantile(row.queue_wait_ms, 0.95),
        "latency_ms_p50": quantile(row.latency_ms, 0.5), "latency_ms_p95": quantile(row.latency_ms, 0.95),
        "latency_ms_p99": quantile(row.latency_ms, 0.99),
    }  # fmt: skip
    return out


def margins(
    rows: Iterable[Rollup], tenants: Mapping[str, tuple[str, str]], plans: Callable[[str], PlanConfig | None]
) -> dict[str, list[dict[str, object]]]:
    """Revenue against attributed GPU cost per tenant, per plan and per pool; below-cost ones flagged.

    A tenant's revenue is its invoice before prepaid credits (fee, metered usage, overage); a pool's
    is the metered usage charged there (fees belong to no pool)."""
    by_tenant: dict[str, list[Rollup]] = {}
    by_pool: dict[str, list[int]] = {}
    for row in rows:
        by_tenant.setdefault(row.key.tenant_id, []).append(row)
        pool = by_pool.setdefault(row.key.pool or "(none)", [0, 0])
        pool[0] += row.charged_micros
        pool[1] += row.gpu_cost_micros
    tenant_rows: list[dict[str, object]] = []
    plan_sums: dict[str, list[int]] = {}
    for tenant_id, (slug, plan_name) in sorted(tenants.items(), key=lambda item: item[1][0]):
        usage = MonthUsage.of(by_tenant.get(tenant_id, []))
        revenue = revenue_of(plans(plan_name), usage)
        tenant_rows.append(_margin({"tenant": slug, "plan": plan_name}, revenue, usage.gpu_cost_micros))
        sums = plan_sums.setdefault(plan_name, [0, 0])
        sums[0] += revenue
        sums[1] += usage.gpu_cost_micros
    return {
        "tenants": tenant_rows,
        "plans": [_margin({"plan": name}, r, c) for name, (r, c) in sorted(plan_sums.items())],
        "pools": [_margin({"pool": name}, r, c) for name, (r, c) in sorted(by_pool.items())],
    }


def revenue_of(plan: PlanConfig | None, usage: MonthUsage) -> int:
    """A tenant's invoice for the month before prepaid credits (fee, metered usage, overage)."""
    return 0 if plan is None else sum(int(str(line["amount_micros"])) for line in charge_lines("", plan, usage))


def _margin(labels: dict[str, object], revenue: int, cost: int) -> dict[str, object]:
    margin = revenue - cost
    return labels | {
        "revenue_micros": revenue, "gpu_cost_micros": cost, "margin_micros": margin,
        "margin_ratio": None if revenue == 0 else round(margin / revenue, 4), "below_cost": margin < 0,
    }  # fmt: skip


def utilisation(
    rows: Iterable[Rollup], gpus: Mapping[str, float], pools: Mapping[str, str], by: str, bucket_s: float
) -> list[dict[str, object]]:
    """Busy GPU time over capacity per deployment or pool and bucket, from every tenant's rollups.

    The requests' GPU-seconds add up to their deployment's busy GPU time (attribution conserves it),
    so a bucket's utilisation is their sum over the GPUs' time in the bucket."""
    busy: dict[tuple[str, datetime], float] = {}
    for row in rows:
        if row.key.deployment:
            name = row.key.deployment if by == "deployment" else pools.get(row.key.deployment, row.key.pool)
            busy[(name, row.key.bucket)] = busy.get((name, row.key.bucket), 0.0) + row.gpu_seconds
    capacity = dict(gpus) if by == "deployment" else {}
    if by == "pool":
        for deployment, count in gpus.items():
            capacity[pools[deployment]] = capacity.get(pools[deployment], 0.0) + count
    return [
        {by: name, "bucket": bucket.isoformat().replace("+00:00", "Z"), "busy_gpu_seconds": seconds,
         "utilisation": seconds / (capacity[name] * bucket_s) if capacity.get(name) else None}
        for (name, bucket), seconds in sorted(busy.items())
    ]  # fmt: skip
