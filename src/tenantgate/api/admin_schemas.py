"""Wire models of the admin API (the OpenAPI document is generated from these)."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from tenantgate.domain import ApiKey, Limits, Role, Tenant, TenantMode, TenantStatus, User


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitsIn(_In):
    """Limits to set; omitted fields are left alone, 0 clears an override."""

    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)
    concurrency: int | None = Field(default=None, ge=0)
    daily_tokens: int | None = Field(default=None, ge=0)
    monthly_tokens: int | None = Field(default=None, ge=0)
    budget_usd: float | None = Field(default=None, ge=0)

    def to_limits(self) -> Limits:
        budget = None if self.budget_usd is None else round(self.budget_usd * 1_000_000)
        return Limits(self.rpm, self.tpm, self.concurrency, self.daily_tokens, self.monthly_tokens, budget)


def limits_out(limits: Limits) -> dict[str, int | float]:
    values: dict[str, int | float] = {k: v for k, v in dataclasses.asdict(limits).items() if v is not None}
    if "budget_micros" in values:
        values["budget_usd"] = values.pop("budget_micros") / 1_000_000
    return values


class TenantIn(_In):
    slug: str = Field(description="Unique lowercase name, used in URLs and the CLI")
    name: str | None = Field(default=None, description="Display name; defaults to the slug")
    plan: str = "starter"
    mode: TenantMode = TenantMode.ENTERPRISE
    region: str | None = Field(default=None, description="Data-residency region; only deployments there serve it")
    allowed_models: list[str] | None = Field(default=None, description="Models the tenant may use; null = all")
    limits: LimitsIn = Field(default_factory=LimitsIn, description="Overrides on top of the plan")


class TenantPatch(_In):
    name: str | None = None
    plan: str | None = None
    status: TenantStatus | None = None
    region: str | None = None
    limits: LimitsIn | None = None


class TenantOut(BaseModel):
    id: str
    slug: str
    name: str
    mode: TenantMode
    plan: str
    region: str | None
    status: TenantStatus
    allowed_models: list[str] | None
    limits: dict[str, int | float] = Field(description="The tenant's overrides (the plan supplies the rest)")
    created_at: datetime

    @classmethod
    def of(cls, t: Tenant) -> TenantOut:
        models = None if t.allowed_models is None else list(t.allowed_models)
        return cls(
            id=t.id, slug=t.slug, name=t.name, mode=t.mode, plan=t.plan, region=t.region,
            status=t.status, allowed_models=models, limits=limits_out(t.limits), created_at=t.created_at,
        )  # fmt: skip


class UserIn(_In):
    email: str = Field(min_length=3, max_length=320)
    name: str = ""
    role: Role = Role.DEVELOPER
    limits: LimitsIn = Field(default_factory=LimitsIn, description="Limits across all of this user's keys")


class UserPatch(_In):
    name: str | None = None
    role: Role | None = None
    limits: LimitsIn | None = None


class UserOut(BaseModel):
    id: str
    email: str
    name: str
    role: Role
    limits: dict[str, int | float]
    created_at: datetime

    @classmethod
    def of(cls, u: User) -> UserOut:
        return cls(
            id=u.id, email=u.email, name=u.name, role=u.role, limits=limits_out(u.limits), created_at=u.created_at
        )


class KeyIn(_In):
    name: str = "default"
    models: list[str] | None = Field(default=None, description="Model allowlist for this key; null = tenant's")
    user_id: str | None = None
    expires_at: datetime | None = None
    limits: LimitsIn = Field(default_factory=LimitsIn)


class KeyOut(BaseModel):
    id: str
    tenant_id: str
    name: str
    user_id: str | None
    models: list[str] | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    limits: dict[str, int | float]
    created_at: datetime

    @classmethod
    def of(cls, k: ApiKey) -> KeyOut:
        return cls(
            id=k.id, tenant_id=k.tenant_id, name=k.name, user_id=k.user_id,
            models=None if k.models is None else list(k.models), expires_at=k.expires_at,
            revoked_at=k.revoked_at, last_used_at=k.last_used_at, limits=limits_out(k.limits),
            created_at=k.created_at,
        )  # fmt: skip


class KeyCreated(KeyOut):
    key: str = Field(description="The full key. Shown once; only its hash is stored.")
