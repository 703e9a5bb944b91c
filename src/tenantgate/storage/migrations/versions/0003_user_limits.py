"""Per-user limits, and users' change time so every instance picks up limit changes.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("limits", sa.JSON))
        batch.add_column(sa.Column("updated_at", sa.DateTime(timezone=True)))
        batch.create_index("ix_users_updated_at", ["updated_at"])


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_index("ix_users_updated_at")
        batch.drop_column("updated_at")
        batch.drop_column("limits")
