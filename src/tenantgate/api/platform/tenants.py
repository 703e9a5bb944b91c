"""Platform realm: the list of tenants, and creating and deleting them."""

from __future__ import annotations

from fastapi import APIRouter

from tenantgate.api.deps import PlatformWriter, SettingsReader, Tenancy
from tenantgate.api.schemas import TenantIn, TenantOut
from tenantgate.domain import Limits
from tenantgate.tenancy import replace_set_fields

router = APIRouter(tags=["tenants"])


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


@router.delete("/tenants/{slug}")
async def delete_tenant(slug: str, caller: PlatformWriter, service: Tenancy) -> dict[str, object]:
    """Delete the tenant and everything of it (users, keys, tokens, usage, invoices, credits, settings);
    its keys stop working at once. The audit log keeps what was done to it. Cannot be undone."""
    return {"deleted": slug, "rows": await service.delete_tenant(caller, slug)}
