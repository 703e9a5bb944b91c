"""The schema, as SQLAlchemy Core tables. Alembic migrations create exactly this."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

metadata = sa.MetaData()
TS = sa.DateTime(timezone=True)

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("slug", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("plan", sa.String(64), nullable=False),
    sa.Column("region", sa.String(64)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("allowed_models", sa.JSON),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False, index=True),
    sa.Column("limits", sa.JSON),
    sa.Column("usage_retention_days", sa.Integer),
    sa.Column("log_content", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("pins", sa.JSON),  # null: the configuration file's pins apply
    sa.Column("response_cache_ttl_s", sa.Float),  # null: the plan's; 0: none
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.UniqueConstraint("tenant_id", "email", name="uq_users_tenant_email"),
    sa.Column("limits", sa.JSON),
    sa.Column("updated_at", TS, index=True),
    sa.Column("deactivated_at", TS),  # keys, tokens and logins of the user stop; its records stay
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id")),
    sa.Column("models", sa.JSON),
    sa.Column("expires_at", TS),
    sa.Column("revoked_at", TS),
    sa.Column("last_used_at", TS),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False, index=True),
    sa.Column("limits", sa.JSON),
    sa.Column("previous_secret_hash", sa.String(64)),  # the secret it was rotated from...
    sa.Column("previous_valid_until", TS),  # ...which works until then
    sa.Column("allowed_ips", sa.JSON),  # networks its requests must come from; null: anywhere
)

usage_events = sa.Table(
    "usage_events",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("user_id", sa.String(32)),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("deployment", sa.String(200)),
    sa.Column("endpoint", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("error_type", sa.String(64)),
    sa.Column("prompt_tokens", sa.Integer, nullable=False),
    sa.Column("completion_tokens", sa.Integer, nullable=False),
    sa.Column("cached_tokens", sa.Integer, nullable=False),
    sa.Column("ttft_ms", sa.Float),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("queue_wait_ms", sa.Float),
    sa.Column("created_at", TS, nullable=False),
    sa.Index("ix_usage_tenant_time", "tenant_id", "created_at"),
    sa.Column("pool", sa.String(200)),
    sa.Column("usage_estimated", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("gpu_seconds", sa.Float, nullable=False, server_default="0"),
    sa.Column("cost_micros", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("price_version", sa.String(64)),
    sa.Column("ttft_slo_met", sa.Boolean),
    sa.Column("cache_hit", sa.Boolean),
    sa.Column("saved_micros", sa.BigInteger),
    sa.Index("ix_usage_key_time", "key_id", "created_at"),
    sa.Index("ix_usage_user_time", "user_id", "created_at"),
    sa.Column("exported_at", TS),
    sa.Column("rolled_at", TS),
    sa.Index(
        "ix_usage_unrolled",
        "rolled_at",
        postgresql_where=sa.text("rolled_at IS NULL"),
        sqlite_where=sa.text("rolled_at IS NULL"),
    ),
    sa.Index(
        "ix_usage_unexported",
        "exported_at",
        postgresql_where=sa.text("exported_at IS NULL"),
        sqlite_where=sa.text("exported_at IS NULL"),
    ),
)

usage_dead_letters = sa.Table(
    "usage_dead_letters",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

prices = sa.Table(
    "prices",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("effective_from", TS, nullable=False),
    sa.Column("input_micros_per_1m", sa.BigInteger, nullable=False),
    sa.Column("output_micros_per_1m", sa.BigInteger, nullable=False),
    sa.Column("cached_micros_per_1m", sa.BigInteger, nullable=False),
    sa.Column("gpu_hour_micros", sa.BigInteger, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.UniqueConstraint("model", "effective_from", name="uq_prices_model_from"),
)

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("period", sa.String(16), nullable=False),
    sa.Column("message", sa.String(500), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.UniqueConstraint("tenant_id", "kind", "period", name="uq_notifications_once"),
    sa.Column("delivered_at", TS),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
)

usage_rollups = sa.Table(
    "usage_rollups",
    metadata,
    sa.Column("granularity", sa.String(8), primary_key=True),  # hour | day | month
    sa.Column("bucket", TS, primary_key=True),
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("user_id", sa.String(32), primary_key=True),
    sa.Column("endpoint", sa.String(64), primary_key=True),
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("deployment", sa.String(200), primary_key=True),
    sa.Column("pool", sa.String(200), nullable=False),
    sa.Column("requests", sa.BigInteger, nullable=False),
    sa.Column("errors", sa.JSON, nullable=False),
    sa.Column("rejected", sa.JSON, nullable=False, server_default="{}"),
    sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
    sa.Column("completion_tokens", sa.BigInteger, nullable=False),
    sa.Column("cached_tokens", sa.BigInteger, nullable=False),
    sa.Column("estimated", sa.BigInteger, nullable=False),
    sa.Column("gpu_seconds", sa.Float, nullable=False),
    sa.Column("charged_micros", sa.BigInteger, nullable=False),
    sa.Column("gpu_cost_micros", sa.BigInteger, nullable=False),
    sa.Column("ttft_sketch", sa.LargeBinary),
    sa.Column("queue_wait_sketch", sa.LargeBinary),
    sa.Column("latency_sketch", sa.LargeBinary),
    # the JSON maps' sums and the SLO counts as numbers, so the console sums every tenant in one query
    sa.Column("error_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rejected_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("slo_requests", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("slo_met", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("queue_waits", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("queue_wait_ms_sum", sa.Float, nullable=False, server_default="0"),
    sa.Index("ix_rollups_tenant", "tenant_id", "granularity", "bucket"),
    sa.Index(
        "ix_rollups_failed",
        "granularity",
        "bucket",
        postgresql_where=sa.text("error_count > 0"),
        sqlite_where=sa.text("error_count > 0"),
    ),
)

credit_grants = sa.Table(
    "credit_grants",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False, index=True),
    sa.Column("amount_micros", sa.BigInteger, nullable=False),
    sa.Column("granted_at", TS, nullable=False),
    sa.Column("expires_at", TS),
    sa.Column("note", sa.String(200), nullable=False),
)

invoices = sa.Table(
    "invoices",
    metadata,
    sa.Column("id", sa.String(48), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("month", sa.String(7), nullable=False),
    sa.Column("total_micros", sa.BigInteger, nullable=False),
    sa.Column("document", sa.JSON, nullable=False),
    sa.Column("finalized_at", TS, nullable=False),
    sa.UniqueConstraint("tenant_id", "month", name="uq_invoices_tenant_month"),
)

credit_applications = sa.Table(
    "credit_applications",
    metadata,
    sa.Column("invoice_id", sa.String(48), primary_key=True),
    sa.Column("grant_id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False, index=True),
    sa.Column("amount_micros", sa.BigInteger, nullable=False),
)

credit_notes = sa.Table(
    "credit_notes",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("invoice_id", sa.String(48), nullable=False, index=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("amount_micros", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

tenant_webhooks = sa.Table(
    "tenant_webhooks",
    metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("url", sa.String(2000), nullable=False),
    sa.Column("secret", sa.String(200), nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

management_tokens = sa.Table(
    "management_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("platform_role", sa.String(32)),
    sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), index=True),
    sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id")),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("expires_at", TS),
    sa.Column("revoked_at", TS),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("at", TS, nullable=False),
    sa.Column("tenant_id", sa.String(32)),  # no foreign key: the record outlives what it names
    sa.Column("actor", sa.String(300), nullable=False),
    sa.Column("actor_role", sa.String(32), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(300), nullable=False),
    sa.Column("before", sa.JSON),
    sa.Column("after", sa.JSON),
    sa.Column("source", sa.String(100), nullable=False),
    sa.Index("ix_audit_tenant_at", "tenant_id", "at"),
    sa.Index("ix_audit_at", "at"),
)

operators = sa.Table(
    "operators",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

credentials = sa.Table(
    "credentials",
    metadata,
    sa.Column("subject_id", sa.String(32), primary_key=True),  # a user's or an operator's id
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("failed_logins", sa.Integer, nullable=False),
    sa.Column("locked_until", TS),
    sa.Column("updated_at", TS, nullable=False),
)

tenant_sso = sa.Table(
    "tenant_sso",
    metadata,
    sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), primary_key=True),
    sa.Column("issuer", sa.String(2000), nullable=False),
    sa.Column("client_id", sa.String(500), nullable=False),
    sa.Column("client_secret_sealed", sa.Text, nullable=False),  # encrypted with the secret key
    sa.Column("role_claim", sa.String(200), nullable=False),
    sa.Column("role_map", sa.JSON, nullable=False),  # claim value -> role
    sa.Column("default_role", sa.String(16)),  # for people no value maps; none: they are refused
    sa.Column("updated_at", TS, nullable=False),
)

tenant_proxy_keys = sa.Table(
    "tenant_proxy_keys",
    metadata,
    sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), primary_key=True),
    sa.Column("public_jwk", sa.JSON, nullable=False),  # what the tenant's proxy signs assertions with
    sa.Column("updated_at", TS, nullable=False),
)

tenant_upstream_keys = sa.Table(
    "tenant_upstream_keys",
    metadata,
    sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), primary_key=True),
    sa.Column("deployment", sa.String(200), primary_key=True),
    sa.Column("sealed_key", sa.Text, nullable=False),  # the tenant's own key for the deployment, encrypted
    sa.Column("updated_at", TS, nullable=False),
)

prompt_templates = sa.Table(
    "prompt_templates",
    metadata,
    sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("messages", sa.JSON, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("deleted_at", TS),  # kept, marked: other instances learn of it, and the number is not reused
)

# What deleting a tenant removes, children before parents (credentials go by their users' ids).
request_contents = sa.Table(
    "request_contents",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("request", sa.Text, nullable=False),
    sa.Column("answer", sa.Text, nullable=False),
    sa.Index("ix_contents_tenant_time", "tenant_id", "created_at"),
)

TENANT_OWNED = (request_contents, credit_notes, credit_applications, credit_grants, invoices, usage_rollups,
                usage_events, notifications, tenant_webhooks, tenant_sso, tenant_proxy_keys, tenant_upstream_keys,
                prompt_templates, management_tokens, api_keys, users)  # fmt: skip


def tombstone(tenant_id: str, at: datetime) -> dict[str, object]:
    """A deleted tenant's row: nothing of it left but its id, its slug free for a new tenant."""
    return {"slug": f"deleted-{tenant_id}", "name": "(deleted)", "status": "deleted", "allowed_models": None,
            "limits": None, "usage_retention_days": None, "region": None, "updated_at": at,
            "log_content": False, "pins": None, "response_cache_ttl_s": None}  # fmt: skip


incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("message", sa.String(4000), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("resolved_at", TS),
    sa.Index("ix_incidents_created", "created_at"),
)
