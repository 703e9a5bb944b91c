"""Period totals rebuilt from recorded usage, when the counter store does not hold them.

A counter store that restarted (Redis without persistence) or a gateway process that restarted
(in-process counters) has lost its daily, monthly and budget totals. Before such a total admits
anything it is set to what the usage events of its period add up to, so a tenant's remaining
quota survives the restart. Events still in some instance's buffer (written within a second)
and reservations in flight at the moment of the loss are not in that sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from tenantgate.admission.limits import Check


class RecordedUsage(Protocol):
    async def period_usage(self, scope: str, scope_id: str, since: datetime) -> tuple[int, int]: ...

    async def period_gpu_seconds(self, scope: str, scope_id: str, since: datetime) -> float: ...


def period_of(check: Check) -> tuple[str, str, str, datetime]:
    """(what it counts, scope kind, scope id, period start) of a total's counter name.

    Names: tg1:{day|month|budget|included|gpu}:{tenant|key|user}:{id}:{YYYY-MM-DD|YYYY-MM}."""
    _, kind, scope, scope_id, label = check.counter.split(":")
    start = datetime.strptime(label, "%Y-%m-%d" if kind == "day" else "%Y-%m").replace(tzinfo=UTC)
    return kind, scope, scope_id, start


async def recorded_totals(usage: RecordedUsage, checks: Sequence[Check]) -> list[int]:
    values = []
    for check in checks:
        kind, scope, scope_id, start = period_of(check)
        if kind == "gpu":
            values.append(round(await usage.period_gpu_seconds(scope, scope_id, start) * 1000))
            continue
        tokens, cost = await usage.period_usage(scope, scope_id, start)
        values.append(cost if kind == "budget" else tokens)
    return values
