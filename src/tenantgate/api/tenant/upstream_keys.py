"""Tenant realm: the tenant's own API keys for deployments (bring your own key). A key is taken,
sealed and used; it is never shown again."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, StringConstraints

from tenantgate.access.upstream_keys import TenantUpstreamKeys, UpstreamKeyShown
from tenantgate.api.deps import SettingsReader, SettingsWriter, Tenancy, gateway
from tenantgate.api.schemas import _In

router = APIRouter(tags=["tenant settings"])
Secret = Annotated[str, StringConstraints(min_length=8, max_length=4096, pattern=r"^[\x21-\x7e]+$")]


class UpstreamKeyIn(_In):
    api_key: Secret = Field(description="The tenant's own API key for this deployment's provider")


class UpstreamKeyOut(BaseModel):
    deployment: str
    updated_at: datetime

    @classmethod
    def of(cls, shown: UpstreamKeyShown) -> UpstreamKeyOut:
        return cls(deployment=shown.deployment, updated_at=shown.updated_at)


def own_keys(request: Request) -> TenantUpstreamKeys:
    return gateway(request).upstream_keys


@router.get("/tenants/{slug}/upstream-keys")
async def list_upstream_keys(slug: str, request: Request, _: SettingsReader, tenancy: Tenancy) -> list[UpstreamKeyOut]:
    """The deployments the tenant brings its own key for (never the keys)."""
    return [UpstreamKeyOut.of(shown) for shown in own_keys(request).shown(await tenancy.tenant(slug))]


@router.put("/tenants/{slug}/upstream-keys/{deployment}")
async def set_upstream_key(
    slug: str, deployment: str, body: UpstreamKeyIn, request: Request, caller: SettingsWriter, tenancy: Tenancy
) -> UpstreamKeyOut:
    """The tenant's requests to this deployment use this key from now on, instead of the deployment's."""
    tenant = await tenancy.tenant(slug)
    return UpstreamKeyOut.of(await own_keys(request).set(caller, tenant, deployment, body.api_key))


@router.delete("/tenants/{slug}/upstream-keys/{deployment}", status_code=204)
async def delete_upstream_key(slug: str, deployment: str, request: Request, caller: SettingsWriter,
                              tenancy: Tenancy) -> None:  # fmt: skip
    """The tenant's requests to this deployment use the deployment's key again."""
    await own_keys(request).remove(caller, await tenancy.tenant(slug), deployment)
