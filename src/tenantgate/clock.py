"""Wall-clock timestamps for records; durations use time.monotonic / perf_counter."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
