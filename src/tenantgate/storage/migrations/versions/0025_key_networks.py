"""A key may be limited to the networks its requests come from (`allowed_ips`, CIDR blocks).

Revision ID: 0025
Revises: 0024
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("allowed_ips", sa.JSON))


def downgrade() -> None:
    op.drop_column("api_keys", "allowed_ips")
