"""Wire models of the admin API (the OpenAPI document is generated from these)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from tenantgate.domain import ApiKey, Role, Tenant, TenantMode, TenantStatus, UsageTotals, User


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantIn(_In):
    slug: str = Field(description="Unique lowercase name, used in URLs and the CLI")
    name: str | None = Field(default=None, description="Display name; defaults to the slug")
    plan: str = "starter"
    mode: TenantMode = TenantMode.ENTERPRISE
    region: str | None = Field(default=None, description="Data-residency region; only deployments there serve it")
    allowed_models: list[str] | None = Field(default=None, description="Models the tenant may use; null = all")


class TenantPatch(_In):
    name: str | None = None
    plan: str | None = None
    status: TenantStatus | None = None
    region: str | None = None


class TenantOut(BaseModel):
    id: str
    slug: str
    name: str
    mode: TenantMode
    plan: str
    region: str | None
    status: TenantStatus
    allowed_models: list[str] | None
    created_at: datetime

    @classmethod
    def of(cls, t: Tenant) -> TenantOut:
        models = None if t.allowed_models is None else list(t.allowed_models)
        return cls(
            id=t.id, slug=t.slug, name=t.name, mode=t.mode, plan=t.plan, region=t.region,
            status=t.status, allowed_models=models, created_at=t.created_at,
        )  # fmt: skip


class UserIn(_In):
    email: str = Field(min_length=3, max_length=320)
    name: str = ""
    role: Role = Role.DEVELOPER


class UserOut(BaseModel):
    id: str
    email: str
    name: str
    role: Role
    created_at: datetime

    @classmethod
    def of(cls, u: User) -> UserOut:
        return cls(id=u.id, email=u.email, name=u.name, role=u.role, created_at=u.created_at)


class KeyIn(_In):
    name: str = "default"
    models: list[str] | None = Field(default=None, description="Model allowlist for this key; null = tenant's")
    user_id: str | None = None
    expires_at: datetime | None = None


class KeyOut(BaseModel):
    id: str
    tenant_id: str
    name: str
    user_id: str | None
    models: list[str] | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, k: ApiKey) -> KeyOut:
        return cls(
            id=k.id, tenant_id=k.tenant_id, name=k.name, user_id=k.user_id,
            models=None if k.models is None else list(k.models), expires_at=k.expires_at,
            revoked_at=k.revoked_at, last_used_at=k.last_used_at, created_at=k.created_at,
        )  # fmt: skip


class KeyCreated(KeyOut):
    key: str = Field(description="The full key. Shown once; only its hash is stored.")


class ModelUsage(BaseModel):
    model: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, t: UsageTotals) -> ModelUsage:
        return cls(
            model=t.model, requests=t.requests, errors=t.errors, prompt_tokens=t.prompt_tokens,
            completion_tokens=t.completion_tokens, total_tokens=t.prompt_tokens + t.completion_tokens,
        )  # fmt: skip


class UsageOut(BaseModel):
    tenant: str
    since: datetime
    until: datetime
    models: list[ModelUsage]
    total: ModelUsage
