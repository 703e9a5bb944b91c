"""What a principal may consume, per identity (tenant, key), and the checks one request needs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from tenantgate.admission.periods import calendar
from tenantgate.domain import Limits

WINDOW_S = 60.0


class LimitKind(StrEnum):
    """Also the OpenAI-style `code` of the 429 that a failed check produces."""

    REQUESTS = "rate_limit_exceeded"
    TOKENS = "tokens_limit_exceeded"
    CONCURRENCY = "concurrency_limit_exceeded"
    QUOTA = "quota_exceeded"
    BUDGET = "budget_exceeded"
    GPU_TIME = "gpu_quota_exceeded"


class Check(NamedTuple):
    """One counter to test and reserve: a sliding 60 s window, a lease set, or a period total.

    A named tuple rather than a frozen dataclass: a request makes a dozen, and a frozen dataclass
    takes four times as long to make."""

    kind: LimitKind
    counter: str  # store key, versioned: see docs/admission.md
    limit: int
    amount: int
    shape: str  # "window" | "lease" | "total"
    reset_at: datetime | None = None  # for period totals
    ttl_s: float = WINDOW_S


def checks_for(
    scope: str, limits: Limits, tokens: int, cost_micros: int, now: datetime, lease_ttl_s: float
) -> list[Check]:
    """The checks of one identity (`scope` like 'tenant:<id>' or 'key:<id>') for one request."""
    checks = []
    if limits.rpm is not None:
        checks.append(Check(LimitKind.REQUESTS, f"tg1:rpm:{scope}", limits.rpm, 1, "window"))
    if limits.tpm is not None:
        checks.append(Check(LimitKind.TOKENS, f"tg1:tpm:{scope}", limits.tpm, tokens, "window"))
    if limits.concurrency is not None:
        checks.append(
            Check(LimitKind.CONCURRENCY, f"tg1:conc:{scope}", limits.concurrency, 1, "lease", ttl_s=lease_ttl_s)
        )
    if (
        limits.daily_tokens is None
        and limits.monthly_tokens is None
        and limits.budget_micros is None
        and limits.monthly_gpu_ms is None
    ):
        return checks
    today = calendar(now)
    if limits.daily_tokens is not None:
        day = f"tg1:day:{scope}:{today.day}"
        checks.append(Check(LimitKind.QUOTA, day, limits.daily_tokens, tokens, "total", today.next_day))
    if limits.monthly_tokens is not None:
        month = f"tg1:month:{scope}:{today.month}"
        checks.append(Check(LimitKind.QUOTA, month, limits.monthly_tokens, tokens, "total", today.next_month))
    if limits.budget_micros is not None:
        budget = f"tg1:budget:{scope}:{today.month}"
        checks.append(Check(LimitKind.BUDGET, budget, limits.budget_micros, cost_micros, "total", today.next_month))
    if limits.monthly_gpu_ms is not None:  # GPU time is known only afterwards: admit while any is left
        gpu = f"tg1:gpu:{scope}:{today.month}"
        checks.append(Check(LimitKind.GPU_TIME, gpu, limits.monthly_gpu_ms, 1, "total", today.next_month))
    return checks


def alone(check: Check, instances: int) -> Check:
    """The check as one of `instances` instances enforces it alone, while they cannot share counters:
    a concurrency limit divided among them (at least 1 each), and every other amount counted
    `instances` times, so a window passes limit / instances and a period total what is left of it,
    divided among them; but never counted past the limit itself, so that a limit smaller than the
    instances still lets each pass one request (as a concurrency limit does)."""
    if instances <= 1:
        return check
    if check.shape == "lease":
        return check._replace(limit=max(1, check.limit // instances))
    # never past the limit itself: a limit under N still lets each instance pass one request's worth
    return check._replace(amount=max(check.amount, min(check.amount * instances, check.limit)))
