"""Records shared by storage, services and the request path. Plain frozen dataclasses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network
from typing import Any


class TenantMode(StrEnum):
    ENTERPRISE = "enterprise"
    RETAIL = "retail"


class TenantStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DELETED = "deleted"  # a tombstone: its data is gone, the row tells every instance's key cache


class Role(StrEnum):
    OWNER = "owner"
    DEVELOPER = "developer"
    ANALYST = "analyst"
    READ_ONLY = "read_only"


@dataclass(frozen=True, slots=True)
class Limits:
    """None means unlimited. Money is integer micro-dollars."""

    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None
    daily_tokens: int | None = None
    monthly_tokens: int | None = None
    budget_micros: int | None = None
    monthly_gpu_ms: int | None = None  # GPU time attributed to the requests (plans with included GPU-minutes)

    def tighten(self, other: Limits) -> Limits:
        """The tighter of two limit sets, field by field."""
        merged = {}
        for spec in fields(self):
            mine, theirs = getattr(self, spec.name), getattr(other, spec.name)
            merged[spec.name] = theirs if mine is None else mine if theirs is None else min(mine, theirs)
        return Limits(**merged)

    @property
    def unlimited(self) -> bool:
        return all(getattr(self, name) is None for name in LIMIT_NAMES)


LIMIT_NAMES = tuple(spec.name for spec in fields(Limits))  # read once: `fields()` is slow, and asked per request


@dataclass(frozen=True, slots=True)
class QueueTerms:
    """How a tenant's requests wait when deployments are busy: from its plan."""

    weight: float = 1.0  # share of contended capacity
    timeout_s: float = 30.0
    max_waiting: int = 100  # per deployment
    priority: int = 0  # engine hint, lower first
    concurrency: int | None = None  # plans that queue over their concurrency: the scheduler holds it


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    slug: str
    name: str
    mode: TenantMode
    plan: str
    region: str | None
    status: TenantStatus
    allowed_models: tuple[str, ...] | None
    created_at: datetime
    updated_at: datetime
    limits: Limits = Limits()  # overrides on top of the plan; the tighter value applies
    log_content: bool = False  # the tenant keeps its prompts and answers in its request log
    pins: tuple[str, ...] | None = None  # pools or deployments it must use; () none; None: as the config says
    response_cache_ttl_s: float | None = None  # its own choice of response cache: None the plan's, 0 none


@dataclass(frozen=True, slots=True)
class User:
    id: str
    tenant_id: str
    email: str
    name: str
    role: Role
    created_at: datetime
    limits: Limits = Limits()
    updated_at: datetime | None = None
    deactivated_at: datetime | None = None  # its keys, tokens and logins stop; its records stay

    @property
    def active(self) -> bool:
        return self.deactivated_at is None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key. `id` is the public id inside `tg-<id>-<secret>`; only the secret's SHA-256 is kept."""

    id: str
    tenant_id: str
    name: str
    secret_hash: str
    user_id: str | None
    models: tuple[str, ...] | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime
    updated_at: datetime
    limits: Limits = Limits()
    previous_secret_hash: str | None = None  # after a rotation: the old secret, accepted until...
    previous_valid_until: datetime | None = None  # ...the end of its grace period
    allowed_ips: tuple[str, ...] | None = None  # the networks (CIDR) its requests must come from; None anywhere

    def accepts(self, secret_matches: Callable[[str], bool], now: datetime) -> bool:
        """Whether a presented secret is this key's, or its previous one within the grace period."""
        if secret_matches(self.secret_hash):
            return True
        previous, until = self.previous_secret_hash, self.previous_valid_until
        return previous is not None and until is not None and now < until and secret_matches(previous)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: resolved from a key on every data-plane request."""

    tenant_id: str
    tenant_slug: str
    key_id: str
    user_id: str | None
    plan: str
    region: str | None
    allowed_models: frozenset[str] | None  # tenant ∩ key; None = everything in the catalog
    tenant_limits: Limits = Limits()  # plan tightened by the tenant's overrides
    key_limits: Limits = Limits()
    user_limits: Limits = Limits()  # when the key is bound to a user
    allowed_pools: frozenset[str] | None = None  # from the plan; None = every pool
    included_tokens: int | None = None  # soft/overage plans: monthly tokens that trigger a notice, not a block
    queue: QueueTerms = QueueTerms()
    ttft_slo_ms: float | None = None  # the plan's time-to-first-token target
    log_content: bool = False  # keep this request's prompt and answer (the tenant opted in)
    pins: frozenset[str] | None = None  # the tenant's pins as stored (None: the configuration's apply)
    cache_salt: str | None = None  # set on engines that take one, so tenants never share a prefix cache
    response_cache_ttl_s: float | None = None  # the plan keeps answers this long in the tenant's cache
    networks: tuple[IPv4Network | IPv6Network, ...] | None = None  # the key's allowed networks; None anywhere


REFUSED_STATUS = 429  # a limit, a quota or a full queue refused the attempt: counted apart from errors
CLIENT_CLOSED = 499  # nginx's convention for "client closed the connection"


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    estimated: bool = False  # counted by the gateway (a cut stream), not reported by the engine

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class UsageEvent:
    request_id: str
    tenant_id: str
    key_id: str
    user_id: str | None
    model: str
    deployment: str | None
    endpoint: str
    status: int
    error_type: str | None
    usage: Usage
    ttft_ms: float | None
    latency_ms: float
    created_at: datetime
    queue_wait_ms: float | None = None  # time in the fair queue before dispatch
    pool: str | None = None
    gpu_seconds: float = 0.0  # this request's share of its deployment's busy GPU time
    cost_micros: int = 0  # what the tenant is charged, at the price in force when it ran
    price_version: str | None = None  # the price version that produced `cost_micros`
    ttft_slo_met: bool | None = None  # a stream of a plan with a TTFT target: was its first token in time
    cache_hit: bool = False  # answered from the tenant's response cache: no tokens, no engine
    saved_micros: int = 0  # a cache hit: what the answer cost when it was first made, at today's price


@dataclass(frozen=True, slots=True)
class UpstreamKey:
    """A tenant's own API key for one deployment (bring your own key), sealed at rest."""

    tenant_id: str
    deployment: str
    sealed_key: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    """A tenant's prompt, versioned: messages with {{variables}} that requests fill in by name."""

    tenant_id: str
    name: str
    version: int
    messages: tuple[dict[str, Any], ...]
    created_at: datetime
    created_by: str
    deleted_at: datetime | None = None  # a deleted version: unusable, its number not given again


@dataclass(frozen=True, slots=True)
class RequestContent:
    """A request's prompt and answer, kept for tenants that opted in (bounded; see metering/content.py)."""

    request_id: str
    tenant_id: str
    created_at: datetime
    request: str  # the body the client sent
    answer: str  # the answer's text (a stream's deltas joined), or the upstream's body if it was no answer


@dataclass(frozen=True, slots=True)
class RequestFilter:
    """Which of a tenant's requests its request log shows; None matches any."""

    model: str | None = None
    key_id: str | None = None
    user_id: str | None = None
    request_id: str | None = None
    failed_only: bool = False
    older_than: tuple[datetime, str] | None = None  # the last line of a page: (time, request id)

    def matches(self, event: UsageEvent) -> bool:
        return (
            (self.older_than is None or (event.created_at, event.request_id) < self.older_than)
            and (self.model is None or event.model == self.model)
            and (self.key_id is None or event.key_id == self.key_id)
            and (self.user_id is None or event.user_id == self.user_id)
            and (self.request_id is None or event.request_id == self.request_id)
            and (not self.failed_only or event.status >= 400)
        )


@dataclass(frozen=True, slots=True)
class Price:
    """One version of a model's price, in force from `effective_from` until the next version.

    Integer micro-units of the installation's currency per 1M tokens, and per GPU-hour."""

    id: str
    model: str
    effective_from: datetime
    input_micros_per_1m: int
    output_micros_per_1m: int
    cached_micros_per_1m: int
    gpu_hour_micros: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A usage event the database refused, kept with the reason so no usage is silently lost."""

    request_id: str
    reason: str
    payload: str  # the event as JSON
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Notification:
    """Something a tenant's admins should hear about, e.g. a soft cap reached; once per period."""

    id: str
    tenant_id: str
    kind: str
    period: str
    message: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class KeyChanges:
    """What changed since a watermark: lets every instance refresh its key cache."""

    keys: tuple[ApiKey, ...] = ()
    tenants: tuple[Tenant, ...] = field(default=())
    users: tuple[User, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class ManagementToken:
    """A token for the management API (`tgm-<id>-<secret>`, only the secret's SHA-256 kept). Bound to a
    tenant user (it acts with that user's current role) or, with `platform_role`, to the platform."""

    id: str
    name: str
    secret_hash: str
    created_at: datetime
    tenant_id: str | None = None
    user_id: str | None = None
    platform_role: str | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One change made through the management API, the CLI or `apply`: append-only."""

    id: str
    at: datetime
    actor: str  # who, as named by its caller: a token and its user, the admin token, a session
    actor_role: str
    action: str  # e.g. "key.rotate"
    target: str  # what was changed, e.g. "key 1a2b3c4d5e6f"
    tenant_id: str | None = None  # None: a platform-wide change
    before: dict[str, object] | None = None
    after: dict[str, object] | None = None
    source: str = ""  # the client's address


@dataclass(frozen=True, slots=True)
class Operator:
    """A person who runs the platform (platform-admin or platform-viewer); outside every tenant."""

    id: str
    email: str
    name: str
    role: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Credential:
    """A password (argon2id hash) of a user or an operator, and its failed attempts."""

    subject_id: str
    password_hash: str
    failed_logins: int
    locked_until: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SsoConfig:
    """A tenant's OpenID Connect sign-on: who its issuer is, and which claim values make which role."""

    tenant_id: str
    issuer: str
    client_id: str
    client_secret_sealed: str  # encrypted at rest; the API never returns it
    role_claim: str
    role_map: dict[str, str]
    default_role: str | None
    updated_at: datetime


class IncidentState(StrEnum):
    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Incident:
    """What the operator tells everyone on the status page about trouble with the service."""

    id: str
    title: str
    message: str
    state: IncidentState
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None = None
