"""Tenants' own API keys for deployments (bring your own key), sealed, behind the tenant wall.

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_upstream_keys",
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("deployment", sa.String(200), primary_key=True),
        sa.Column("sealed_key", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE tenant_upstream_keys ENABLE ROW LEVEL SECURITY")
        op.execute("CREATE POLICY tenant_wall ON tenant_upstream_keys USING (tenantgate_visible(tenant_id)) "
                   "WITH CHECK (tenantgate_visible(tenant_id))")  # fmt: skip


def downgrade() -> None:
    op.drop_table("tenant_upstream_keys")
