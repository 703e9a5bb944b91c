"""A tenant's own choice of response cache: null follows its plan, 0 keeps nothing, else seconds kept.

Revision ID: 0023
Revises: 0022
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tenants", sa.Column("response_cache_ttl_s", sa.Float))


def downgrade() -> None:
    op.drop_column("tenants", "response_cache_ttl_s")
