"""Usage events say whether the answer came from the tenant's response cache, and what it saved.

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("usage_events", sa.Column("cache_hit", sa.Boolean))
    op.add_column("usage_events", sa.Column("saved_micros", sa.BigInteger))


def downgrade() -> None:
    op.drop_column("usage_events", "saved_micros")
    op.drop_column("usage_events", "cache_hit")
