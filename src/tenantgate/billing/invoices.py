"""What a tenant owes for a calendar month (UTC), composed from the month's daily rollups.

Lines, each with an id stable across drafts and the final version (`<invoice id>:<kind>[:<detail>]`):
- `subscription`: the plan's monthly fee.
- `included:tokens` / `included:gpu_minutes`: how much of the plan's included usage the month used (0).
- `usage:<model>`: tokens per model. On metered plans the amount is what the requests were
  charged at the model prices in force when they ran; on plans with included usage it is 0 (the
  fee covers it) and the line is the per-model breakdown.
- `overage:tokens` / `overage:gpu_minutes`: usage past the plan's included tokens (overage plans)
  or GPU-minutes, times the overage price, and never less than the plan's floor when there is any.
- `burst`: on hard-capped plans, the burst credits used past the monthly tokens (free; shown).
- `credit:<grant>`: prepaid credit burned down, soonest-expiring grant first, then the oldest; a
  grant pays a month when it was granted before the month ended and had not expired by then.
Money is integer micro-units; an amount is rounded once per line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from tenantgate.admission.periods import next_month
from tenantgate.billing.prices import to_micros
from tenantgate.billing.records import CreditGrant, Rollup, UsageTotals
from tenantgate.errors import InvalidRequest
from tenantgate.settings import PlanConfig

FAR_FUTURE = datetime.max.replace(tzinfo=UTC)
MONTH = re.compile(r"\d{4}-\d{2}")


def parse_month(month: str) -> tuple[datetime, datetime]:
    """'2026-02' → (start, end) in UTC; InvalidRequest naming the format otherwise."""
    try:
        if not MONTH.fullmatch(month):
            raise ValueError(month)
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidRequest(
            f"'{month}' is not a month: use YYYY-MM with a month from 01 to 12, e.g. 2026-11.",
            code="invalid_month",
            param="month",
        ) from None
    if not 2000 <= start.year <= 9998:
        raise InvalidRequest("Months from 2000-01 to 9998-12 only.", code="invalid_month", param="month")
    return start, next_month(start)


def invoice_id(tenant_id: str, month: str) -> str:
    return f"inv-{tenant_id}-{month.replace('-', '')}"


def _micros(quantity: Decimal, unit_price_micros: int, per: int = 1) -> int:
    return int((quantity * unit_price_micros / per).quantize(Decimal(1), ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class MonthUsage:
    """One tenant's month, summed from its daily rollups."""

    requests: int
    errors: int
    tokens_by_model: dict[str, int]
    charged_by_model: dict[str, int]
    gpu_seconds: float
    gpu_cost_micros: int

    @property
    def tokens(self) -> int:
        return sum(self.tokens_by_model.values())

    @classmethod
    def of(cls, rows: Iterable[Rollup]) -> MonthUsage:
        return cls.of_totals(row.totals() for row in rows)

    @classmethod
    def of_totals(cls, totals: Iterable[UsageTotals]) -> MonthUsage:
        """The same month from a tenant's per-model sums."""
        tokens: dict[str, int] = {}
        charged: dict[str, int] = {}
        requests = errors = gpu_cost = 0
        gpu = 0.0
        for total in totals:
            tokens[total.model] = tokens.get(total.model, 0) + total.prompt_tokens + total.completion_tokens
            charged[total.model] = charged.get(total.model, 0) + total.charged_micros
            requests += total.requests
            errors += total.errors
            gpu += total.gpu_seconds
            gpu_cost += total.gpu_cost_micros
        return cls(requests, errors, tokens, charged, gpu, gpu_cost)


def _line(
    invoice: str, kind: str, description: str, quantity: Decimal | int, unit: str, unit_price: int, amount: int
) -> dict[str, object]:
    return {
        "id": f"{invoice}:{kind}", "kind": kind.split(":", 1)[0], "description": description,
        "quantity": str(quantity), "unit": unit, "unit_price_micros": unit_price, "amount_micros": amount,
    }  # fmt: skip


def charge_lines(invoice: str, plan: PlanConfig, usage: MonthUsage) -> list[dict[str, object]]:
    """Every line before prepaid credits."""
    lines = []
    fee = to_micros(plan.monthly_fee_usd)
    if fee:
        lines.append(_line(invoice, "subscription", f"{plan.display_name} plan", 1, "month", fee, fee))
    metered = plan.bills_usage_by_model
    for model in sorted(usage.tokens_by_model):
        amount = usage.charged_by_model[model] if metered else 0
        lines.append(_line(invoice, f"usage:{model}", f"Usage of {model}", usage.tokens_by_model[model],
                           "tokens", 0, amount))  # fmt: skip
    if metered:
        return lines
    if plan.monthly_tokens is not None:
        used = min(usage.tokens, plan.monthly_tokens)
        description = f"Included in the plan: {used:,} of {plan.monthly_tokens:,} tokens used"
        lines.append(_line(invoice, "included:tokens", description, used, "tokens", 0, 0))
    if plan.included_gpu_minutes is not None:
        minutes = min(Decimal(repr(usage.gpu_seconds)) / 60, Decimal(repr(plan.included_gpu_minutes)))
        used_minutes = minutes.quantize(Decimal("0.000001"))
        description = f"Included in the plan: {used_minutes} of {plan.included_gpu_minutes:g} GPU-minutes used"
        lines.append(_line(invoice, "included:gpu_minutes", description, used_minutes, "GPU-minutes", 0, 0))
    floor = to_micros(plan.overage_floor_usd)
    if plan.cap == "overage" and plan.monthly_tokens is not None and usage.tokens > plan.monthly_tokens:
        extra = usage.tokens - plan.monthly_tokens
        price = to_micros(plan.overage_usd_per_1k)
        amount = max(_micros(Decimal(extra), price, 1000), floor)
        description = f"Tokens past the {plan.monthly_tokens:,} included (per 1k)"
        lines.append(_line(invoice, "overage:tokens", description, extra, "tokens", price, amount))
    if plan.cap == "hard" and plan.monthly_tokens is not None and usage.tokens > plan.monthly_tokens:
        burst = min(usage.tokens - plan.monthly_tokens, plan.burst_credits)
        lines.append(_line(invoice, "burst", "Burst credits used", burst, "tokens", 0, 0))
    minutes = Decimal(repr(usage.gpu_seconds)) / 60
    if plan.included_gpu_minutes is not None and minutes > Decimal(repr(plan.included_gpu_minutes)):
        extra_minutes = (minutes - Decimal(repr(plan.included_gpu_minutes))).quantize(Decimal("0.000001"))
        price = to_micros(plan.overage_usd_per_gpu_minute)
        amount = max(_micros(extra_minutes, price), floor)
        description = f"GPU-minutes past the {plan.included_gpu_minutes:g} included"
        lines.append(_line(invoice, "overage:gpu_minutes", description, extra_minutes, "GPU-minutes", price, amount))
    return lines


def burn_credits(
    invoice: str, due: int, grants: Iterable[CreditGrant], applied: Mapping[str, int], month_end: datetime
) -> tuple[list[dict[str, object]], list[tuple[str, int]]]:
    """Credit lines (negative amounts) and (grant id, micros) applications for an amount due."""
    usable = [g for g in grants if g.granted_at < month_end and (g.expires_at is None or g.expires_at >= month_end)]
    usable.sort(key=lambda g: (g.expires_at or FAR_FUTURE, g.granted_at, g.id))
    lines, applications = [], []
    for grant in usable:
        if due <= 0:
            break
        take = min(grant.amount_micros - applied.get(grant.id, 0), due)
        if take > 0:
            due -= take
            applications.append((grant.id, take))
            lines.append(_line(invoice, f"credit:{grant.id}", f"Prepaid credit {grant.note}".strip(), 1, "grant",
                               -take, -take))  # fmt: skip
    return lines, applications


def compose(
    tenant_id: str, tenant_slug: str, month: str, plan: PlanConfig, rows: Iterable[Rollup],
    grants: Iterable[CreditGrant], applied: Mapping[str, int], currency: str,
) -> tuple[dict[str, object], list[tuple[str, int]]]:  # fmt: skip
    """The invoice document (status draft) and the credit it would apply."""
    start, end = parse_month(month)
    number = invoice_id(tenant_id, month)
    usage = MonthUsage.of(rows)
    lines = charge_lines(number, plan, usage)
    subtotal = sum(int(str(line["amount_micros"])) for line in lines)
    credit_lines, applications = burn_credits(number, subtotal, grants, applied, end)
    credits = -sum(amount for _, amount in applications)
    document: dict[str, object] = {
        "id": number, "tenant": tenant_slug, "tenant_id": tenant_id, "month": month, "status": "draft",
        "currency": currency, "period": {"from": start.isoformat(), "to": end.isoformat()}, "plan": plan.name,
        "usage": {"requests": usage.requests, "errors": usage.errors, "tokens": usage.tokens,
                  "gpu_minutes": round(usage.gpu_seconds / 60, 6)},
        "lines": lines + credit_lines, "subtotal_micros": subtotal, "credits_micros": credits,
        "total_micros": subtotal + credits,
    }  # fmt: skip
    return document, applications
