"""Management API: who am I, management tokens, and the audit log."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry
from pydantic import BaseModel, Field

from tenantgate.access.roles import PlatformRole, grants
from tenantgate.access.tokens import CreatedToken
from tenantgate.api.admin_schemas import Moment, Name, _In
from tenantgate.api.admin_usage import aware, window
from tenantgate.api.deps import (
    Access,
    Anyone,
    Audit,
    AuditReader,
    PlatformReader,
    PlatformWriter,
    SelfOrMembersWriter,
    SettingsReader,
    SettingsWriter,
    Tenancy,
    gateway,
)
from tenantgate.auth.assertions import issuer_of
from tenantgate.clock import utcnow
from tenantgate.domain import AuditEvent, ManagementToken
from tenantgate.errors import InvalidRequest

router = APIRouter(tags=["access"])


class Me(BaseModel):
    name: str
    role: str
    tenant: str | None
    user_id: str | None
    permissions: list[str]


@router.get("/me")
async def me(caller: Anyone) -> Me:
    """The caller as the management API sees it: its role, tenant and what it may do."""
    allowed = sorted(action.name.lower() for action in grants(caller.role))
    return Me(name=caller.name, role=caller.role.value, tenant=caller.tenant_slug, user_id=caller.user_id,
              permissions=allowed)  # fmt: skip


class TokenIn(_In):
    name: Name = "default"
    expires_at: Moment | None = None


class PlatformTokenIn(TokenIn):
    role: PlatformRole = PlatformRole.VIEWER


class TokenOut(BaseModel):
    id: str
    name: str
    role: str | None  # platform tokens; a user's token acts with the user's current role
    tenant_id: str | None
    user_id: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, t: ManagementToken) -> TokenOut:
        return cls(id=t.id, name=t.name, role=t.platform_role, tenant_id=t.tenant_id, user_id=t.user_id,
                   created_at=t.created_at, expires_at=t.expires_at, revoked_at=t.revoked_at)  # fmt: skip


class TokenCreated(TokenOut):
    token: str  # shown once

    @classmethod
    def issued(cls, created: CreatedToken) -> TokenCreated:
        return cls(**TokenOut.of(created.token).model_dump(), token=created.plaintext)


@router.post("/tokens", status_code=201)
async def create_platform_token(body: PlatformTokenIn, caller: PlatformWriter, access: Access) -> TokenCreated:
    """A token for automation that acts on the platform with `role`; the secret is in this answer only."""
    return TokenCreated.issued(await access.create_platform_token(caller, body.name, body.role, body.expires_at))


@router.get("/tokens")
async def list_platform_tokens(caller: PlatformReader, access: Access) -> list[TokenOut]:
    return [TokenOut.of(t) for t in await access.tokens(caller, None)]


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


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(token_id: str, caller: Anyone, access: Access) -> TokenOut:
    """Revoke a token: one's own, a tenant member's (Owners) or any (operators)."""
    return TokenOut.of(await access.revoke(caller, token_id))


class AuditOut(BaseModel):
    id: str
    at: datetime
    actor: str
    actor_role: str
    action: str
    target: str
    tenant_id: str | None
    before: dict[str, object] | None
    after: dict[str, object] | None
    source: str

    @classmethod
    def of(cls, e: AuditEvent) -> AuditOut:
        return cls(id=e.id, at=e.at, actor=e.actor, actor_role=e.actor_role, action=e.action, target=e.target,
                   tenant_id=e.tenant_id, before=e.before, after=e.after, source=e.source)  # fmt: skip


Since = Annotated[datetime | None, Query(description="From (with a timezone); default 30 days ago")]
Until = Annotated[datetime | None, Query(description="To (with a timezone); default now")]
Limit = Annotated[int, Query(ge=1, le=10_000)]


async def _audit(audit: Audit, tenant_id: str | None, since: datetime | None, until: datetime | None, limit: int
                 ) -> list[AuditOut]:  # fmt: skip
    end = aware(until, "until") if until else utcnow() + timedelta(seconds=1)
    start, end = window(aware(since, "since") if since else end - timedelta(days=30), end)
    return [AuditOut.of(e) for e in await audit.events(tenant_id, start, end, limit)]


@router.get("/audit")
async def platform_audit(
    _: PlatformReader, audit: Audit, since: Since = None, until: Until = None, limit: Limit = 1000
) -> list[AuditOut]:
    """Every change on the platform, newest first."""
    return await _audit(audit, None, since, until, limit)


@router.get("/tenants/{slug}/audit")
async def tenant_audit(
    slug: str, _: AuditReader, audit: Audit, service: Tenancy, since: Since = None, until: Until = None,
    limit: Limit = 1000,
) -> list[AuditOut]:  # fmt: skip
    """Every change in the tenant, newest first."""
    tenant = await service.tenant(slug)
    return await _audit(audit, tenant.id, since, until, limit)


class ProxyKeyIn(_In):
    public_jwk: dict[str, object] = Field(
        max_length=20, description="The public key (JWK: OKP Ed25519, EC P-256 or RSA) the tenant's proxy signs with"
    )


@router.put("/tenants/{slug}/proxy-key")
async def set_proxy_key(slug: str, body: ProxyKeyIn, caller: SettingsWriter, service: Tenancy, audit: Audit,
                        request: Request) -> dict[str, object]:  # fmt: skip
    """Register the key the tenant's own proxy (`serve --mode tenant-proxy`) signs end-user
    assertions with; requests carrying one are metered and limited per end user."""
    tenant = await service.tenant(slug)
    jwk = public_jwk(body.public_jwk)
    await gateway(request).store.set_proxy_key(tenant.id, jwk)
    await audit.record(caller, "proxy_key.set", f"proxy key of {slug}", tenant_id=tenant.id, after=jwk)
    return {"tenant": slug, "public_jwk": jwk, "issuer": issuer_of(slug)}


@router.delete("/tenants/{slug}/proxy-key", status_code=204)
async def delete_proxy_key(slug: str, caller: SettingsWriter, service: Tenancy, audit: Audit, request: Request) -> None:
    tenant = await service.tenant(slug)
    await gateway(request).store.set_proxy_key(tenant.id, None)
    await audit.record(caller, "proxy_key.delete", f"proxy key of {slug}", tenant_id=tenant.id)


def public_jwk(jwk: dict[str, object]) -> dict[str, object]:
    """The key as registered: a public asymmetric key joserfc can read; 400 otherwise."""
    if jwk.get("kty") not in ("OKP", "EC", "RSA") or "d" in jwk:
        raise InvalidRequest("public_jwk must be a public OKP, EC or RSA key (no private part).", param="public_jwk")
    try:
        key = JWKRegistry.import_key(jwk)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise InvalidRequest(f"public_jwk is not a key: {exc}.", param="public_jwk") from None
    return dict(key.as_dict(private=False))
