"""Tenant realm: API keys, created (secret shown once), listed, rotated and revoked."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from tenantgate.api.deps import KeysReader, KeysWriter, Tenancy
from tenantgate.api.schemas import KeyCreated, KeyIn, KeyOut
from tenantgate.domain import Limits
from tenantgate.tenancy import replace_set_fields

router = APIRouter(tags=["api keys"])


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
        allowed_ips=None if body.allowed_ips is None else tuple(body.allowed_ips),
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
