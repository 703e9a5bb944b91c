"""Platform realm: prices, invoices finalized and credited, prepaid credit granted, dead letters,
usage purge and rollup rebuilds, GPU utilisation and margins."""

from __future__ import annotations

import secrets
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field, field_validator

from tenantgate.admission.periods import month_label
from tenantgate.api.deps import PlatformReader, PlatformWriter, billing, gateway, operations, rollups
from tenantgate.api.queries import aware, refresh, window
from tenantgate.billing.invoices import parse_month
from tenantgate.billing.prices import to_micros, version_of
from tenantgate.billing.reports import margins, utilisation
from tenantgate.clock import utcnow
from tenantgate.domain import Price
from tenantgate.settings import MAX_PRICE, in_utc

router = APIRouter(tags=["billing"])


Money = Annotated[Decimal, Field(ge=0, le=MAX_PRICE, max_digits=20, decimal_places=6)]


class PriceIn(BaseModel):
    model: str = Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
    input_per_1m: Money
    output_per_1m: Money
    cached_per_1m: Money | None = None
    per_gpu_hour: Money = Decimal(0)
    effective_from: datetime = Field(description="With a timezone, e.g. 2026-12-01T00:00:00Z")

    @field_validator("effective_from")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return in_utc(value, "effective_from")


class PriceOut(BaseModel):
    version: str
    model: str
    effective_from: datetime
    input_per_1m: Decimal
    output_per_1m: Decimal
    cached_per_1m: Decimal
    per_gpu_hour: Decimal

    @classmethod
    def of(cls, price: Price) -> PriceOut:
        unit = Decimal(1_000_000)
        return cls(
            version=version_of(price), model=price.model, effective_from=price.effective_from,
            input_per_1m=price.input_micros_per_1m / unit, output_per_1m=price.output_micros_per_1m / unit,
            cached_per_1m=price.cached_micros_per_1m / unit, per_gpu_hour=price.gpu_hour_micros / unit,
        )  # fmt: skip


class DeadLetterOut(BaseModel):
    request_id: str
    reason: str
    payload: str
    created_at: datetime


@router.get("/prices")
async def list_prices(request: Request, _: PlatformReader) -> list[PriceOut]:
    """Every price version in force or scheduled, configured or added here."""
    return [PriceOut.of(p) for p in gateway(request).prices.versions()]


@router.post("/prices", status_code=201)
async def add_price(body: PriceIn, request: Request, caller: PlatformWriter) -> PriceOut:
    """Add a price version; 409 if the model already has one from that moment."""
    cached = body.input_per_1m if body.cached_per_1m is None else body.cached_per_1m
    price = Price(
        id=secrets.token_hex(8), model=body.model, effective_from=body.effective_from,
        input_micros_per_1m=to_micros(body.input_per_1m), output_micros_per_1m=to_micros(body.output_per_1m),
        cached_micros_per_1m=to_micros(cached), gpu_hour_micros=to_micros(body.per_gpu_hour), created_at=utcnow(),
    )  # fmt: skip
    return PriceOut.of(await operations(request).add_price(caller, price))


@router.get("/usage/dead-letters")
async def dead_letters(
    request: Request, _: PlatformReader, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[DeadLetterOut]:
    """Usage events the database refused, newest first, with its reason."""
    letters = await gateway(request).store.list_dead_letters(limit)
    return [DeadLetterOut(request_id=d.request_id, reason=d.reason, payload=d.payload, created_at=d.created_at)
            for d in letters]  # fmt: skip


@router.post("/usage/purge")
async def purge(request: Request, caller: PlatformWriter) -> dict[str, int]:
    """Delete raw usage events past each tenant's retention now (otherwise hourly)."""
    return {"deleted": await operations(request).purge(caller)}


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


@router.post("/tenants/{slug}/invoices/{month}/finalize")
async def finalize(slug: str, month: str, request: Request, caller: PlatformWriter) -> dict[str, object]:
    """Fix a month that has ended; 409 while it runs or once it is final."""
    await gateway(request).recorder.flush()
    return await billing(request).finalize(caller, slug, month)


Amount = Annotated[Decimal, Field(gt=0, le=1_000_000_000, max_digits=16, decimal_places=6)]


class CreditNoteIn(BaseModel):
    amount: Amount
    reason: str = Field(min_length=1, max_length=500)


class CreditGrantIn(BaseModel):
    amount: Amount
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
