"""Period totals a counter store lacks are read from the recorded usage once, however many requests
find them missing at the same moment (after a restart, as a day begins); a request that leaves
while it waits does not stop the reading for the others; a failed reading fails all of them alike
and the next request reads again."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from tenantgate.admission.counters import MemoryCounterStore
from tenantgate.admission.service import Admission, Reservation
from tenantgate.dataplane.request import Endpoint, parse_request
from tenantgate.domain import Limits, Principal
from tenantgate.errors import StoreUnavailable

CHAT = parse_request(Endpoint.CHAT, b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}')
PRINCIPAL = Principal("t1", "t", "k1", None, "growth", None, None,
                      tenant_limits=Limits(daily_tokens=10_000, budget_micros=50_000))  # fmt: skip
REQUESTS = 20


class SlowRecords:
    """Recorded usage that answers only once released, counting its readings."""

    def __init__(self) -> None:
        self.readings = 0
        self.release = asyncio.Event()
        self.failing = False

    async def period_usage(self, scope: str, scope_id: str, since: datetime) -> tuple[int, int]:
        self.readings += 1
        await self.release.wait()
        if self.failing:
            raise OSError("the database is unreachable")
        return 900, 4000

    async def period_gpu_seconds(self, scope: str, scope_id: str, since: datetime) -> float:
        raise AssertionError("no GPU-time limit here")


def admission(records: SlowRecords) -> Admission:
    return Admission(MemoryCounterStore(), lambda model, prompt, output: prompt + output, lease_ttl_s=30,
                     output_estimate=10, output_cap=10, recorded=records)  # fmt: skip


async def all_waiting() -> None:
    """Each request runs to its wait for the reading: no request here awaits anything else."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_requests_that_find_the_totals_missing_at_once_read_them_once() -> None:
    records = SlowRecords()
    gate = admission(records)
    waiting = [asyncio.create_task(gate.reserve(PRINCIPAL, CHAT, f"r{n}")) for n in range(REQUESTS)]
    await all_waiting()
    waiting[0].cancel()  # the request whose reading it is leaves: the others still get it
    records.release.set()
    async with asyncio.timeout(5):
        done = await asyncio.gather(*waiting, return_exceptions=True)
    assert isinstance(done[0], asyncio.CancelledError)
    assert all(isinstance(reservation, Reservation) for reservation in done[1:]), done
    assert records.readings == 2  # the daily total and the budget, once each


async def test_a_failed_reading_fails_every_request_waiting_for_it_and_the_next_one_reads_again() -> None:
    records = SlowRecords()
    records.failing = True
    gate = admission(records)
    waiting = [asyncio.create_task(gate.reserve(PRINCIPAL, CHAT, f"r{n}")) for n in range(REQUESTS)]
    await all_waiting()
    records.release.set()
    async with asyncio.timeout(5):
        done = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(error, StoreUnavailable) and error.code == "quota_unverifiable" for error in done), done
    assert records.readings == 2

    records.failing = False
    assert await gate.reserve(PRINCIPAL, CHAT, "later") is not None
    assert records.readings == 4


@pytest.mark.parametrize("requests", [1, REQUESTS])
async def test_the_totals_read_are_what_the_requests_count_from(requests: int) -> None:
    records = SlowRecords()
    records.release.set()
    gate = admission(records)
    async with asyncio.timeout(5):
        reservations = await asyncio.gather(*(gate.reserve(PRINCIPAL, CHAT, f"r{n}") for n in range(requests)))
    assert all(reservation is not None for reservation in reservations)
    checks = reservations[0].checks if reservations[0] is not None else ()
    day, budget = (next(c for c in checks if c.counter.startswith(f"tg1:{kind}:")) for kind in ("day", "budget"))
    assert await gate.store.peek((day, budget)) == (900 + requests * day.amount, 4000 + requests * budget.amount)
