"""UTC calendar periods for quotas: which period a moment is in, and when it resets."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta


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


@dataclass(frozen=True, slots=True)
class Calendar:
    """Everything admission needs about the current UTC day, computed once per day."""

    day: str
    next_day: datetime
    month: str
    next_month: datetime


@functools.lru_cache(maxsize=4)
def _calendar(today: date) -> Calendar:
    moment = datetime(today.year, today.month, today.day, tzinfo=UTC)
    return Calendar(day_label(moment), next_day(moment), month_label(moment), next_month(moment))


def calendar(moment: datetime) -> Calendar:
    return _calendar(moment.astimezone(UTC).date())
