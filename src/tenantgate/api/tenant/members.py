"""Tenant realm: the tenant's users, their passwords and management tokens, and the tenant's audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from tenantgate.api.deps import (
    Access,
    Audit,
    AuditReader,
    Login,
    MembersReader,
    MembersWriter,
    SelfOrMembersWriter,
    SettingsReader,
    Tenancy,
)
from tenantgate.api.queries import AuditOut, Limit, Since, Until, audit_events
from tenantgate.api.schemas import Password, UserIn, UserOut, UserPatch, _In
from tenantgate.api.tokens import TokenCreated, TokenIn, TokenOut
from tenantgate.domain import Limits
from tenantgate.tenancy import replace_set_fields

router = APIRouter(tags=["tenant members"])


@router.post("/tenants/{slug}/users", status_code=201)
async def add_user(slug: str, body: UserIn, caller: MembersWriter, service: Tenancy) -> UserOut:
    limits = replace_set_fields(Limits(), body.limits.to_limits())
    return UserOut.of(await service.add_user(caller, slug, body.email, body.name, body.role, limits))


@router.patch("/tenants/{slug}/users/{user_id}")
async def update_user(slug: str, user_id: str, body: UserPatch, caller: MembersWriter, service: Tenancy) -> UserOut:
    limits = None if body.limits is None else body.limits.to_limits()
    user = await service.update_user(
        caller, slug, user_id, role=body.role, name=body.name, limits=limits, active=body.active
    )
    return UserOut.of(user)


@router.delete("/tenants/{slug}/users/{user_id}")
async def delete_user(slug: str, user_id: str, caller: MembersWriter, service: Tenancy) -> dict[str, object]:
    """Delete the user and its management tokens, revoke the keys bound to it; usage already recorded
    keeps its id. A tenant's last owner cannot be deleted."""
    revoked = await service.delete_user(caller, slug, user_id)
    return {"deleted": user_id, "revoked_keys": [k.id for k in revoked]}


@router.get("/tenants/{slug}/users")
async def list_users(slug: str, _: MembersReader, service: Tenancy) -> list[UserOut]:
    return [UserOut.of(u) for u in await service.users(slug)]


@router.post("/tenants/{slug}/users/{user_id}/tokens", status_code=201)
async def create_user_token(
    slug: str, user_id: str, body: TokenIn, caller: SelfOrMembersWriter, access: Access, service: Tenancy
) -> TokenCreated:
    """A personal token acting as the user (with the user's role, whatever it becomes): for the user
    itself, or made by an Owner or operator. The secret is in this answer only."""
    tenant, user = await service.user(slug, user_id)
    return TokenCreated.issued(await access.create_user_token(caller, tenant, user, body.name, body.expires_at))


@router.get("/tenants/{slug}/tokens")
async def list_tenant_tokens(
    slug: str, caller: SettingsReader, access: Access, service: Tenancy,
    user_id: Annotated[str | None, Query(max_length=32)] = None,
) -> list[TokenOut]:  # fmt: skip
    """The tenant's management tokens (of one user, if given); anyone may list their own."""
    tenant = await service.tenant(slug)
    return [TokenOut.of(t) for t in await access.tokens(caller, tenant, user_id)]


@router.get("/tenants/{slug}/audit")
async def tenantaudit_events(
    slug: str, _: AuditReader, audit: Audit, service: Tenancy, since: Since = None, until: Until = None,
    limit: Limit = 1000,
) -> list[AuditOut]:  # fmt: skip
    """Every change in the tenant, newest first."""
    tenant = await service.tenant(slug)
    return await audit_events(audit, tenant.id, since, until, limit)


class PasswordIn(_In):
    password: Password


@router.put("/tenants/{slug}/users/{user_id}/password", status_code=204)
async def set_password(
    slug: str, user_id: str, body: PasswordIn, caller: SelfOrMembersWriter, service: Login, tenancy: Tenancy
) -> None:
    """Set one's own password, or (Owners, operators) a member's; at least 12 characters."""
    tenant, user = await tenancy.user(slug, user_id)
    await service.set_password(caller, tenant, user, body.password)
