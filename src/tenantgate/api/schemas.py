"""Wire models of the admin API (the OpenAPI document is generated from these)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from ipaddress import ip_network
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from tenantgate.domain import ApiKey, Limits, Role, Tenant, TenantMode, TenantStatus, User
from tenantgate.settings import in_utc

# Printable text of bounded length: no control characters (a NUL breaks PostgreSQL, a newline makes
# a name that looks like another).
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
Email = Annotated[
    str,
    StringConstraints(
        min_length=3, max_length=254, pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$"
    ),
]
MOST = 10**15  # requests or tokens: more than any real limit, and within a 64-bit column


def sane_moment(value: datetime, name: str) -> datetime:
    """A moment the API accepts: with a timezone (returned in UTC) and in the years 2000 to 2999, so
    that ranges around it can be computed. ValueError naming `name` otherwise."""
    moment = in_utc(value, name)
    if not 2000 <= moment.year <= 2999:
        raise ValueError(f"{name} must be in the years 2000 to 2999")
    return moment


Moment = Annotated[datetime, AfterValidator(lambda value: sane_moment(value, "the time"))]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitsIn(_In):
    """Limits to set; omitted fields are left alone, 0 clears an override."""

    rpm: int | None = Field(default=None, ge=0, le=MOST)
    tpm: int | None = Field(default=None, ge=0, le=MOST)
    concurrency: int | None = Field(default=None, ge=0, le=1_000_000)
    daily_tokens: int | None = Field(default=None, ge=0, le=MOST)
    monthly_tokens: int | None = Field(default=None, ge=0, le=MOST)
    budget_usd: float | None = Field(default=None, ge=0, le=1_000_000_000)

    def to_limits(self) -> Limits:
        budget = None if self.budget_usd is None else round(self.budget_usd * 1_000_000)
        return Limits(self.rpm, self.tpm, self.concurrency, self.daily_tokens, self.monthly_tokens, budget)


def limits_out(limits: Limits) -> dict[str, int | float]:
    values: dict[str, int | float] = {k: v for k, v in dataclasses.asdict(limits).items() if v is not None}
    if "budget_micros" in values:
        values["budget_usd"] = values.pop("budget_micros") / 1_000_000
    return values


class TenantIn(_In):
    slug: str = Field(max_length=63, description="Unique lowercase name, used in URLs and the CLI")
    name: Name | None = Field(default=None, description="Display name; defaults to the slug")
    plan: Name = "starter"
    mode: TenantMode = TenantMode.ENTERPRISE
    region: Name | None = Field(default=None, description="Data-residency region; only deployments there serve it")
    allowed_models: list[Name] | None = Field(
        default=None, max_length=1000, description="Models the tenant may use; null = all"
    )
    limits: LimitsIn = Field(default_factory=LimitsIn, description="Overrides on top of the plan")


class TenantPatch(_In):
    name: Name | None = None
    plan: Name | None = None
    status: Literal[TenantStatus.ACTIVE, TenantStatus.SUSPENDED] | None = None  # deletion is DELETE
    region: Name | None = None
    limits: LimitsIn | None = None
    allowed_models: list[Name] | None = Field(
        default=None, min_length=1, max_length=1000,
        description="Models the tenant may use; null = every model (operators only; owners may only narrow the list)",
    )  # fmt: skip

    log_content: bool | None = Field(
        default=None, description="Keep prompts and answers in the tenant's request log (owners decide)"
    )
    pins: list[Name] | None = Field(
        default=None, max_length=100,
        description="Pools or deployments its requests must use; [] = none (operators only)",
    )  # fmt: skip
    response_cache_ttl_s: float | None = Field(
        default=None, ge=0, le=7 * 86400,
        description="Answer repeated identical requests from the tenant's response cache for this many seconds; "
        "0 = never; null = as its plan says (owners may only turn it off or back to the plan's)",
    )  # fmt: skip

    @property
    def response_cache(self) -> tuple[float | None] | None:
        """The tenant's choice of response cache, if the request makes one (null is one: the plan's)."""
        return (self.response_cache_ttl_s,) if "response_cache_ttl_s" in self.model_fields_set else None

    @property
    def all_models(self) -> bool:
        """`allowed_models` was sent as null: lift the allowlist (absent leaves it as it is)."""
        return "allowed_models" in self.model_fields_set and self.allowed_models is None


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
    log_content: bool = Field(description="Prompts and answers are kept in the tenant's request log")
    pins: list[str] | None = Field(description="Pins stored for it ([] none); null: the configuration file's apply")
    response_cache_ttl_s: float | None = Field(description="Its own choice of response cache; null: its plan's")
    created_at: datetime

    @classmethod
    def of(cls, t: Tenant) -> TenantOut:
        models = None if t.allowed_models is None else list(t.allowed_models)
        return cls(
            id=t.id, slug=t.slug, name=t.name, mode=t.mode, plan=t.plan, region=t.region,
            status=t.status, allowed_models=models, limits=limits_out(t.limits), log_content=t.log_content,
            pins=None if t.pins is None else list(t.pins), response_cache_ttl_s=t.response_cache_ttl_s,
            created_at=t.created_at,
        )  # fmt: skip


class UserIn(_In):
    email: Email = Field(description="The person's email address, e.g. dev@acme.example")
    name: Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")] = ""
    role: Role = Role.DEVELOPER
    limits: LimitsIn = Field(default_factory=LimitsIn, description="Limits across all of this user's keys")


class UserPatch(_In):
    name: Name | None = None
    role: Role | None = None
    limits: LimitsIn | None = None
    active: bool | None = Field(default=None, description="false: its keys, tokens and logins stop; true: again")


class UserOut(BaseModel):
    id: str
    email: str
    name: str
    role: Role
    limits: dict[str, int | float]
    created_at: datetime
    active: bool

    @classmethod
    def of(cls, u: User) -> UserOut:
        return cls(id=u.id, email=u.email, name=u.name, role=u.role, limits=limits_out(u.limits),
                   created_at=u.created_at, active=u.active)  # fmt: skip


def _network(value: str) -> str:
    try:
        return str(ip_network(value, strict=False))
    except ValueError:
        raise ValueError(f"'{value}' is not an IP network (e.g. 10.0.0.0/8) or address") from None


Network = Annotated[str, StringConstraints(max_length=64), AfterValidator(_network)]


class KeyIn(_In):
    name: Name = "default"
    models: list[Name] | None = Field(
        default=None, max_length=1000, description="Model allowlist for this key; null = tenant's"
    )
    user_id: Name | None = None
    expires_at: Moment | None = Field(default=None, description="With a timezone, e.g. 2027-01-01T00:00:00Z")
    limits: LimitsIn = Field(default_factory=LimitsIn)
    allowed_ips: list[Network] | None = Field(
        default=None, min_length=1, max_length=100,
        description="Networks (CIDR, or single addresses) its requests must come from; null = anywhere",
    )  # fmt: skip


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
    allowed_ips: list[str] | None
    created_at: datetime

    @classmethod
    def of(cls, k: ApiKey) -> KeyOut:
        return cls(
            id=k.id, tenant_id=k.tenant_id, name=k.name, user_id=k.user_id,
            models=None if k.models is None else list(k.models), expires_at=k.expires_at,
            revoked_at=k.revoked_at, last_used_at=k.last_used_at, limits=limits_out(k.limits),
            allowed_ips=None if k.allowed_ips is None else list(k.allowed_ips), created_at=k.created_at,
        )  # fmt: skip


class KeyCreated(KeyOut):
    key: str = Field(description="The full key. Shown once; only its hash is stored.")


Password = Annotated[str, StringConstraints(min_length=12, max_length=1024)]  # a new one; signing in takes any
