"""Prompts and answers for tenants that opt in: `tenants.log_content` and `request_contents`, behind
the same row-level security wall as every other table of a tenant's rows (PostgreSQL).

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tenants", sa.Column("log_content", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        "request_contents",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("answer", sa.Text, nullable=False),
    )
    op.create_index("ix_contents_tenant_time", "request_contents", ["tenant_id", "created_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE request_contents ENABLE ROW LEVEL SECURITY")
        op.execute("CREATE POLICY tenant_wall ON request_contents USING (tenantgate_visible(tenant_id)) "
                   "WITH CHECK (tenantgate_visible(tenant_id))")  # fmt: skip


def downgrade() -> None:
    op.drop_table("request_contents")
    op.drop_column("tenants", "log_content")
