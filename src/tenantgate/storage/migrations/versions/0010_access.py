"""Management tokens and the audit log.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "management_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("platform_role", sa.String(32)),
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), index=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id")),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS),
        sa.Column("revoked_at", TS),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("tenant_id", sa.String(32)),
        sa.Column("actor", sa.String(300), nullable=False),
        sa.Column("actor_role", sa.String(32), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("before", sa.JSON),
        sa.Column("after", sa.JSON),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Index("ix_audit_tenant_at", "tenant_id", "at"),
        sa.Index("ix_audit_at", "at"),
    )


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_table("management_tokens")
