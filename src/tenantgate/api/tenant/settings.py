"""Tenant realm: the tenant's own settings (limits, models, webhook, retention, proxy key, single sign-on)."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, StringConstraints

from tenantgate.api.deps import Audit, SettingsReader, SettingsWriter, SignOn, Tenancy, billing, gateway, public_url
from tenantgate.api.schemas import TenantOut, TenantPatch, _In
from tenantgate.auth.assertions import issuer_of
from tenantgate.domain import Role, SsoConfig
from tenantgate.errors import InvalidRequest

router = APIRouter(tags=["tenant settings"])


@router.get("/tenants/{slug}")
async def get_tenant(slug: str, _: SettingsReader, service: Tenancy) -> TenantOut:
    return TenantOut.of(await service.tenant(slug))


@router.patch("/tenants/{slug}")
async def update_tenant(slug: str, body: TenantPatch, caller: SettingsWriter, service: Tenancy) -> TenantOut:
    """Operators change anything; a tenant's owners its name, tighter limits, fewer models, whether
    prompts and answers are kept, and whether its response cache is off or as its plan says."""
    limits = None if body.limits is None else body.limits.to_limits()
    models = None if body.allowed_models is None else tuple(body.allowed_models)
    tenant = await service.update_tenant(
        caller, slug, plan=body.plan, status=body.status, name=body.name, region=body.region, limits=limits,
        allowed_models=models, all_models=body.all_models, log_content=body.log_content,
        pins=None if body.pins is None else tuple(body.pins), response_cache=body.response_cache,
    )  # fmt: skip
    return TenantOut.of(tenant)


class Purged(BaseModel):
    forgotten: int = Field(description="Answers the tenant's response cache no longer holds")


@router.delete("/tenants/{slug}/response-cache")
async def purge_response_cache(slug: str, request: Request, caller: SettingsWriter, service: Tenancy,
                               audit: Audit) -> Purged:  # fmt: skip
    """Forget every answer kept in the tenant's response cache (in Redis: on every instance; kept in
    process: on the instance that takes this call)."""
    tenant = await service.tenant(slug)
    forgotten = await request.app.state.response_cache.purge(tenant.id)  # StoreUnavailable if Redis fails
    await audit.record(caller, "response_cache.purged", slug, tenant_id=tenant.id, after={"forgotten": forgotten})
    return Purged(forgotten=forgotten)


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
    from joserfc.errors import JoseError  # here: joserfc, with `cryptography`, is 11 MiB few instances need
    from joserfc.jwk import JWKRegistry

    try:
        key = JWKRegistry.import_key(jwk)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise InvalidRequest(f"public_jwk is not a key: {exc}.", param="public_jwk") from None
    return dict(key.as_dict(private=False))


class WebhookIn(BaseModel):
    url: str = Field(
        min_length=8, max_length=2000, pattern=r"^https?://[^\s\x00-\x1f\x7f]+$", description="http(s) URL"
    )
    secret: str | None = Field(
        default=None, min_length=16, max_length=200, pattern=r"^[\x21-\x7e]+$",
        description="Printable ASCII, no spaces; generated when absent",
    )  # fmt: skip


class RetentionIn(BaseModel):
    days: int | None = Field(ge=1, le=3650, description="Days of raw usage events kept; null = the default")


@router.put("/tenants/{slug}/webhook")
async def set_webhook(slug: str, body: WebhookIn, request: Request, caller: SettingsWriter) -> dict[str, str]:
    """Where the tenant's alerts go; the signing secret is shown here only."""
    secret = body.secret or secrets.token_urlsafe(32)
    await billing(request).set_webhook(caller, slug, body.url, secret)
    return {"url": body.url, "secret": secret}


@router.delete("/tenants/{slug}/webhook", status_code=204)
async def delete_webhook(slug: str, request: Request, caller: SettingsWriter) -> None:
    await billing(request).delete_webhook(caller, slug)


@router.put("/tenants/{slug}/retention")
async def set_retention(slug: str, body: RetentionIn, request: Request, caller: SettingsWriter) -> dict[str, int]:
    await billing(request).set_retention(caller, slug, body.days)
    return {"days": body.days or gateway(request).settings.usage_retention_days}


Text = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=r"^[\x21-\x7e]+$")]


class SsoIn(_In):
    issuer: str = Field(
        max_length=2000, pattern=r"^https?://[\x21-\x7e]+$", description="The issuer URL, as in its tokens"
    )
    client_id: Text
    client_secret: Text
    role_claim: Text = Field(default="groups", description="The ID-token claim whose values map to roles")
    role_map: dict[Annotated[str, StringConstraints(min_length=1, max_length=200)], Role] = Field(
        default_factory=dict, max_length=100, description="Claim value -> role, e.g. {'llm-admins': 'owner'}"
    )
    default_role: Role | None = Field(default=None, description="For people no value maps; null refuses them")


class SsoOut(BaseModel):
    issuer: str
    client_id: str
    role_claim: str
    role_map: dict[str, str]
    default_role: str | None
    updated_at: datetime
    start_url: str  # where people of the tenant begin a sign-in

    @classmethod
    def of(cls, config: SsoConfig, start_url: str) -> SsoOut:
        return cls(issuer=config.issuer, client_id=config.client_id, role_claim=config.role_claim,
                   role_map=config.role_map, default_role=config.default_role, updated_at=config.updated_at,
                   start_url=start_url)  # fmt: skip


@router.put("/tenants/{slug}/sso")
async def set_sso(slug: str, body: SsoIn, request: Request, caller: SettingsWriter, tenancy: Tenancy,
                  service: SignOn) -> SsoOut:  # fmt: skip
    """Sign people of the tenant in through its issuer; the issuer's discovery document is read now.
    Register the `redirect_uri` …/sso/{slug}/callback with the issuer."""
    tenant = await tenancy.tenant(slug)
    config = await service.configure(caller, tenant, body.issuer, body.client_id, body.client_secret,
                                     body.role_claim, body.role_map, body.default_role)  # fmt: skip
    return SsoOut.of(config, public_url(request, "sso_start", slug))


@router.get("/tenants/{slug}/sso")
async def get_sso(slug: str, request: Request, _: SettingsReader, tenancy: Tenancy, service: SignOn) -> SsoOut:
    """The tenant's sign-on, without its client secret."""
    config = await service.config(await tenancy.tenant(slug))
    return SsoOut.of(config, public_url(request, "sso_start", slug))


@router.delete("/tenants/{slug}/sso", status_code=204)
async def delete_sso(slug: str, caller: SettingsWriter, tenancy: Tenancy, service: SignOn) -> None:
    await service.remove(caller, await tenancy.tenant(slug))
