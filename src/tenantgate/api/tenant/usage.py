"""Tenant realm: usage reports, usage events, invoices and credit balances.

Every report reads rollups. `fresh=true` (the CLI's default) first writes the buffered events
and rolls up the current hour, so what was served a moment ago is counted."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from tenantgate.admission.periods import day_start
from tenantgate.api.csv_render import csv_response
from tenantgate.api.deps import UsageReader, billing, gateway
from tenantgate.api.queries import Format, aware, refresh, window
from tenantgate.billing.cloud_events import ndjson
from tenantgate.billing.reports import grouped, parse_group_by, report_row
from tenantgate.billing.rollups import HOUR, hour_start
from tenantgate.clock import utcnow

router = APIRouter(tags=["usage and billing"])


@router.get("/tenants/{slug}/usage/events", response_class=Response)
async def usage_events(
    slug: str, request: Request, _: UsageReader,
    since: Annotated[datetime, Query(description="From (with a timezone)")],
    until: Annotated[datetime, Query(description="To (with a timezone)")],
) -> Response:  # fmt: skip
    """One CloudEvent per request as NDJSON (raw events, so only within the retention period)."""
    tenant = await billing(request).tenant(slug)
    start, end = window(aware(since, "since"), aware(until, "until"), timedelta(days=31))
    gw = gateway(request)
    await gw.recorder.flush()
    events = await gw.store.usage_between(start, end, tenant.id)
    return Response(ndjson(events, {tenant.id: tenant.slug}, gw.settings.currency), media_type="application/x-ndjson")


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


@router.get("/tenants/{slug}/credits")
async def credits(slug: str, request: Request, _: UsageReader) -> list[dict[str, object]]:
    return await billing(request).credits(slug)
