"""Tenants' prompt templates, versioned, behind the tenant wall.

Revision ID: 0022
Revises: 0021
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prompt_templates",
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("messages", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE prompt_templates ENABLE ROW LEVEL SECURITY")
        op.execute("CREATE POLICY tenant_wall ON prompt_templates USING (tenantgate_visible(tenant_id)) "
                   "WITH CHECK (tenantgate_visible(tenant_id))")  # fmt: skip


def downgrade() -> None:
    op.drop_table("prompt_templates")
