"""In-process counters that nothing counts in any more are dropped, a few at each reservation, and
none is dropped while something in it still counts."""

from __future__ import annotations

from datetime import UTC, datetime

from tenantgate.admission.counters import Granted, MemoryCounterStore
from tenantgate.admission.limits import Check, LimitKind


def window(counter: str) -> Check:
    return Check(LimitKind.REQUESTS, counter, 1000, 1, "window", ttl_s=60.0)


def lease(counter: str) -> Check:
    return Check(LimitKind.CONCURRENCY, counter, 10, 1, "lease", ttl_s=30.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_key_that_made_one_request_does_not_keep_its_counters() -> None:
    clock = Clock()
    store = MemoryCounterStore(clock, sweep_every=1)
    once = [window("rpm:once"), lease("conc:once")]
    assert isinstance(await store.reserve("r1", once), Granted)
    await store.settle("r1", once, [1, 1])
    clock.now = 61.0
    assert isinstance(await store.reserve("r2", [window("rpm:busy"), lease("conc:busy")]), Granted)
    assert (list(store._windows), list(store._leases)) == (["rpm:busy"], ["conc:busy"])


async def test_the_look_for_idle_counters_comes_every_few_reservations() -> None:
    clock = Clock()
    store = MemoryCounterStore(clock, sweep_every=3)
    assert isinstance(await store.reserve("r1", [window("rpm:once")]), Granted)
    clock.now = 61.0
    for number in range(2):  # the second and third reservations: the look comes with the third
        assert "rpm:once" in store._windows
        assert isinstance(await store.reserve(f"busy-{number}", [window("rpm:busy")]), Granted)
    assert list(store._windows) == ["rpm:busy"]


async def test_a_window_that_still_counts_is_kept() -> None:
    clock = Clock()
    store = MemoryCounterStore(clock, sweep_every=1)
    assert isinstance(await store.reserve("r1", [window("rpm:a")]), Granted)
    clock.now = 59.0  # r1 still counts
    assert isinstance(await store.reserve("r2", [window("rpm:b")]), Granted)
    assert await store.peek([window("rpm:a")]) == (1,)
    clock.now = 60.0  # r1 has ended: its window goes
    assert isinstance(await store.reserve("r3", [window("rpm:b")]), Granted)
    assert list(store._windows) == ["rpm:b"]


async def test_a_lease_held_by_a_long_request_is_kept() -> None:
    clock = Clock()
    store = MemoryCounterStore(clock, sweep_every=1)
    assert isinstance(await store.reserve("long", [lease("conc:a")]), Granted)
    clock.now = 20.0
    await store.renew("long", [lease("conc:a")])  # held until 50
    clock.now = 40.0
    assert isinstance(await store.reserve("other", [lease("conc:b")]), Granted)
    assert await store.peek([lease("conc:a")]) == (1,)
    clock.now = 51.0
    assert isinstance(await store.reserve("again", [lease("conc:b")]), Granted)
    assert "conc:a" not in store._leases


async def test_a_period_total_goes_a_day_after_its_period() -> None:
    wall = Clock()
    store = MemoryCounterStore(Clock(), sweep_every=1, wall=wall)
    midnight = datetime(2026, 11, 29, tzinfo=UTC)
    day = Check(LimitKind.QUOTA, "day:key:2026-11-28", 10**6, 5, "total", reset_at=midnight)
    await store.seed([day], [40])
    assert isinstance(await store.reserve("r1", [day]), Granted)
    wall.now = midnight.timestamp() + 86_399  # a request of that day may still settle on it
    assert isinstance(await store.reserve("r2", [window("rpm:key")]), Granted)
    assert await store.peek([day]) == (45,)
    wall.now = midnight.timestamp() + 86_400
    assert isinstance(await store.reserve("r3", [window("rpm:key")]), Granted)
    assert "day:key:2026-11-28" not in store._totals
