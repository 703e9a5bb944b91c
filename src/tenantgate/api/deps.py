"""What management handlers receive: the services built at start-up, and the authenticated caller,
already checked against the one action the endpoint needs (`tenantgate.access.roles`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, Request

from tenantgate.access.audit import AuditLog
from tenantgate.access.callers import Caller
from tenantgate.access.roles import Action
from tenantgate.access.tokens import AccessService
from tenantgate.billing.invoicing import Billing
from tenantgate.billing.rollups import RollupJob
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


def audit_log(request: Request) -> AuditLog:
    log: AuditLog = request.app.state.audit
    return log


async def authenticated(request: Request, authorization: Annotated[str | None, Header()] = None) -> Caller:
    source = request.client.host if request.client else ""
    return await access(request).authenticate(authorization, source)


def allow(*actions: Action) -> Callable[..., Awaitable[Caller]]:
    """The caller, if its role holds one of `actions` (for a tenant member: on the `{slug}` in the path)."""

    async def check(request: Request, caller: Annotated[Caller, Depends(authenticated)]) -> Caller:
        slug = request.path_params.get("slug")
        caller.require(*actions, slug=None if slug is None else str(slug))
        return caller

    return check


Anyone = Annotated[Caller, Depends(authenticated)]  # the handler's service decides
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
