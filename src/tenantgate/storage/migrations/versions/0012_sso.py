"""Each tenant's single sign-on: its OpenID Connect issuer, client and role mapping.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_sso",
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("issuer", sa.String(2000), nullable=False),
        sa.Column("client_id", sa.String(500), nullable=False),
        sa.Column("client_secret_sealed", sa.Text, nullable=False),
        sa.Column("role_claim", sa.String(200), nullable=False),
        sa.Column("role_map", sa.JSON, nullable=False),
        sa.Column("default_role", sa.String(16)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tenant_sso")
