"""Rollups keep their error and refusal sums and their TTFT-target counts as numbers, and gain
month rows; usage events say whether a stream met its plan's TTFT target.

The operator's console sums every tenant's month: from day rows, with the counts in JSON maps, that
took two scans of the whole month. Existing rows get their sums from their maps, and existing day
rows are summed into month rows (measures only; month rows keep no latency sketches). The queue
waits' count and sum (a mean without the sketch) start from zero: the stored sketches keep no sum.

Revision ID: 0017
Revises: 0016
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

KEY = ("tenant_id", "key_id", "user_id", "endpoint", "model", "deployment")
SUMMED = ("requests", "prompt_tokens", "completion_tokens", "cached_tokens", "estimated", "gpu_seconds",
          "charged_micros", "gpu_cost_micros", "error_count", "rejected_count")  # fmt: skip
COUNTS = ("error_count", "rejected_count", "slo_requests", "slo_met", "queue_waits")
SUMS = {  # each dialect names its JSON-map-to-rows function differently
    "postgresql": "UPDATE usage_rollups SET "
    "error_count = (SELECT COALESCE(SUM(CAST(value AS BIGINT)), 0) FROM json_each_text(errors)), "
    "rejected_count = (SELECT COALESCE(SUM(CAST(value AS BIGINT)), 0) FROM json_each_text(rejected))",
    "sqlite": "UPDATE usage_rollups SET "
    "error_count = (SELECT COALESCE(SUM(CAST(value AS BIGINT)), 0) FROM json_each(errors)), "
    "rejected_count = (SELECT COALESCE(SUM(CAST(value AS BIGINT)), 0) FROM json_each(rejected))",
}


def upgrade() -> None:
    op.add_column("usage_events", sa.Column("ttft_slo_met", sa.Boolean))
    for name in COUNTS:
        op.add_column("usage_rollups", sa.Column(name, sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("usage_rollups", sa.Column("queue_wait_ms_sum", sa.Float, nullable=False, server_default="0"))
    op.execute(SUMS[op.get_bind().dialect.name])
    _sum_days_into_months()
    op.create_index(
        "ix_rollups_failed",
        "usage_rollups",
        ["granularity", "bucket"],
        postgresql_where=sa.text("error_count > 0"),
        sqlite_where=sa.text("error_count > 0"),
    )


def _sum_days_into_months() -> None:
    # typed as the table is, so SQLite stores the new buckets in the same text form as the others
    rollups = sa.table(
        "usage_rollups", *(sa.column(name) for name in ("granularity", "pool", *KEY, *SUMMED)),
        sa.column("bucket", sa.DateTime(timezone=True)), sa.column("errors", sa.JSON), sa.column("rejected", sa.JSON),
    )  # fmt: skip
    bind = op.get_bind()
    months: dict[tuple[object, ...], dict[str, Any]] = {}
    for row in bind.execute(sa.select(rollups).where(rollups.c.granularity == "day")).mappings():
        month = row["bucket"].replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        key = (month, *(row[name] for name in KEY))
        if key not in months:
            months[key] = {"granularity": "month", "bucket": month, "pool": row["pool"], "errors": {}, "rejected": {}}
            months[key] |= {name: row[name] for name in KEY} | dict.fromkeys(SUMMED, 0)
        total = months[key]
        for name in SUMMED:
            total[name] += row[name]
        for name in ("errors", "rejected"):
            for kind, count in (row[name] or {}).items():
                total[name][kind] = total[name].get(kind, 0) + int(count)
    if months:
        bind.execute(rollups.insert(), list(months.values()))


def downgrade() -> None:
    op.execute("DELETE FROM usage_rollups WHERE granularity = 'month'")
    op.drop_index("ix_rollups_failed", "usage_rollups")
    for name in (*COUNTS, "queue_wait_ms_sum"):
        op.drop_column("usage_rollups", name)
    op.drop_column("usage_events", "ttft_slo_met")
