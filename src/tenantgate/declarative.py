"""Declarative configuration: `tenantgate apply -f tenants.yaml` and `tenantgate export`.

A document names tenants and, in each, its users and keys; applying it creates what is missing and
changes what differs, never deletes, and says what it did ("no changes" when nothing differs).
Besides its own shape it takes the multi-tenant proxy configuration operators already write (a
`tenants` map with `api_key`, `providers`, `rate_limit.requests_per_minute`, `models`,
`billing_plan`); an `api_key` given there is imported, stored hashed, so clients keep their keys.
Every change goes through the tenancy service, so it is checked and audited like any other."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints, model_validator

from tenantgate.access.callers import Caller
from tenantgate.api.schemas import Email, LimitsIn, Moment, Name, Network, _In, limits_out
from tenantgate.auth.keys import imported_key_id
from tenantgate.domain import Limits, Role, Tenant, TenantMode
from tenantgate.errors import InvalidRequest
from tenantgate.storage.base import TenancyStore
from tenantgate.tenancy import TenancyService, replace_set_fields

ForeignKey = Annotated[str, StringConstraints(min_length=8, max_length=512, pattern=r"^[\x21-\x7e]+$")]
IMPORTED = "imported"  # the name of a key brought in from another gateway's `api_key`


class UserSpec(_In):
    email: Email
    name: Name | None = None
    role: Role = Role.DEVELOPER
    limits: LimitsIn | None = None


class KeySpec(_In):
    name: Name = "default"
    models: list[Name] | None = Field(default=None, max_length=1000)
    user: Email | None = Field(default=None, description="Bind the key to the user with this e-mail")
    api_key: ForeignKey | None = Field(default=None, description="An existing key to import (stored hashed)")
    expires_at: Moment | None = None
    limits: LimitsIn | None = None
    allowed_ips: list[Network] | None = Field(
        default=None, min_length=1, max_length=100, description="Networks its requests must come from"
    )


class RateLimitSpec(_In):
    requests_per_minute: int | None = Field(default=None, ge=1, le=10**9)
    tokens_per_minute: int | None = Field(default=None, ge=1, le=10**15)
    concurrency: int | None = Field(default=None, ge=1, le=1_000_000)


class TenantSpec(_In):
    name: Name | None = None
    plan: Name | None = None
    mode: TenantMode | None = None
    region: Name | None = None
    allowed_models: list[Name] | None = Field(default=None, max_length=1000)
    limits: LimitsIn | None = None
    pins: list[Name] | None = Field(default=None, max_length=100)  # pools or deployments; [] none
    users: list[UserSpec] = Field(default_factory=list, max_length=10_000)
    keys: list[KeySpec] = Field(default_factory=list, max_length=10_000)
    # the multi-tenant proxy configuration's fields
    api_key: ForeignKey | None = None
    billing_plan: Name | None = None
    models: list[Name] | None = Field(default=None, max_length=1000)
    providers: list[Name] | None = Field(default=None, max_length=100)
    rate_limit: RateLimitSpec | None = None

    @model_validator(mode="after")
    def _one_name_each(self) -> TenantSpec:
        if self.plan is not None and self.billing_plan is not None and self.plan != self.billing_plan:
            raise ValueError("give the plan once: 'plan' or 'billing_plan'")
        if self.allowed_models is not None and self.models is not None:
            raise ValueError("give the models once: 'allowed_models' or 'models'")
        return self


class Document(BaseModel):
    tenants: dict[Annotated[str, StringConstraints(min_length=1, max_length=63)], TenantSpec] = Field(max_length=10_000)


@dataclass
class Plan:
    """What applying a document changes, as lines a person reads, and the steps that do it."""

    changes: list[str] = field(default_factory=list)
    steps: list[Callable[[], Any]] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)  # "tenant/key name" -> a new key, shown once


def _limits(spec: TenantSpec) -> Limits | None:
    limits = None if spec.limits is None else spec.limits.to_limits()
    if spec.rate_limit is not None:
        rate = spec.rate_limit
        proxy = Limits(rpm=rate.requests_per_minute, tpm=rate.tokens_per_minute, concurrency=rate.concurrency)
        limits = proxy if limits is None else replace_set_fields(limits, proxy)
    return limits


def _shown(limits: Limits) -> str:
    return ", ".join(f"{k}={v}" for k, v in limits_out(limits).items()) or "none"


class Applier:
    def __init__(
        self, tenancy: TenancyService, store: TenancyStore, models_of_provider: Callable[[str], frozenset[str]]
    ) -> None:  # fmt: skip
        self._tenancy = tenancy
        self._store = store
        self._models_of_provider = models_of_provider

    def _models(self, slug: str, spec: TenantSpec) -> tuple[str, ...] | None:
        models = spec.allowed_models if spec.allowed_models is not None else spec.models
        if spec.providers is None:
            return None if models is None else tuple(models)
        served: set[str] = set()
        for provider in spec.providers:
            found = self._models_of_provider(provider)
            if not found:
                raise InvalidRequest(f"tenants.{slug}.providers: no deployment here uses provider '{provider}'.",
                                     param=f"tenants.{slug}.providers")  # fmt: skip
            served |= found
        return tuple(sorted(served if models is None else served & set(models)))

    async def plan(self, by: Caller, document: Document) -> Plan:
        plan = Plan()
        for slug, spec in document.tenants.items():
            await self._tenant(by, plan, slug, spec)
        return plan

    async def apply(self, by: Caller, document: Document, dry_run: bool) -> Plan:
        plan = await self.plan(by, document)
        if not dry_run:
            for step in plan.steps:
                await step()
        return plan

    async def _tenant(self, by: Caller, plan: Plan, slug: str, spec: TenantSpec) -> None:
        tenant = await self._store.get_tenant_by_slug(slug)
        models, limits = self._models(slug, spec), _limits(spec)
        plan_name = spec.plan or spec.billing_plan
        if tenant is None:
            plan.changes.append(f"+ tenant {slug} (plan {plan_name or 'starter'})")
            plan.steps.append(lambda: self._tenancy.create_tenant(
                by, slug, name=spec.name, plan=plan_name or "starter", mode=spec.mode or TenantMode.ENTERPRISE,
                region=spec.region, allowed_models=models, limits=replace_set_fields(Limits(), limits or Limits()),
            ))  # fmt: skip
            if spec.pins is not None:
                plan.changes.append(f"~ tenant {slug}: pins → {', '.join(spec.pins) or 'none'}")
                plan.steps.append(lambda: self._tenancy.update_tenant(by, slug, pins=tuple(spec.pins or ())))
            existing_users: dict[str, str] = {}
        else:
            self._tenant_changes(by, plan, tenant, spec, plan_name, models, limits)
            existing_users = {u.email: u.role.value for u in await self._store.list_users(tenant.id)}
        for user in spec.users:
            self._user(by, plan, slug, user, existing_users)
        keys = list(spec.keys) + ([KeySpec(name=IMPORTED, api_key=spec.api_key)] if spec.api_key else [])
        for key in keys:
            await self._key(by, plan, slug, tenant, key)

    def _tenant_changes(self, by: Caller, plan: Plan, tenant: Tenant, spec: TenantSpec, plan_name: str | None,
                        models: tuple[str, ...] | None, limits: Limits | None) -> None:  # fmt: skip
        diffs = []
        for label, wanted, now in (("name", spec.name, tenant.name), ("plan", plan_name, tenant.plan),
                                   ("region", spec.region, tenant.region)):  # fmt: skip
            if wanted is not None and wanted != now:
                diffs.append(f"{label} {now} → {wanted}")
        if models is not None and tuple(sorted(models)) != tuple(sorted(tenant.allowed_models or ())):
            diffs.append(f"models {', '.join(tenant.allowed_models or ('all',))} → {', '.join(models)}")
        pins = None if spec.pins is None else tuple(spec.pins)
        # No pins stored means the configuration file's pins apply; an empty list stored means none.
        if pins is not None and (tenant.pins is None or sorted(pins) != sorted(tenant.pins)):
            was = ", ".join(tenant.pins or ()) or (
                "the configuration file's" if tenant.pins is None and not pins else "none"
            )
            diffs.append(f"pins {was} → {', '.join(pins) or 'none'}")
        merged = None if limits is None else replace_set_fields(tenant.limits, limits)
        if merged is not None and merged != tenant.limits:
            diffs.append(f"limits {_shown(tenant.limits)} → {_shown(merged)}")
        if not diffs:
            return
        plan.changes.append(f"~ tenant {tenant.slug}: " + "; ".join(diffs))
        plan.steps.append(lambda: self._tenancy.update_tenant(
            by, tenant.slug, name=spec.name, plan=plan_name, region=spec.region, limits=limits, allowed_models=models,
            pins=pins,
        ))  # fmt: skip

    def _user(self, by: Caller, plan: Plan, slug: str, user: UserSpec, existing: dict[str, str]) -> None:
        limits = None if user.limits is None else user.limits.to_limits()
        if user.email not in existing:
            plan.changes.append(f"+ user {user.email} in {slug} ({user.role.value})")
            overrides = replace_set_fields(Limits(), limits or Limits())
            name = user.name or user.email
            plan.steps.append(lambda: self._tenancy.add_user(by, slug, user.email, name, user.role, overrides))
            return
        if existing[user.email] != user.role.value:
            plan.changes.append(f"~ user {user.email} in {slug}: role {existing[user.email]} → {user.role.value}")
            plan.steps.append(lambda: self._set_role(by, slug, user.email, user.role))

    async def _set_role(self, by: Caller, slug: str, email: str, role: Role) -> None:
        tenant = await self._tenancy.tenant(slug)
        user = next(u for u in await self._store.list_users(tenant.id) if u.email == email)
        await self._tenancy.update_user(by, slug, user.id, role=role)

    async def _key(self, by: Caller, plan: Plan, slug: str, tenant: Tenant | None, key: KeySpec) -> None:
        live = [] if tenant is None else [k for k in await self._store.list_keys(tenant.id) if k.revoked_at is None]
        if key.api_key is not None:
            key_id = imported_key_id(key.api_key)
            if any(k.id == key_id for k in live):
                return
            shown = f"{key.api_key[:4]}…{key.api_key[-4:]}"
            plan.changes.append(f"+ key {key.name} in {slug}, imported ({shown})")
        elif any(k.name == key.name for k in live):
            return
        else:
            plan.changes.append(f"+ key {key.name} in {slug} (its secret is shown once)")
        plan.steps.append(lambda: self._create_key(by, plan, slug, key))

    async def _create_key(self, by: Caller, plan: Plan, slug: str, key: KeySpec) -> None:
        user_id = None
        if key.user is not None:
            tenant = await self._tenancy.tenant(slug)
            found = next((u for u in await self._store.list_users(tenant.id) if u.email == key.user), None)
            if found is None:
                raise InvalidRequest(
                    f"tenants.{slug}.keys: no user {key.user} in {slug}.", param=f"tenants.{slug}.keys"
                )
            user_id = found.id
        limits = replace_set_fields(Limits(), key.limits.to_limits() if key.limits else Limits())
        models = None if key.models is None else tuple(key.models)
        created = await self._tenancy.create_key(
            by, slug, name=key.name, models=models, user_id=user_id, expires_at=key.expires_at, limits=limits,
            imported=key.api_key, allowed_ips=None if key.allowed_ips is None else tuple(key.allowed_ips),
        )  # fmt: skip
        if key.api_key is None:
            plan.secrets[f"{slug}/{key.name}"] = created.plaintext

    async def export(self) -> dict[str, Any]:
        """Every tenant with its users and keys, in the shape `apply` reads (never a secret)."""
        tenants: dict[str, Any] = {}
        for tenant in await self._store.list_tenants():
            users = await self._store.list_users(tenant.id)
            emails = {u.id: u.email for u in users}
            keys = [k for k in await self._store.list_keys(tenant.id) if k.revoked_at is None]
            tenants[tenant.slug] = _drop_empty({
                "name": tenant.name, "plan": tenant.plan, "mode": tenant.mode.value, "region": tenant.region,
                "allowed_models": None if tenant.allowed_models is None else list(tenant.allowed_models),
                "limits": limits_out(tenant.limits), "pins": None if tenant.pins is None else list(tenant.pins),
                "users": [_drop_empty({"email": u.email, "name": u.name, "role": u.role.value,
                                       "limits": limits_out(u.limits)}) for u in users],
                "keys": [_drop_empty({"name": k.name, "models": None if k.models is None else list(k.models),
                                      "user": emails.get(k.user_id or ""), "limits": limits_out(k.limits),
                                      "expires_at": k.expires_at.isoformat() if k.expires_at else None,
                                      "allowed_ips": None if k.allowed_ips is None else list(k.allowed_ips)})
                         for k in keys],
            })  # fmt: skip
        return {"tenants": tenants}


def _drop_empty(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, "", {}, [])}
