"""API keys keep the secret they were rotated from, valid until a grace period ends.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("previous_secret_hash", sa.String(64)))
        batch.add_column(sa.Column("previous_valid_until", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("previous_valid_until")
        batch.drop_column("previous_secret_hash")
