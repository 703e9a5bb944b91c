"""UTC calendar periods for quotas: which period a moment is in, and when it resets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def day_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def next_day(moment: datetime) -> datetime:
    return day_start(moment) + timedelta(days=1)


def month_start(moment: datetime) -> datetime:
    return day_start(moment).replace(day=1)


def next_month(moment: datetime) -> datetime:
    start = month_start(moment)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def day_label(moment: datetime) -> str:
    return day_start(moment).strftime("%Y-%m-%d")


def month_label(moment: datetime) -> str:
    return month_start(moment).strftime("%Y-%m")
