"""Usage rollups count refused attempts (429s) apart from requests and their errors.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_rollups") as batch:
        batch.add_column(sa.Column("rejected", sa.JSON, nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("usage_rollups") as batch:
        batch.drop_column("rejected")
