"""The management API and the UI as one FastAPI app. app.py has it assembled in a worker thread once
the data plane serves (`assembled`), then gives it the services its handlers call (`furnish`)."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.types import Message, Scope

from tenantgate import __version__
from tenantgate.access.audit import AuditLog
from tenantgate.access.login import LoginService, Passwords, SessionCodec
from tenantgate.access.sso import IssuerClient, OidcSignOn
from tenantgate.access.tokens import AccessService
from tenantgate.api import API, public, session
from tenantgate.api.deps import ERRORS
from tenantgate.api.errors import on_gateway_error, on_http_exception, on_unexpected, on_validation_error
from tenantgate.api.platform import billing, declarative, incidents, operators, pools, tenants
from tenantgate.api.tenant import keys, members, templates, upstream_keys, usage
from tenantgate.api.tenant import settings as tenant_settings
from tenantgate.billing.invoicing import Billing
from tenantgate.declarative import Applier
from tenantgate.errors import GatewayError
from tenantgate.incidents import StatusBoard
from tenantgate.operations import Operations
from tenantgate.runtime import ManagementParts
from tenantgate.tenancy import TenancyService
from tenantgate.ui import assets, bulk, pages, request_log
from tenantgate.ui.views import MonthTotals, PublicStatus


def assembled() -> FastAPI:
    """Every route, assembled: FastAPI builds an included router's routes on the first request that
    reaches it (half a second here), and a request for a path no route serves reaches every router.
    Made off the event loop, with these imports, so requests in flight do not stall meanwhile."""
    api = FastAPI(title="tenantgate", version=__version__)
    api.include_router(public.router)
    api.include_router(pools.metrics_router)
    api.include_router(pages.router)
    api.include_router(assets.router)
    api.include_router(request_log.router)
    api.include_router(bulk.router)
    routers = (
        session.router,
        *(tenants.router, operators.router, pools.router, billing.router, declarative.router, incidents.router),
        *(tenant_settings.router, members.router, keys.router, usage.router, upstream_keys.router),
        templates.router,
    )
    for router in routers:
        api.include_router(router, prefix=API, responses=ERRORS)
    api.add_exception_handler(GatewayError, on_gateway_error)
    api.add_exception_handler(HTTPException, on_http_exception)
    api.add_exception_handler(RequestValidationError, on_validation_error)
    api.add_exception_handler(Exception, on_unexpected)
    asyncio.run(_visit_every_router(api))  # this thread's own loop: no state is touched yet
    return api


async def _visit_every_router(api: FastAPI) -> None:
    """One request for a path no route serves, straight to the app: it reaches every router."""
    path = "/.start-up"
    scope: Scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"", "headers": [],
        "server": ("start-up", 80), "client": None,
    }  # fmt: skip
    statuses: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await api(scope, receive, send)
    if statuses != [404]:
        raise RuntimeError(f"the management API answered its start-up visit with {statuses}, not [404]")


def furnish(api: FastAPI, parts: ManagementParts, idp_http: IssuerClient) -> None:
    """Give the handlers the services they call (api/deps.py reads them from `api.state`);
    `idp_http` carries single sign-on's calls to identity providers."""
    gw = parts.gw
    settings, store, catalog = gw.settings, gw.store, gw.catalog
    plans = {p.name: p for p in settings.catalog.plans}
    api.state.gateway = gw
    audit = api.state.audit = AuditLog(store)
    targets = frozenset(d.name for d in catalog.deployments) | frozenset(d.pool for d in catalog.deployments)
    tenancy = TenancyService(
        store, gw.keys, frozenset(plans), audit, frozenset(catalog.model_names()), pin_targets=targets
    )
    api.state.tenancy = tenancy
    api.state.status_board = StatusBoard(store, audit)
    api.state.month_totals = MonthTotals(store, settings.rollup_every_s)
    api.state.public_status = PublicStatus()
    api.state.applier = Applier(tenancy, store, catalog.models_of_provider)
    sessions = SessionCodec(parts.session_secret, settings.session_ttl_s)
    api.state.access = AccessService(store, store, audit, settings.admin_token, sessions)
    api.state.login = LoginService(store, Passwords(store), sessions, audit)
    api.state.sso = OidcSignOn(store, parts.box, sessions, audit, parts.session_secret, idp_http)
    api.state.rollups = parts.rollups
    api.state.operations = Operations(store, gw.prices, gw.scheduler, audit, settings.usage_retention_days, gw.bus)
    api.state.billing = Billing(
        store,
        plans.get,
        parts.rollups,
        audit=audit,
        currency=settings.currency,
        credit_changed=gw.refresh_prepaid,
        notifier=parts.notifier,
        thresholds=settings.alert_thresholds,
    )
    api.state.response_cache = parts.answers
