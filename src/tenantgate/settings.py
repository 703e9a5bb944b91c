"""The one place that reads the environment and config files.

Precedence: explicit arguments (CLI flags) > `TENANTGATE_*` environment > YAML file > defaults.
Everything is validated at start-up and frozen; unknown keys in the YAML file are errors.
"""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tenantgate.deployment_settings import PoolConfig, Strict

MAX_PRICE = 1_000_000.0  # per 1M tokens, per GPU-hour or per month, in the installation's currency


def in_utc(value: datetime, name: str) -> datetime:
    """A moment that says its timezone, in UTC; a naive one is refused (ValueError naming the field)."""
    if value.tzinfo is None:
        raise ValueError(f"{name} needs a timezone, e.g. 2026-12-01T00:00:00Z")
    return value.astimezone(UTC)


class PlanConfig(Strict):
    """A commercial plan: the tenant-level limits every tenant on it starts from."""

    name: str
    display_name: str
    rpm: int | None = Field(default=None, ge=1, description="Requests per sliding minute")
    tpm: int | None = Field(default=None, ge=1, description="Tokens per sliding minute (reserved, then settled)")
    concurrency: int | None = Field(default=None, ge=1, description="Requests in flight at once")
    daily_tokens: int | None = Field(default=None, ge=1, description="Tokens per UTC day")
    monthly_tokens: int | None = Field(default=None, ge=1, description="Included tokens per UTC month")
    cap: Literal["soft", "hard", "overage"] = Field(
        default="hard",
        description="At the monthly cap: soft = allow and notify, hard = block, overage = allow and bill",
    )
    overage_usd_per_1k: float = Field(
        default=0.0, ge=0, le=MAX_PRICE, description="Price of 1k tokens past the monthly included ones (overage plans)"
    )
    overage_floor_usd: float = Field(
        default=0.0, ge=0, le=MAX_PRICE, description="Least overage billed in a month that has any (billing)"
    )
    monthly_fee_usd: float = Field(default=0.0, ge=0, le=MAX_PRICE, description="Subscription per month (invoices)")
    included_gpu_minutes: float | None = Field(
        default=None, ge=0, le=10**9, description="GPU-minutes per month included in the fee; past them is overage"
    )
    overage_usd_per_gpu_minute: float = Field(
        default=0.0, ge=0, le=MAX_PRICE, description="Price of a GPU-minute past the included ones"
    )
    prepaid_required_usd: float | None = Field(
        default=None,
        gt=0,
        le=MAX_PRICE,
        description="Prepaid credit a tenant must hold before this plan's limits apply",
    )
    until_prepaid: str | None = Field(
        default=None, description="The plan whose limits apply until that credit is there (required with it)"
    )
    usage_billing: Literal["included", "metered"] | None = Field(
        default=None,
        description="metered: usage billed per model at the model prices; included: usage is covered by the fee "
        "up to the included tokens or GPU-minutes, overage beyond (default: included when the plan includes any)",
    )
    burst_credits: int = Field(
        default=0, ge=0, description="Tokens a hard-capped tenant may use past its monthly tokens each month"
    )
    budget_usd: float | None = Field(default=None, gt=0, description="Monthly money budget")
    queue_weight: float = Field(default=1.0, gt=0, description="Share of contended capacity (scheduler)")
    response_cache_ttl_s: float | None = Field(
        default=None, gt=0, le=2_592_000, description="Answer repeated identical requests from the tenant's cache"
    )
    share_prefix_cache: bool = Field(default=False, description="No per-tenant cache_salt on vllm and sglang")
    ttft_slo_ms: float | None = Field(
        default=None, gt=0, le=3_600_000, description="Time-to-first-token target; attainment is reported per plan"
    )
    queue_timeout_s: float = Field(default=30.0, gt=0, description="Longest wait in the fair queue (scheduler)")
    queue_max: int = Field(default=100, ge=1, description="Requests a tenant may have waiting per deployment")
    over_concurrency: Literal["reject", "queue"] = Field(
        default="reject",
        description="A request past the tenant's concurrency: reject = 429 at once; queue = wait in the fair "
        "queue (bounded by queue_max and queue_timeout_s) until one of the tenant's requests ends",
    )
    priority: int = Field(default=0, description="Engine priority hint, lower runs first (deployments that opt in)")
    allowed_pools: tuple[str, ...] | None = Field(default=None, description="Pools this plan may use; null = all")

    @property
    def bills_usage_by_model(self) -> bool:
        if self.usage_billing is not None:
            return self.usage_billing == "metered"
        return self.monthly_tokens is None and self.included_gpu_minutes is None


DEFAULT_PLANS = (
    PlanConfig(
        name="starter", display_name="Starter", rpm=60, tpm=100_000, concurrency=4,
        daily_tokens=1_000_000, monthly_tokens=10_000_000, cap="hard", queue_weight=1, priority=2,
    ),
    PlanConfig(
        name="growth", display_name="Growth", rpm=600, tpm=1_000_000, concurrency=32,
        daily_tokens=20_000_000, monthly_tokens=200_000_000, cap="overage", queue_weight=2, priority=1,
    ),
    PlanConfig(
        name="scale", display_name="Scale", rpm=6_000, tpm=10_000_000, concurrency=256,
        monthly_tokens=2_000_000_000, cap="soft", queue_weight=4,
    ),
)  # fmt: skip


class ModelPrice(Strict):
    """One version of a model's price, in the installation's currency; budgets and invoices use it."""

    input_per_1m: float = Field(ge=0, le=MAX_PRICE)
    output_per_1m: float = Field(ge=0, le=MAX_PRICE)
    cached_per_1m: float | None = Field(default=None, ge=0, le=MAX_PRICE, description="null = the input price")
    per_gpu_hour: float = Field(default=0.0, ge=0, le=MAX_PRICE, description="Charged per GPU-hour a request used")
    effective_from: datetime = Field(
        default=datetime(1970, 1, 1, tzinfo=UTC), description="In force from this moment (with a timezone)"
    )

    @field_validator("effective_from")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return in_utc(value, "effective_from")


class CatalogConfig(Strict):
    """What the YAML file (`--config`) may contain."""

    pools: tuple[PoolConfig, ...] = ()
    aliases: dict[str, str] = Field(default_factory=dict, description="alias -> served model name")
    plans: tuple[PlanConfig, ...] = DEFAULT_PLANS
    prices: dict[str, ModelPrice | tuple[ModelPrice, ...]] = Field(
        default_factory=dict, description="served or alias name -> price, or its versions by effective date"
    )
    pins: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="tenant slug -> the pools or deployments its requests must use"
    )

    @model_validator(mode="after")
    def _unique_names(self) -> CatalogConfig:
        names = [d.name for p in self.pools for d in p.deployments]
        if len(names) != len(set(names)):
            raise ValueError("deployment names must be unique across pools")
        plans = {p.name for p in self.plans}
        for plan in self.plans:
            if (plan.prepaid_required_usd is None) != (plan.until_prepaid is None):
                raise ValueError(f"plans.{plan.name}: prepaid_required_usd and until_prepaid go together")
            if plan.until_prepaid is not None and plan.until_prepaid not in plans - {plan.name}:
                raise ValueError(f"plans.{plan.name}.until_prepaid: no other plan named {plan.until_prepaid!r}")
        known = set(names) | {p.name for p in self.pools}
        for tenant, targets in self.pins.items():
            unknown = [t for t in targets if t not in known]
            if unknown and self.pools:
                raise ValueError(f"pins.{tenant}: no pool or deployment named {', '.join(unknown)}")
        return self


def normalize_database_url(url: str) -> str:
    """Accept plain `sqlite:///` and `postgresql://` URLs and pick the async drivers."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url.removeprefix(prefix)
    return url


class Settings(BaseSettings):
    """Gateway settings; every field can be set as `TENANTGATE_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="TENANTGATE_", frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = Field(default=1, ge=1, le=256, description="Processes sharing the port (2+ need redis_url)")
    worker_ports_from: int | None = Field(default=None, ge=1, le=65535, description="Worker n also alone on this + n")
    shutdown_grace_s: int = Field(
        default=30, ge=0, le=3600,
        description="On stop, how long requests in flight may finish; streams still running then end "
        "with an error event, charged for what they delivered",
    )  # fmt: skip
    database_url: str = "sqlite+aiosqlite:///data/tenantgate.db"
    admin_token: SecretStr | None = Field(default=None, description="Platform-admin bearer token")
    metrics_token: SecretStr | None = Field(
        default=None, description="A bearer token good for GET /metrics only (for Prometheus; no admin rights)"
    )
    session_secret: SecretStr | None = Field(
        default=None, description="Signs login sessions; instances behind one address must share it "
        "(default: one kept in data_dir/session-secret)",
    )  # fmt: skip
    session_ttl_s: float = Field(default=12 * 3600, gt=0, le=30 * 86400, description="How long a login lasts")
    secure_cookies: bool = Field(default=False, description="Send session cookies over HTTPS only")
    secret_key: SecretStr | None = Field(
        default=None, description="Fernet key(s), comma-separated, that encrypt stored secrets (IdP client "
        "secrets, upstream keys); the first encrypts (default: one kept in data_dir/secret-key)",
    )  # fmt: skip
    public_url: str | None = Field(
        default=None, pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="The address people reach the gateway at (SSO redirects); default: as the request came",
    )  # fmt: skip
    config: Path | None = Field(default=None, description="YAML file with pools, deployments, aliases, plans")
    mode: Literal["gateway", "tenant-proxy"] = Field(
        default="gateway", description="tenant-proxy: run in a tenant's own network in front of a shared gateway"
    )
    shared_url: str | None = Field(
        default=None, pattern=r"^https?://[\x21-\x7e]+$", description="tenant-proxy: the shared gateway"
    )
    service_key: SecretStr | None = Field(
        default=None, description="tenant-proxy: the tenant's key at the shared gateway"
    )
    oidc_issuer: str | None = Field(default=None, description="tenant-proxy: the tenant's identity provider")
    oidc_audience: str | None = Field(default=None, description="tenant-proxy: the audience its users' tokens name")
    assertion_key: Path | None = Field(default=None, description="tenant-proxy: private JWK file signing assertions")
    proxy_tenant: str | None = Field(default=None, description="tenant-proxy: the tenant's slug at the shared gateway")
    upstreams: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="OpenAI-compatible base URLs, comma-separated; models discovered"
    )
    demo: bool = Field(default=False, description="Seed demo tenants and keys when the database is empty")
    data_dir: Path = Path("data")
    row_security: bool = Field(
        default=True, description="PostgreSQL: act as the role tenantgate_app, which row-level security binds "
        "(the database user must be allowed to SET ROLE to it; the migration creates it)",
    )  # fmt: skip
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    otel_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP collector for traces, e.g. http://collector:4318; off when unset"
    )
    otel_service_name: str = Field(default="tenantgate", description="service.name of the traces")
    log_format: Literal["text", "json"] = Field(default="text", description="Log lines as text or one JSON object each")
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="Least severe logged")
    header_timeout_s: float = Field(default=10.0, gt=0, le=300, description="Time a client has to send its headers")
    body_timeout_s: float = Field(default=30.0, gt=0, le=3600, description="Time a client has to send its body")
    idle_timeout_s: float = Field(default=5.0, gt=0, le=3600, description="An idle kept-alive connection is closed")
    max_connections: int = Field(default=4096, ge=16, description="Open client connections; more are refused 503")
    max_header_bytes: int = Field(default=64 * 1024, ge=1024, le=1 << 24, description="Request line and headers")
    max_headers: int = Field(default=100, ge=8, le=10_000, description="Header fields per request")
    upstream_connect_timeout_s: float = 5.0
    upstream_read_timeout_s: float = 300.0
    key_refresh_s: float = Field(default=1.0, gt=0, description="How often each instance polls for key changes")
    negative_key_ttl_s: float = Field(default=2.0, gt=0, description="How long an unknown key id stays cached")
    unlisted_key_lookups_per_s: float = Field(
        default=20.0, gt=0, le=10_000, description="Database lookups a second for key ids not yet polled"
    )
    key_guess_failures: int = Field(
        default=50, ge=0, le=1_000_000, description="Requests with keys that do not exist one address may send "
        "within key_guess_window_s before it is refused for key_guess_block_s (0: never)",
    )  # fmt: skip
    trusted_proxies: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = Field(
        default=(), description="Load balancers (addresses or CIDR networks, comma-separated) whose "
        "X-Forwarded-For names the client: its address is then the one key allowlists and guess "
        "blocking see",
    )  # fmt: skip
    key_guess_window_s: float = Field(default=10.0, gt=0, le=3600, description="See key_guess_failures")
    key_guess_block_s: float = Field(default=60.0, gt=0, le=86_400, description="See key_guess_failures")
    response_cache_entries: int = Field(
        default=10_000, ge=1, le=10_000_000, description="In-process response cache: answers kept (least recent go)"
    )
    response_cache_bytes: int = Field(default=64 << 20, ge=1024, description="In-process response cache: bytes kept")
    usage_flush_s: float = Field(default=0.5, gt=0)
    usage_batch_size: int = Field(default=5000, ge=1, le=100_000, description="Events per insert")
    usage_buffer_limit: int = Field(default=200_000, ge=1000)
    usage_journal: Literal["strict", "fast", "off"] = Field(
        default="fast",
        description="strict: fsync each event before its response completes; fast: write every "
        "usage_journal_flush_s; off: no journal (events in memory only until written)",
    )
    usage_journal_flush_s: float = Field(
        default=0.1, gt=0, le=10, description="fast mode: the most a SIGKILL can lose, in seconds of events"
    )
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code of every price and invoice")
    rollup_every_s: float = Field(default=10.0, gt=0, le=3600, description="How often new events are rolled up")
    usage_retention_days: int = Field(
        default=30, ge=1, le=3650, description="Raw usage events kept per tenant unless the tenant sets its own"
    )
    usage_export_url: str | None = Field(
        default=None, description="HTTP sink that receives every usage event as a CloudEvent (batched, retried)"
    )
    usage_export_every_s: float = Field(default=5.0, gt=0, le=3600, description="How often events go to the sink")
    alert_thresholds: Annotated[tuple[int, ...], NoDecode] = Field(
        default=(50, 80, 100), description="Percent of a quota, budget or prepaid credit that alerts the tenant"
    )
    redis_url: str | None = Field(default=None, description="Shared counters for limits; in-process when unset")
    lease_ttl_s: float = Field(default=30.0, gt=1, description="Concurrency leases expire unless renewed")
    redis_timeout_s: float = Field(
        default=0.25, gt=0, le=10, description="How long a Redis call may take before limits are enforced per instance"
    )
    fair_sync_s: float = Field(default=0.2, gt=0, le=60, description="How often the fair queue's counters go to Redis")
    redis_probe_s: float = Field(
        default=1.0, gt=0, le=60, description="How often Redis is asked whether it is back, and instances counted"
    )
    output_estimate_tokens: int = Field(default=256, ge=1, description="Reserved output when max_tokens is absent")
    output_estimate_cap: int = Field(default=4096, ge=1, description="Most output reserved up front per request")
    sim_speed: float = Field(default=1.0, gt=0, description="Speed of the built-in simulated engine")
    fair_prompt_weight: float = Field(default=1.0, gt=0, description="VTC price of a prompt token (w_p)")
    fair_output_weight: float = Field(default=2.0, gt=0, description="VTC price of an output token (w_q)")
    velocity_factor: float = Field(
        default=10.0, gt=1, description="A minute's requests this many times a tenant's or key's usual alert"
    )
    velocity_min_per_minute: int = Field(default=120, ge=1, description="...and at least this many")
    velocity_horizon_min: int = Field(
        default=60, ge=2, le=10_080, description="Minutes the usual rate is averaged over"
    )
    autoscale_wait_target_s: float = Field(
        default=2.0, gt=0, le=3600, description="Predicted wait the autoscaling signal aims under, without plan targets"
    )
    queue_update_s: float = Field(default=1.0, gt=0, description="How often a waiting stream gets a queue comment")
    capacity_probe_s: float = Field(
        default=0.5, gt=0, le=60, description="How often engines' metrics are read to size in-flight budgets"
    )
    health_probe_s: float = Field(default=5.0, gt=0, description="Active health probe interval per deployment")
    breaker_failures: int = Field(default=3, ge=1, description="Consecutive failures that open the circuit")
    breaker_cooldown_s: float = Field(default=10.0, gt=0, description="How long an open circuit refuses traffic")
    sim_max_num_seqs: int = Field(default=64, ge=1)
    catalog: CatalogConfig = Field(default_factory=CatalogConfig, exclude=True)

    @field_validator("database_url")
    @classmethod
    def _normalize(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("alert_thresholds", mode="before")
    @classmethod
    def _thresholds(cls, value: Any) -> Any:
        value = comma_list(value)
        if any(not 1 <= int(v) <= 100 for v in value):
            raise ValueError("alert thresholds are percents from 1 to 100, e.g. 50,80,100")
        return tuple(sorted(set(value)))

    @field_validator("upstreams", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return tuple(str(v).rstrip("/") for v in comma_list(value))

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        networks = []
        for item in comma_list(value):
            try:  # an address is a network of one; host bits set (10.0.0.1/8) are a typo, not a network
                networks.append(ip_network(str(item), strict=True))
            except ValueError as exc:
                raise ValueError(f"{item!r} is not an IP address or network ({exc})") from None
        return tuple(networks)

    @model_validator(mode="after")
    def _one_mode(self) -> Settings:
        if self.mode == "tenant-proxy":
            missing = [f"--{name.replace('_', '-')}" for name in PROXY_NEEDS if getattr(self, name) in (None, "")]
            if missing:
                raise ValueError(f"tenant-proxy mode needs {', '.join(missing)}")
            if self.upstreams or self.config is not None or self.demo:
                raise ValueError("tenant-proxy mode forwards to the shared gateway; it cannot also serve engines "
                                 "(--upstream, --config, --demo)")  # fmt: skip
        return self

    @model_validator(mode="after")
    def _load_catalog(self) -> Settings:
        if self.config is not None and not self.catalog.pools:
            raw = yaml.safe_load(self.config.read_text()) or {}
            object.__setattr__(self, "catalog", CatalogConfig.model_validate(raw))
        return self

    @property
    def uses_builtin_engine(self) -> bool:
        return not self.catalog.pools and not self.upstreams


def comma_list(value: Any) -> Any:
    """A list setting given as one string (environment variables): comma-separated items."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


PROXY_NEEDS = ("shared_url", "service_key", "oidc_issuer", "oidc_audience", "assertion_key", "proxy_tenant")


class ClientSettings(BaseSettings):
    """What the admin CLI needs to reach a running gateway."""

    model_config = SettingsConfigDict(env_prefix="TENANTGATE_", frozen=True, extra="ignore")

    url: str = "http://127.0.0.1:8080"
    admin_token: SecretStr | None = None


def load_settings(**overrides: Any) -> Settings:
    """Build settings, letting explicit values (CLI flags) win over env and file."""
    clean = {k: v for k, v in overrides.items() if v is not None and v != ()}
    return Settings(**clean)
