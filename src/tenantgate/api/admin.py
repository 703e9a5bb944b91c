"""Management API: tenants, users and keys, for operators and, within their tenant, its members."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request

from tenantgate.api.admin_schemas import (
    KeyCreated,
    KeyIn,
    KeyOut,
    TenantIn,
    TenantOut,
    TenantPatch,
    UserIn,
    UserOut,
    UserPatch,
)
from tenantgate.api.deps import (
    KeysReader,
    KeysWriter,
    MembersReader,
    MembersWriter,
    PlatformWriter,
    SettingsReader,
    SettingsWriter,
    Tenancy,
    gateway,
)
from tenantgate.domain import Limits
from tenantgate.tenancy import replace_set_fields

router = APIRouter(tags=["tenants, users and keys"])


@router.get("/tenants")
async def list_tenants(caller: SettingsReader, service: Tenancy) -> list[TenantOut]:
    """Every tenant for operators; a tenant's members see their own."""
    return [TenantOut.of(t) for t in await service.list_tenants() if caller.within(t.id)]


@router.post("/tenants", status_code=201)
async def create_tenant(body: TenantIn, caller: PlatformWriter, service: Tenancy) -> TenantOut:
    models = None if body.allowed_models is None else tuple(body.allowed_models)
    tenant = await service.create_tenant(
        caller,
        body.slug,
        name=body.name,
        plan=body.plan,
        mode=body.mode,
        region=body.region,
        allowed_models=models,
        limits=replace_set_fields(Limits(), body.limits.to_limits()),
    )
    return TenantOut.of(tenant)


@router.get("/tenants/{slug}")
async def get_tenant(slug: str, _: SettingsReader, service: Tenancy) -> TenantOut:
    return TenantOut.of(await service.tenant(slug))


@router.patch("/tenants/{slug}")
async def update_tenant(slug: str, body: TenantPatch, caller: SettingsWriter, service: Tenancy) -> TenantOut:
    """Operators change anything; a tenant's owners its name, tighter limits, fewer models and
    whether prompts and answers are kept."""
    limits = None if body.limits is None else body.limits.to_limits()
    models = None if body.allowed_models is None else tuple(body.allowed_models)
    tenant = await service.update_tenant(
        caller, slug, plan=body.plan, status=body.status, name=body.name, region=body.region, limits=limits,
        allowed_models=models, all_models=body.all_models, log_content=body.log_content,
        pins=None if body.pins is None else tuple(body.pins),
    )  # fmt: skip
    return TenantOut.of(tenant)


@router.delete("/tenants/{slug}")
async def delete_tenant(slug: str, caller: PlatformWriter, service: Tenancy) -> dict[str, object]:
    """Delete the tenant and everything of it (users, keys, tokens, usage, invoices, credits, settings);
    its keys stop working at once. The audit log keeps what was done to it. Cannot be undone."""
    return {"deleted": slug, "rows": await service.delete_tenant(caller, slug)}


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


@router.post("/tenants/{slug}/keys", status_code=201)
async def create_key(slug: str, body: KeyIn, caller: KeysWriter, service: Tenancy) -> KeyCreated:
    """The secret is in this answer only. A Developer's keys are bound to its own user."""
    models = None if body.models is None else tuple(body.models)
    created = await service.create_key(
        caller,
        slug,
        name=body.name,
        models=models,
        user_id=body.user_id,
        expires_at=body.expires_at,
        limits=replace_set_fields(Limits(), body.limits.to_limits()),
    )
    return KeyCreated(**KeyOut.of(created.key).model_dump(), key=created.plaintext)


@router.get("/tenants/{slug}/keys")
async def list_keys(slug: str, caller: KeysReader, service: Tenancy) -> list[KeyOut]:
    """The tenant's keys (never a secret); a Developer sees its own."""
    return [KeyOut.of(k) for k in await service.keys(caller, slug)]


@router.post("/keys/{key_id}/revoke")
async def revoke_key(key_id: str, caller: KeysWriter, service: Tenancy) -> KeyOut:
    return KeyOut.of(await service.revoke_key(caller, key_id))


@router.post("/keys/{key_id}/rotate", status_code=201)
async def rotate_key(
    key_id: str, caller: KeysWriter, service: Tenancy,
    grace_s: Annotated[int, Query(ge=0, le=30 * 86_400, description="Seconds the old secret keeps working")] = 3600,
) -> KeyCreated:  # fmt: skip
    """A new secret for the key — same id, models and limits — shown once; the old secret is accepted
    for `grace_s` more seconds (0: rejected at once), so clients can be switched without an outage."""
    created = await service.rotate_key(caller, key_id, timedelta(seconds=grace_s))
    return KeyCreated(**KeyOut.of(created.key).model_dump(), key=created.plaintext)


@router.get("/tenants/{slug}/limits")
async def tenant_limits(slug: str, request: Request, _: SettingsReader, service: Tenancy) -> dict[str, object]:
    """The tenant's effective limits (plan tightened by overrides), current use and resets."""
    gw = gateway(request)
    tenant = await service.tenant(slug)
    rules = gw.prepaid.rules_for(tenant)
    rows = await gw.admission.current(tenant.id, rules.limits.tighten(tenant.limits), rules.included_tokens)
    body: dict[str, object] = {"tenant": slug, "plan": tenant.plan, "limits": rows}
    if (in_force := gw.prepaid.plan_for(tenant)) != tenant.plan:
        body["limits_of_plan"] = in_force  # until the plan's prepaid balance is there
    return body


@router.get("/tenants/{slug}/notifications")
async def tenant_notifications(
    slug: str, request: Request, _: SettingsReader, service: Tenancy
) -> list[dict[str, str]]:
    """What the tenant was told, e.g. that its plan's included tokens for the month are used."""
    tenant = await service.tenant(slug)
    found = await gateway(request).store.list_notifications(tenant.id)
    return [{"kind": n.kind, "period": n.period, "message": n.message, "at": n.created_at.isoformat()} for n in found]
