"""What management handlers receive: the services built at start-up, and the authenticated caller,
already checked against the one action the endpoint needs (`tenantgate.access.roles`)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from pydantic import BaseModel

from tenantgate.access.audit import AuditLog
from tenantgate.access.callers import Caller
from tenantgate.access.login import LoginService, Session
from tenantgate.access.roles import Action
from tenantgate.access.sso import OidcSignOn
from tenantgate.access.tokens import AccessService
from tenantgate.billing.invoicing import Billing
from tenantgate.billing.rollups import RollupJob
from tenantgate.operations import Operations
from tenantgate.runtime import Gateway
from tenantgate.tenancy import TenancyService


def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def tenancy(request: Request) -> TenancyService:
    service: TenancyService = request.app.state.tenancy
    return service


def billing(request: Request) -> Billing:
    service: Billing = request.app.state.billing
    return service


def rollups(request: Request) -> RollupJob:
    job: RollupJob = request.app.state.rollups
    return job


def access(request: Request) -> AccessService:
    service: AccessService = request.app.state.access
    return service


def login_service(request: Request) -> LoginService:
    service: LoginService = request.app.state.login
    return service


def operations(request: Request) -> Operations:
    service: Operations = request.app.state.operations
    return service


def audit_log(request: Request) -> AuditLog:
    log: AuditLog = request.app.state.audit
    return log


def sign_on(request: Request) -> OidcSignOn:
    service: OidcSignOn = request.app.state.sso
    return service


SignOn = Annotated[OidcSignOn, Depends(sign_on)]


def public_url(request: Request, route: str, slug: str) -> str:
    """The address of a named route as the world reaches it (behind a proxy: `public_url`)."""
    path = str(request.app.url_path_for(route, slug=slug))
    base = gateway(request).settings.public_url or str(request.base_url)
    return base.rstrip("/") + path


SESSION_COOKIE = "tenantgate_session"
CSRF_COOKIE = "tenantgate_csrf"  # readable by the page, which repeats it as X-CSRF-Token
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def start_session(request: Request, response: Response, cookie: str, session: Session) -> None:
    """Hand the browser its session (HttpOnly) and the CSRF token its pages repeat on changes."""
    settings = gateway(request).settings
    ttl, secure = int(settings.session_ttl_s), settings.secure_cookies
    response.set_cookie(SESSION_COOKIE, cookie, max_age=ttl, httponly=True, samesite="lax", secure=secure)
    response.set_cookie(CSRF_COOKIE, session.csrf, max_age=ttl, samesite="strict", secure=secure)


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


async def authenticated(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_csrf_token: Annotated[str | None, Header(description="With a login session: the session's CSRF token")] = None,
) -> Caller:
    """The caller, by its bearer token or its login session (whose changes carry the CSRF token)."""
    session = request.cookies.get(SESSION_COOKIE)
    changes = request.method not in SAFE_METHODS
    return await access(request).authenticate(authorization, client_address(request), session, x_csrf_token, changes)


def allow(*actions: Action) -> Callable[..., Awaitable[Caller]]:
    """The caller, if its role holds one of `actions` (for a tenant member: on the `{slug}` in the path)."""

    async def check(request: Request, caller: Annotated[Caller, Depends(authenticated)]) -> Caller:
        slug = request.path_params.get("slug")
        caller.require(*actions, slug=None if slug is None else str(slug))
        return caller

    return check


async def self_or_members_writer(request: Request, caller: Annotated[Caller, Depends(authenticated)]) -> Caller:
    """The `{user_id}` of the path itself, or a caller who manages the `{slug}` tenant's members."""
    slug = str(request.path_params["slug"])
    if caller.user_id is None or caller.user_id != request.path_params.get("user_id"):
        caller.require(Action.MEMBERS_WRITE, slug=slug)
    caller.require(Action.SETTINGS_READ, slug=slug)
    return caller


async def scraper(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    """A Prometheus scrape: the metrics token, or a caller who may read the platform."""
    token = gateway(request).settings.metrics_token
    if token is not None and authorization is not None:
        expected = b"Bearer " + token.get_secret_value().encode()
        if hmac.compare_digest(authorization.encode(), expected):
            return
    caller = await authenticated(request, authorization, request.headers.get("x-csrf-token"))
    caller.require(Action.PLATFORM_READ)


Scraper = Depends(scraper)
Anyone = Annotated[Caller, Depends(authenticated)]
SelfOrMembersWriter = Annotated[Caller, Depends(self_or_members_writer)]  # the handler's service decides
PlatformReader = Annotated[Caller, Depends(allow(Action.PLATFORM_READ))]
PlatformWriter = Annotated[Caller, Depends(allow(Action.PLATFORM_WRITE))]
SettingsReader = Annotated[Caller, Depends(allow(Action.SETTINGS_READ))]
SettingsWriter = Annotated[Caller, Depends(allow(Action.SETTINGS_WRITE))]
MembersReader = Annotated[Caller, Depends(allow(Action.MEMBERS_READ))]
MembersWriter = Annotated[Caller, Depends(allow(Action.MEMBERS_WRITE))]
KeysReader = Annotated[Caller, Depends(allow(Action.KEYS_READ, Action.OWN_KEYS))]  # own keys: the service filters
KeysWriter = Annotated[Caller, Depends(allow(Action.KEYS_WRITE, Action.OWN_KEYS))]
UsageReader = Annotated[Caller, Depends(allow(Action.USAGE_READ))]
AuditReader = Annotated[Caller, Depends(allow(Action.AUDIT_READ))]
Tenancy = Annotated[TenancyService, Depends(tenancy)]
Access = Annotated[AccessService, Depends(access)]
Audit = Annotated[AuditLog, Depends(audit_log)]
Login = Annotated[LoginService, Depends(login_service)]


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str | None
    param: str | None


class ErrorOut(BaseModel):
    """Every management error, in the OpenAI shape."""

    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": meaning}
    for status, meaning in (
        (400, "The input is wrong; `param` names what"),
        (401, "No valid token or session"),
        (403, "The caller's role may not do this"),
        (404, "No such record, or one of another tenant"),
        (409, "It conflicts with what exists"),
        (503, "The database cannot be reached"),
    )
}
