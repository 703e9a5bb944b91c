"""Per-tenant limit overrides and per-key limits.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("limits", sa.JSON))
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("limits", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("limits")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("limits")
