"""A tenant's request log: one line per request, filtered, paged by time and exported as CSV.

Metadata only, unless the tenant keeps prompts and answers (`log_content`): then one request's page
(`?request=ID`) shows them to the tenant's members who read usage. Operators never see them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from tenantgate.access.roles import Action
from tenantgate.api.csv_render import csv_response
from tenantgate.api.deps import gateway, tenancy
from tenantgate.api.schemas import sane_moment
from tenantgate.clock import utcnow
from tenantgate.domain import RequestFilter, UsageEvent
from tenantgate.errors import GatewayError, InvalidRequest
from tenantgate.ui.pages import Viewer, refused, to_login
from tenantgate.ui.render import page

router = APIRouter(include_in_schema=False)
PAGE = 200
EXPORT_LIMIT = 10_000  # the newest; the usage events API exports a whole range
COLUMNS = ("time", "request_id", "key", "user", "model", "deployment", "status", "error", "prompt_tokens",
           "completion_tokens", "cached_tokens", "cost_micros", "queue_wait_ms", "ttft_ms", "latency_ms")  # fmt: skip
Text = Annotated[str | None, Query(max_length=200)]


def line(event: UsageEvent, keys: dict[str, str], users: dict[str, str]) -> dict[str, object]:
    usage = event.usage
    return {
        "time": event.created_at.isoformat().replace("+00:00", "Z"), "request_id": event.request_id,
        "key": keys.get(event.key_id, event.key_id), "key_id": event.key_id,
        "user": users.get(event.user_id or "", event.user_id or ""), "model": event.model,
        "deployment": event.deployment or "", "status": event.status, "error": event.error_type or "",
        "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
        "cached_tokens": usage.cached_tokens, "estimated": usage.estimated, "cost_micros": event.cost_micros,
        "queue_wait_ms": None if event.queue_wait_ms is None else round(event.queue_wait_ms, 1),
        "ttft_ms": None if event.ttft_ms is None else round(event.ttft_ms, 1), "latency_ms": round(event.latency_ms, 1),
    }  # fmt: skip


def moment(value: str | None, default: datetime) -> datetime:
    if not value:
        return default
    try:
        return sane_moment(datetime.fromisoformat(value.replace("Z", "+00:00")), "before")
    except ValueError as exc:
        raise InvalidRequest(f"'before' must be a moment like 2026-11-26T10:00:00Z ({exc}).", param="before") from None


@router.get("/ui/tenants/{slug}/requests")
async def request_log(
    slug: str, request: Request, caller: Viewer, model: Text = None, key: Text = None, user: Text = None,
    request_id: Annotated[str | None, Query(alias="request", max_length=200)] = None, failed: bool = False,
    before: Text = None, before_id: Text = None, days: Annotated[int, Query(ge=1, le=31)] = 1,
    format: Annotated[str, Query(max_length=4)] = "html",
) -> Response:  # fmt: skip
    """The tenant's requests in the `days` before `before` (default now), the newest first."""
    if caller is None:
        return to_login(request)
    gw = gateway(request)
    try:
        caller.require(Action.USAGE_READ, slug=slug)
        tenant = await tenancy(request).tenant(slug)
        until = moment(before, utcnow() + timedelta(seconds=1))
        # a page's last line: what follows is older than it, even at the same microsecond
        older = (until, before_id) if before and before_id else None
        until += timedelta(microseconds=1) if older else timedelta(0)
        matching = RequestFilter(model or None, key or None, user or None, request_id or None, failed, older)
        export = format == "csv"
        await gw.recorder.flush()  # what was served a moment ago is in the log
        found = await gw.store.request_log(
            tenant.id, until - timedelta(days=days), until, matching, EXPORT_LIMIT if export else PAGE + 1
        )
        keys = {k.id: k.name for k in await gw.store.list_keys(tenant.id)}  # names, as usage by key shows them
        # people by e-mail for roles that may list them; by id for the others, as the usage API names them
        users = {u.id: u.email if caller.may(Action.MEMBERS_READ) else u.id for u in await tenancy(request).users(slug)}
        content = None
        if request_id and not caller.operator:  # a tenant's own prompts are for its members alone
            content = await gw.store.request_content(tenant.id, request_id)
    except GatewayError as error:
        return refused(caller, error)
    lines = [line(event, keys, users) for event in found]
    if export:
        return csv_response(lines, COLUMNS, f"requests-{slug}.csv")
    more = lines[PAGE - 1] if len(lines) > PAGE else None  # the next page: older than the last shown
    filters = {"model": model or "", "key": key or "", "user": user or "", "request": request_id or "",
               "failed": failed, "days": days}  # fmt: skip
    return page(
        "requests.html", caller=caller, tenant=tenant, lines=lines[:PAGE], more=more, filters=filters,
        keys=keys, users=users, models=sorted(gw.catalog.model_names()), currency=gw.settings.currency,
        query=request.url.query, content=content,
    )  # fmt: skip
