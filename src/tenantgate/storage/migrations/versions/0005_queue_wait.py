"""Usage events record how long the request waited in the fair queue.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_events") as batch:
        batch.add_column(sa.Column("queue_wait_ms", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("usage_events") as batch:
        batch.drop_column("queue_wait_ms")
