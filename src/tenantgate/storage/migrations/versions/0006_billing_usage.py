"""Usage events carry pool, GPU-seconds, cost and price version; dead letters; versioned prices.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("usage_events") as batch:
        batch.add_column(sa.Column("pool", sa.String(200)))
        batch.add_column(sa.Column("usage_estimated", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("gpu_seconds", sa.Float, nullable=False, server_default="0"))
        batch.add_column(sa.Column("cost_micros", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("price_version", sa.String(64)))
    # period totals are rebuilt per key and per user when the counter store lost them
    op.create_index("ix_usage_key_time", "usage_events", ["key_id", "created_at"])
    op.create_index("ix_usage_user_time", "usage_events", ["user_id", "created_at"])
    op.create_table(
        "usage_dead_letters",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "prices",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("effective_from", TS, nullable=False),
        sa.Column("input_micros_per_1m", sa.BigInteger, nullable=False),
        sa.Column("output_micros_per_1m", sa.BigInteger, nullable=False),
        sa.Column("cached_micros_per_1m", sa.BigInteger, nullable=False),
        sa.Column("gpu_hour_micros", sa.BigInteger, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("model", "effective_from", name="uq_prices_model_from"),
    )


def downgrade() -> None:
    op.drop_table("prices")
    op.drop_table("usage_dead_letters")
    op.drop_index("ix_usage_user_time", "usage_events")
    op.drop_index("ix_usage_key_time", "usage_events")
    with op.batch_alter_table("usage_events") as batch:
        for column in ("price_version", "cost_micros", "gpu_seconds", "usage_estimated", "pool"):
            batch.drop_column(column)
