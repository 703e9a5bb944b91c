"""Billing: hourly and daily usage rollups (events marked once rolled up), prepaid credits, invoices
and credit notes, tenant webhooks; notification delivery state, export marks on usage events, per-tenant retention.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "usage_rollups",
        sa.Column("granularity", sa.String(8), primary_key=True),  # hour | day
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
        sa.Index("ix_rollups_tenant", "tenant_id", "granularity", "bucket"),
    )
    op.create_table(
        "credit_grants",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False, index=True),
        sa.Column("amount_micros", sa.BigInteger, nullable=False),
        sa.Column("granted_at", TS, nullable=False),
        sa.Column("expires_at", TS),
        sa.Column("note", sa.String(200), nullable=False),
    )
    op.create_table(
        "invoices",
        sa.Column("id", sa.String(48), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("total_micros", sa.BigInteger, nullable=False),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("finalized_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "month", name="uq_invoices_tenant_month"),
    )
    op.create_table(
        "credit_applications",
        sa.Column("invoice_id", sa.String(48), primary_key=True),
        sa.Column("grant_id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False, index=True),
        sa.Column("amount_micros", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "credit_notes",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("invoice_id", sa.String(48), nullable=False, index=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("amount_micros", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "tenant_webhooks",
        sa.Column("tenant_id", sa.String(32), primary_key=True),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("secret", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("delivered_at", TS))
        batch.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
    with op.batch_alter_table("usage_events") as batch:
        batch.add_column(sa.Column("exported_at", TS))
        batch.add_column(sa.Column("rolled_at", TS))
    # the rollup job and the export take what is not yet done; partial indexes keep that cheap
    for column, name in (("rolled_at", "ix_usage_unrolled"), ("exported_at", "ix_usage_unexported")):
        where = sa.text(f"{column} IS NULL")
        op.create_index(name, "usage_events", [column], postgresql_where=where, sqlite_where=where)
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("usage_retention_days", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("usage_retention_days")
    op.drop_index("ix_usage_unexported", "usage_events")
    op.drop_index("ix_usage_unrolled", "usage_events")
    with op.batch_alter_table("usage_events") as batch:
        batch.drop_column("rolled_at")
        batch.drop_column("exported_at")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("attempts")
        batch.drop_column("delivered_at")
    op.drop_table("tenant_webhooks")
    op.drop_table("credit_notes")
    op.drop_table("credit_applications")
    op.drop_table("invoices")
    op.drop_table("credit_grants")
    op.drop_table("usage_rollups")
