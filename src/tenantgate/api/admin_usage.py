"""Usage and billing management API: usage reports, invoices, credits, margins, rollups.

Every report reads rollups. `fresh=true` (the CLI's default) first writes the buffered events
and rolls up the current hour, so what was served a moment ago is counted."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from tenantgate.admission.periods import day_start, month_label
from tenantgate.api.admin_schemas import sane_moment
from tenantgate.api.csv_render import csv_response
from tenantgate.api.deps import PlatformReader, PlatformWriter, UsageReader, billing, gateway, rollups
from tenantgate.billing.invoices import parse_month
from tenantgate.billing.prices import to_micros
from tenantgate.billing.reports import grouped, margins, parse_group_by, report_row, utilisation
from tenantgate.billing.rollups import HOUR, hour_start
from tenantgate.clock import utcnow
from tenantgate.errors import InvalidRequest

router = APIRouter(tags=["usage and billing"])
Format = Annotated[Literal["json", "csv"], Query(description="json or csv")]
MAX_RANGE = timedelta(days=400)


def aware(value: datetime, name: str) -> datetime:
    """A query's moment, checked as `sane_moment` does; InvalidRequest naming the parameter otherwise."""
    try:
        return sane_moment(value, name)
    except ValueError as exc:
        raise InvalidRequest(f"{exc}.", param=name) from None


def window(start: datetime, end: datetime, longest: timedelta = MAX_RANGE) -> tuple[datetime, datetime]:
    """A query's time range, checked: start before end, and at most `longest` long."""
    if not start < end or end - start > longest:
        days = longest.days
        raise InvalidRequest(f"'since' must be before 'until', and at most {days} days before it.", param="since")
    return start, end


async def refresh(request: Request) -> None:
    await gateway(request).recorder.flush()
    await rollups(request).roll_pending()


@router.get("/tenants/{slug}/usage")
async def usage(
    slug: str,
    request: Request,
    _: UsageReader,
    since: Annotated[
        datetime | None, Query(description="Start (inclusive, with a timezone); default 30 days ago")
    ] = None,
    until: Annotated[datetime | None, Query(description="End (exclusive, with a timezone); default now")] = None,
    group_by: Annotated[str | None, Query(description="model,key,user,endpoint,deployment,pool,day|hour")] = None,
    fresh: bool = False,
    format: Format = "json",
) -> object:
    """A tenant's usage from the rollups, grouped as asked (by model by default), with percentiles."""
    tenant = await billing(request).tenant(slug)
    end = aware(until, "until") if until else utcnow() + timedelta(seconds=1)
    start, end = window(aware(since, "since") if since else end - timedelta(days=30), end)
    groups = parse_group_by(group_by) or ("model",)
    if fresh:
        await refresh(request)
    by_day = "hour" not in groups and start == day_start(start) and end == day_start(end)
    lo, hi = (start, end) if by_day else (hour_start(start), hour_start(end - timedelta(microseconds=1)) + HOUR)
    rows = await gateway(request).store.list_rollups("day" if by_day else "hour", lo, hi, tenant.id)
    report = [report_row(row, groups) for row in grouped(rows, groups)]
    [total] = [report_row(row, ()) for row in grouped(rows, ())] or [report_row_empty()]
    if format == "csv":
        return csv_response(report, [*groups, *COLUMNS], f"usage-{slug}.csv")
    body: dict[str, object] = {"tenant": slug, "since": start, "until": end, "group_by": groups, "rows": report,
                               "total": total, "granularity": "day" if by_day else "hour"}  # fmt: skip
    if groups == ("model",):
        body["models"] = report
    return body


COLUMNS = ("requests", "errors", "rejected", "prompt_tokens", "completion_tokens", "cached_tokens", "total_tokens",
           "estimated_requests", "gpu_seconds", "charged_micros", "ttft_ms_p50", "ttft_ms_p95", "queue_wait_ms_p95",
           "latency_ms_p50", "latency_ms_p95", "latency_ms_p99", "errors_by_type")  # fmt: skip


def report_row_empty() -> dict[str, object]:
    return {column: 0 for column in COLUMNS if not column.endswith(("p50", "p95", "p99"))}


@router.post("/rollups/rebuild")
async def rebuild(
    request: Request,
    _: PlatformWriter,
    since: Annotated[datetime, Query(description="From (with a timezone)")],
    until: Annotated[datetime, Query(description="To (with a timezone)")],
) -> dict[str, int]:
    """Roll up every hour in the range again from the raw events still kept."""
    start, end = window(aware(since, "since"), aware(until, "until"))
    await gateway(request).recorder.flush()
    return {"hours": await rollups(request).rebuild(start, end)}


INVOICE_COLUMNS = ("id", "kind", "description", "quantity", "unit", "unit_price_micros", "amount_micros")


@router.get("/tenants/{slug}/invoices")
async def list_invoices(slug: str, request: Request, _: UsageReader) -> list[dict[str, object]]:
    """The tenant's final invoices, each with its credit notes."""
    return await billing(request).invoices(slug)


@router.get("/tenants/{slug}/invoices/{month}")
async def get_invoice(slug: str, month: str, request: Request, _: UsageReader, format: Format = "json") -> object:
    """The invoice of a month: final if it was finalised, else a draft from the rollups so far."""
    document = await billing(request).invoice(slug, month)
    if format == "csv":
        lines = document["lines"]
        assert isinstance(lines, list)
        return csv_response(lines, INVOICE_COLUMNS, f"invoice-{slug}-{month}.csv")
    return document


@router.post("/tenants/{slug}/invoices/{month}/finalize")
async def finalize(slug: str, month: str, request: Request, caller: PlatformWriter) -> dict[str, object]:
    """Fix a month that has ended; 409 while it runs or once it is final."""
    await gateway(request).recorder.flush()
    return await billing(request).finalize(caller, slug, month)


Money = Annotated[Decimal, Field(gt=0, le=1_000_000_000, max_digits=16, decimal_places=6)]


class CreditNoteIn(BaseModel):
    amount: Money
    reason: str = Field(min_length=1, max_length=500)


class CreditGrantIn(BaseModel):
    amount: Money
    expires_at: datetime | None = Field(default=None, description="With a timezone; null = never")
    note: str = Field(default="", max_length=200)


@router.post("/tenants/{slug}/invoices/{month}/credit-notes", status_code=201)
async def credit_note(
    slug: str, month: str, body: CreditNoteIn, request: Request, caller: PlatformWriter
) -> dict[str, object]:
    note = await billing(request).credit_note(caller, slug, month, to_micros(body.amount), body.reason)
    return {"id": note.id, "invoice_id": note.invoice_id, "amount_micros": note.amount_micros, "reason": note.reason}


@router.post("/tenants/{slug}/credits", status_code=201)
async def grant_credit(
    slug: str, body: CreditGrantIn, request: Request, caller: PlatformWriter
) -> list[dict[str, object]]:
    """Grant prepaid credit; answers with every grant and what is left of it."""
    expires = None if body.expires_at is None else aware(body.expires_at, "expires_at")
    await billing(request).grant(caller, slug, to_micros(body.amount), expires, body.note)
    return await billing(request).credits(slug)


@router.get("/tenants/{slug}/credits")
async def credits(slug: str, request: Request, _: UsageReader) -> list[dict[str, object]]:
    return await billing(request).credits(slug)


@router.get("/utilisation")
async def gpu_utilisation(
    request: Request,
    _: PlatformReader,
    since: Annotated[datetime, Query(description="From (with a timezone)")],
    until: Annotated[datetime, Query(description="To (with a timezone)")],
    by: Annotated[Literal["deployment", "pool"], Query(description="deployment or pool")] = "deployment",
    granularity: Annotated[Literal["hour", "day"], Query(description="hour or day")] = "hour",
    fresh: bool = False,
) -> list[dict[str, object]]:
    """Busy GPU time over capacity per deployment or pool, per hour or day (every tenant's rollups)."""
    start, end = window(aware(since, "since"), aware(until, "until"))
    if fresh:
        await refresh(request)
    gw = gateway(request)
    rows = await gw.store.list_rollups(granularity, start, end)
    deployments = gw.catalog.deployments
    gpus = {d.name: d.gpus for d in deployments}
    pools = {d.name: d.pool for d in deployments}
    return utilisation(rows, gpus, pools, by, 3600.0 if granularity == "hour" else 86400.0)


@router.get("/margins")
async def margin_report(
    request: Request, _: PlatformReader,
    month: Annotated[str | None, Query(description="YYYY-MM; default this month")] = None,
) -> dict[str, object]:  # fmt: skip
    """Revenue against attributed GPU cost per tenant, plan and pool; below-cost rows are flagged."""
    month = month or month_label(utcnow())
    start, end = parse_month(month)
    gw = gateway(request)
    rows = await gw.store.list_rollups("day", start, end)
    tenants = {t.id: (t.slug, t.plan) for t in await gw.store.list_tenants()}
    plans = {p.name: p for p in gw.settings.catalog.plans}
    return {"month": month, "currency": gw.settings.currency, **margins(rows, tenants, plans.get)}
