"""Plans, from configuration to enforcement: the limits, pools and queue terms a plan gives its tenants.

Admission and billing both read plans from here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tenantgate.domain import Limits, QueueTerms
from tenantgate.settings import CatalogConfig, PlanConfig


def plan_limits(plan: PlanConfig) -> Limits:
    """A plan's tenant-level limits. The monthly token cap blocks only on `hard` plans, and only
    after the plan's burst credits are spent too; `soft` and `overage` plans keep serving past it
    (notification and billing happen downstream)."""
    return Limits(
        rpm=plan.rpm,
        tpm=plan.tpm,
        concurrency=plan.concurrency,
        daily_tokens=plan.daily_tokens,
        monthly_tokens=plan.monthly_tokens + plan.burst_credits
        if plan.cap == "hard" and plan.monthly_tokens is not None
        else None,
        budget_micros=None if plan.budget_usd is None else round(plan.budget_usd * 1_000_000),
        monthly_gpu_ms=round(plan.included_gpu_minutes * 60_000)
        if plan.cap == "hard" and plan.included_gpu_minutes is not None
        else None,
    )


@dataclass(frozen=True, slots=True)
class PlanRules:
    limits: Limits = field(default_factory=Limits)
    allowed_pools: frozenset[str] | None = None
    included_tokens: int | None = None  # soft/overage plans: reaching it notifies instead of blocking
    queue: QueueTerms = field(default_factory=QueueTerms)
    queue_over_concurrency: bool = False  # the tenant's concurrency waits in the fair queue, not 429
    ttft_slo_ms: float | None = None
    share_prefix_cache: bool = False  # no per-tenant cache_salt: the plan's tenants share prefix caches
    response_cache_ttl_s: float | None = None  # repeated identical requests answered from the tenant's cache


def rules_by_plan(catalog: CatalogConfig) -> Callable[[str], PlanRules]:
    table = {
        plan.name: PlanRules(
            limits=plan_limits(plan),
            allowed_pools=None if plan.allowed_pools is None else frozenset(plan.allowed_pools),
            included_tokens=plan.monthly_tokens if plan.cap != "hard" else None,
            queue=QueueTerms(plan.queue_weight, plan.queue_timeout_s, plan.queue_max, plan.priority),
            queue_over_concurrency=plan.over_concurrency == "queue",
            ttft_slo_ms=plan.ttft_slo_ms,
            share_prefix_cache=plan.share_prefix_cache,
            response_cache_ttl_s=plan.response_cache_ttl_s,
        )
        for plan in catalog.plans
    }
    unknown = PlanRules()
    return lambda name: table.get(name, unknown)
