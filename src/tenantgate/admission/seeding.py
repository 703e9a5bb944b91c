"""Period totals rebuilt from recorded usage, when the counter store does not hold them.

A counter store that restarted (Redis without persistence) or a gateway process that restarted
(in-process counters) has lost its daily, monthly and budget totals. Before such a total admits
anything it is set to what the usage events of its period add up to, so a tenant's remaining
quota survives the restart. Events still in some instance's buffer (written within a second)
and reservations in flight at the moment of the loss are not in that sum.

A total is read once however many requests find it missing at the same moment: after a restart,
or as a day or month begins, every request in flight finds it so, and each reading the same sums
queued them on the database while those requests waited (128 connections' first requests waited
up to 4 s for 640 identical queries).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Protocol

from tenantgate.admission.counters import CounterStore
from tenantgate.admission.limits import Check
from tenantgate.errors import StoreUnavailable
from tenantgate.single_flight import SingleFlight


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


class TotalsSeeder:
    """Seeds the totals a counter store lacks, each counter by one reading at a time."""

    def __init__(self, recorded: RecordedUsage | None) -> None:
        self._recorded = recorded  # None: nothing is recorded, every total starts at 0
        self._readings: SingleFlight[tuple[int, str], None] = SingleFlight()  # by (store, counter)

    async def seed(self, store: CounterStore, missing: Sequence[Check]) -> None:
        """Seed `missing` in `store`, or wait for the seedings already under way."""
        seedings = (self._readings.run((id(store), check.counter), partial(self._seed, store, check))
                    for check in missing)  # fmt: skip
        for outcome in await asyncio.gather(*seedings, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome

    async def _seed(self, store: CounterStore, check: Check) -> None:
        if self._recorded is None:
            values = [0]
        else:
            try:
                values = await recorded_totals(self._recorded, [check])
            except Exception as exc:
                raise StoreUnavailable(
                    "Quota usage cannot be verified right now (its counters are being rebuilt from the usage "
                    "records, which are unreachable). Retry shortly.",
                    code="quota_unverifiable",
                ) from exc
        await store.seed([check], values)
