"""The UI's pages. Each one checks the same permission the management API checks for what it shows;
a page without a session leads to the login page."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tenantgate.access.callers import Caller
from tenantgate.access.roles import Action
from tenantgate.admission.periods import day_start
from tenantgate.api.deps import (
    SESSION_COOKIE,
    access,
    audit_log,
    authenticated,
    billing,
    client_address,
    gateway,
    tenancy,
)
from tenantgate.api.platform.pools import deployment_state
from tenantgate.clock import utcnow
from tenantgate.errors import GatewayError, PermissionDenied
from tenantgate.ui.render import page
from tenantgate.ui.views import (
    GROUPINGS,
    PERIODS,
    all_tenants,
    errors_chart,
    price_states,
    tenant_usage,
    top_chart,
    utilisation_chart,
)

router = APIRouter(include_in_schema=False)
CHAT_KEY_TTL = timedelta(hours=12)
AUDIT_LIMIT = 500
ERROR_DAYS = 14


async def viewer(request: Request) -> Caller | None:
    """The signed-in person, or None: no session, or one that expired or was ended."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    try:
        return await access(request).authenticate(None, client_address(request), cookie)
    except GatewayError:
        return None


Viewer = Annotated[Caller | None, Depends(viewer)]


def to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303)


def refused(caller: Caller, error: GatewayError) -> HTMLResponse:
    return page("error.html", status=error.status, caller=caller, message=error.message)


LOCAL_PATH = re.compile(r"/(?![/\\])[^\x00-\x20\x7f\\]*")


def local_path(value: str | None) -> str:
    """Where to go after logging in: a path on this gateway only, never another site (browsers drop
    tabs and newlines from URLs, so `/\t/evil.example` would become `//evil.example`)."""
    return value if value and LOCAL_PATH.fullmatch(value) else "/ui/"


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=303)


@router.get("/ui")
async def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=303)


@router.get("/status")
async def status_page(request: Request, caller: Viewer) -> Response:
    """Public: each pool's health and queue, nothing about tenants or deployments."""
    incidents = await request.app.state.status_board.shown()
    pools = request.app.state.public_status.of(gateway(request))
    return page("status.html", caller=caller, pools=pools, incidents=incidents, now=utcnow())


@router.get("/ui/login")
async def login_page(request: Request, next: str | None = None, tenant: str | None = None) -> Response:
    return page("login.html", next=local_path(next), tenant=(tenant or "")[:63])


@router.get("/ui/")
async def home(request: Request, caller: Viewer, month: str | None = None) -> Response:
    if caller is None:
        return to_login(request)
    if not caller.operator:
        return RedirectResponse(f"/ui/tenants/{caller.tenant_slug}", status_code=303)
    try:
        caller.require(Action.PLATFORM_READ)
        gw = gateway(request)
        shown_month, rows = await all_tenants(gw, request.app.state.month_totals, month)
        since = day_start(utcnow()) - timedelta(days=ERROR_DAYS - 1)
        errors = await gw.store.error_counts("day", since, since + timedelta(days=ERROR_DAYS))
        incidents = await request.app.state.status_board.shown()
    except GatewayError as error:
        return refused(caller, error)
    pools = [deployment_state(gw, lane) for lane in gw.scheduler.lanes.values()]
    charts = {
        "errors": errors_chart(errors, ERROR_DAYS),
        "utilisation": utilisation_chart(pools),
        "tokens": top_chart(rows, "tokens", "Top tenants by tokens"),
        "revenue": top_chart(rows, "revenue_micros", f"Top tenants by revenue ({gw.settings.currency})"),
        "margin": top_chart(rows, "margin_micros", f"Top tenants by margin ({gw.settings.currency})"),
    }
    return page(
        "console.html", caller=caller, month=shown_month, tenants=rows, pools=pools, charts=charts, incidents=incidents,
        currency=gw.settings.currency, may_write=caller.may(Action.PLATFORM_WRITE), plans=gw.settings.catalog.plans,
        plan_tenants=Counter(row.plan for row in rows), prices=price_states(gw.prices, utcnow()),
        models=sorted(gw.catalog.model_names()),
    )  # fmt: skip


@router.get("/ui/tenants/{slug}")
async def tenant_page(
    slug: str, request: Request, caller: Viewer,
    period: Annotated[str, Query(max_length=8)] = "7d", group: Annotated[str, Query(max_length=8)] = "model",
) -> Response:  # fmt: skip
    if caller is None:
        return to_login(request)
    gw = gateway(request)
    try:
        caller.require(Action.SETTINGS_READ, slug=slug)
        tenant = await tenancy(request).tenant(slug)
        rules = gw.prepaid.rules_for(tenant)
        limits = await gw.admission.current(tenant.id, rules.limits.tighten(tenant.limits), rules.included_tokens)
        may = {action.name.lower(): caller.may(action) for action in Action}
        usage = await tenant_usage(gw, tenant, period, group) if may["usage_read"] else None
        credits = await billing(request).credits(slug) if may["usage_read"] else []
        invoices = await billing(request).invoices(slug) if may["usage_read"] else []
        keys = await tenancy(request).keys(caller, slug) if may["keys_read"] or may["own_keys"] else []
        users = await tenancy(request).users(slug) if may["members_read"] else []
        templates = gw.templates.versions(tenant.id) if may["settings_read"] else []
    except GatewayError as error:
        return refused(caller, error)
    return page(
        "tenant.html", caller=caller, tenant=tenant, limits=limits, usage=usage, credits=credits, invoices=invoices,
        keys=keys, users=users, templates=templates, may=may, periods=list(PERIODS), groupings=GROUPINGS, now=utcnow(),
        currency=gw.settings.currency, thresholds=gw.settings.alert_thresholds,
        models=sorted(gw.catalog.model_names()), plans=[p.name for p in gw.settings.catalog.plans],
        seeded_pins=sorted(gw.catalog.pins.get(tenant.slug, ())),
    )  # fmt: skip


@router.get("/ui/audit")
async def platform_audit(request: Request, caller: Viewer) -> Response:
    return await audit_page(request, caller, None)


@router.get("/ui/tenants/{slug}/audit")
async def tenant_audit(slug: str, request: Request, caller: Viewer) -> Response:
    return await audit_page(request, caller, slug)


async def audit_page(request: Request, caller: Caller | None, slug: str | None) -> Response:
    """The last 30 days of changes, newest first (the platform's, or one tenant's)."""
    if caller is None:
        return to_login(request)
    try:
        caller.require(Action.AUDIT_READ, slug=slug)
        if slug is None and not caller.operator:
            raise PermissionDenied("The platform's audit log is for operators; your tenant's is on its dashboard.")
        tenant_id = None if slug is None else (await tenancy(request).tenant(slug)).id
        until = utcnow() + timedelta(seconds=1)
        events = await audit_log(request).events(tenant_id, until - timedelta(days=30), until, AUDIT_LIMIT)
    except GatewayError as error:
        return refused(caller, error)
    return page("audit.html", caller=caller, slug=slug, events=events, limit=AUDIT_LIMIT)


@router.get("/ui/chat")
async def own_chat(request: Request, caller: Viewer) -> Response:
    if caller is None:
        return to_login(request)
    if caller.operator:
        return refused(caller, PermissionDenied("The chat is for a tenant's members; log in as one to chat."))
    return RedirectResponse(f"/ui/tenants/{caller.tenant_slug}/chat", status_code=303)


@router.get("/ui/tenants/{slug}/chat")
async def chat_page(slug: str, request: Request, caller: Viewer) -> Response:
    if caller is None:
        return to_login(request)
    try:
        chatter(caller, slug)
        tenant = await tenancy(request).tenant(slug)
    except GatewayError as error:
        return refused(caller, error)
    gw = gateway(request)
    now = utcnow()
    prices = {}
    for model in gw.catalog.model_names():
        price = gw.prices.at(model, now)
        if price is not None:
            prices[model] = [price.input_micros_per_1m, price.output_micros_per_1m]
    return page("chat.html", caller=caller, slug=slug, prices=prices, currency=gw.settings.currency,
                kept=tenant.log_content)  # fmt: skip


def chatter(caller: Caller, slug: str) -> None:
    """Chat spends the tenant's money under a key of the person's own: members who may hold keys."""
    caller.require(Action.OWN_KEYS, Action.KEYS_WRITE, slug=slug)
    if caller.user_id is None:
        raise PermissionDenied("The chat is for a tenant's members; log in as one to chat.")


@router.post("/ui/tenants/{slug}/chat-key")
async def chat_key(slug: str, request: Request, caller: Annotated[Caller, Depends(authenticated)]) -> dict[str, str]:
    """A key for this browser's chat, bound to the person (usage is theirs), lasting 12 hours; the
    person's previous chat keys are revoked, so at most one is live."""
    chatter(caller, slug)
    service = tenancy(request)
    name = "chat (web UI)"
    for key in await service.keys(caller, slug):
        if key.name == name and key.user_id == caller.user_id and key.revoked_at is None:
            await service.revoke_key(caller, key.id)
    created = await service.create_key(
        caller, slug, name=name, user_id=caller.user_id, expires_at=utcnow() + CHAT_KEY_TTL
    )
    return {"key": created.plaintext, "key_id": created.key.id}
