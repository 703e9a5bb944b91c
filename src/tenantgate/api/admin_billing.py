"""Billing management API: price versions, dead letters, tenant webhooks, retention, and the
CloudEvents export of raw usage events."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, field_validator

from tenantgate.api.admin_usage import aware, window
from tenantgate.api.deps import (
    PlatformReader,
    PlatformWriter,
    SettingsWriter,
    UsageReader,
    billing,
    gateway,
    operations,
)
from tenantgate.billing.export import ndjson
from tenantgate.billing.prices import to_micros, version_of
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


class WebhookIn(BaseModel):
    url: str = Field(
        min_length=8, max_length=2000, pattern=r"^https?://[^\s\x00-\x1f\x7f]+$", description="http(s) URL"
    )
    secret: str | None = Field(
        default=None, min_length=16, max_length=200, pattern=r"^[\x21-\x7e]+$",
        description="Printable ASCII, no spaces; generated when absent",
    )  # fmt: skip


class RetentionIn(BaseModel):
    days: int | None = Field(ge=1, le=3650, description="Days of raw usage events kept; null = the default")


@router.put("/tenants/{slug}/webhook")
async def set_webhook(slug: str, body: WebhookIn, request: Request, caller: SettingsWriter) -> dict[str, str]:
    """Where the tenant's alerts go; the signing secret is shown here only."""
    secret = body.secret or secrets.token_urlsafe(32)
    await billing(request).set_webhook(caller, slug, body.url, secret)
    return {"url": body.url, "secret": secret}


@router.delete("/tenants/{slug}/webhook", status_code=204)
async def delete_webhook(slug: str, request: Request, caller: SettingsWriter) -> None:
    await billing(request).delete_webhook(caller, slug)


@router.put("/tenants/{slug}/retention")
async def set_retention(slug: str, body: RetentionIn, request: Request, caller: SettingsWriter) -> dict[str, int]:
    await billing(request).set_retention(caller, slug, body.days)
    return {"days": body.days or gateway(request).settings.usage_retention_days}


@router.post("/usage/purge")
async def purge(request: Request, caller: PlatformWriter) -> dict[str, int]:
    """Delete raw usage events past each tenant's retention now (otherwise hourly)."""
    return {"deleted": await operations(request).purge(caller)}


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
