"""A tenant's pins (the pools or deployments its requests must use) kept in the database, set
through the management API; the configuration file's `pins` still apply to tenants with none stored.

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tenants", sa.Column("pins", sa.JSON))


def downgrade() -> None:
    op.drop_column("tenants", "pins")
