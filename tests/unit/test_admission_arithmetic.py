"""Property tests: the sliding window never lets more than the limit into any 60 s span, and
period boundaries (minute, UTC midnight, month end, year end) are where they should be."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tenantgate.admission.counters import Granted, MemoryCounterStore
from tenantgate.admission.limits import Check, LimitKind, Limits, alone
from tenantgate.admission.periods import day_label, month_label, next_day, next_month

arrivals = st.lists(st.tuples(st.floats(0, 5, allow_nan=False), st.integers(1, 30)), min_size=1, max_size=80)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(steps=arrivals, limit=st.integers(1, 100))
def test_no_window_ever_holds_more_than_the_limit(steps: list[tuple[float, int]], limit: int) -> None:
    now = [0.0]
    store = MemoryCounterStore(clock=lambda: now[0])
    admitted: list[tuple[float, int]] = []
    for index, (gap, amount) in enumerate(steps):
        now[0] += gap
        check = Check(LimitKind.TOKENS, "w", limit, amount, "window", ttl_s=10.0)
        if isinstance(asyncio.run(store.reserve(str(index), [check])), Granted):
            admitted.append((now[0], amount))
        else:  # a refusal must be justified: admitting would have broken the limit
            inside = sum(a for t, a in admitted if t > now[0] - 10.0)
            assert inside + amount > limit
    for start, _ in admitted:  # every window that starts at an admission
        assert sum(a for t, a in admitted if start <= t < start + 10.0) <= limit


@settings(derandomize=True)
# hypothesis wants naive bounds; the generated values carry UTC
@given(moment=st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)))  # noqa: DTZ001
def test_periods(moment: datetime) -> None:
    tomorrow = next_day(moment)
    assert tomorrow > moment >= tomorrow - timedelta(days=1)
    assert (tomorrow.hour, tomorrow.minute, tomorrow.second, tomorrow.microsecond) == (0, 0, 0, 0)
    assert day_label(tomorrow) != day_label(moment) and day_label(tomorrow - timedelta(microseconds=1)) == day_label(
        moment
    )
    following = next_month(moment)
    assert following.day == 1 and following > moment and month_label(following) != month_label(moment)
    assert month_label(following - timedelta(microseconds=1)) == month_label(moment)


def test_month_and_year_ends() -> None:
    assert next_month(datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)
    assert next_month(datetime(2028, 2, 29, 12, tzinfo=UTC)) == datetime(2028, 3, 1, tzinfo=UTC)
    assert next_day(datetime(2026, 11, 23, 23, 59, 59, 999999, tzinfo=UTC)) == datetime(2026, 11, 24, tzinfo=UTC)


def test_tightest_limit_applies() -> None:
    plan = Limits(rpm=600, tpm=100_000, concurrency=None)
    override = Limits(rpm=50, tpm=None, concurrency=4)
    assert plan.tighten(override) == Limits(rpm=50, tpm=100_000, concurrency=4)
    assert Limits().unlimited and not override.unlimited


@settings(max_examples=100, derandomize=True, deadline=None)
@given(limit=st.integers(1, 2_000), recorded=st.integers(0, 2_000), instances=st.integers(1, 8))
def test_an_instance_alone_passes_its_share_of_what_is_left(limit: int, recorded: int, instances: int) -> None:
    """While instances cannot share counters, each passes at most what is left of a period total divided
    among them, so together they stay within it (counted in units of 1 token); a total smaller than
    the instances still lets each pass one."""
    store = MemoryCounterStore()
    check = alone(Check(LimitKind.QUOTA, "month", limit, 1, "total"), instances)
    asyncio.run(store.seed([check], [recorded]))
    passed = 0
    while isinstance(asyncio.run(store.reserve(str(passed), [check])), Granted):
        passed += 1
    assert passed == max(0, limit - recorded) // min(instances, limit)  # a limit under N: one each


def test_an_instance_alone_holds_its_share_of_a_concurrency_limit_and_never_none() -> None:
    lease = Check(LimitKind.CONCURRENCY, "conc", 8, 1, "lease", ttl_s=30.0)
    assert [alone(lease, n).limit for n in (1, 2, 3, 8, 20)] == [8, 4, 2, 1, 1]


def test_an_instance_alone_still_passes_one_request_of_a_window_smaller_than_the_instances() -> None:
    store = MemoryCounterStore()
    rpm = alone(Check(LimitKind.REQUESTS, "rpm", 2, 1, "window"), 3)
    outcomes = [asyncio.run(store.reserve(str(n), [rpm])) for n in range(2)]
    assert isinstance(outcomes[0], Granted) and not isinstance(outcomes[1], Granted)


lease_steps = st.lists(
    st.tuples(st.sampled_from(["take", "release", "renew"]), st.integers(0, 5), st.floats(0, 8, allow_nan=False)),
    min_size=1,
    max_size=60,
)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(steps=lease_steps, ttl=st.sampled_from([1.0, 5.0, 10.0]))
def test_leases_held_are_exactly_those_taken_not_released_and_not_expired(
    steps: list[tuple[str, int, float]], ttl: float
) -> None:
    """Leases taken, released, renewed and left to expire in any order: the store counts exactly the
    ones a plain model counts (its search for expired leases is skipped until one can be due)."""
    now = [0.0]
    store = MemoryCounterStore(clock=lambda: now[0])
    lease = Check(LimitKind.CONCURRENCY, "c", 100, 1, "lease", ttl_s=ttl)
    expiries: dict[str, float] = {}  # the model: request -> when its lease expires
    for action, who, gap in steps:
        now[0] += gap
        request = f"r{who}"
        if action == "take":  # reserving first drops the expired leases; a renewal finds them still there
            expiries = {r: at for r, at in expiries.items() if at > now[0]}
        if action == "take" and request not in expiries:
            assert isinstance(asyncio.run(store.reserve(request, [lease])), Granted)
            expiries[request] = now[0] + ttl
        elif action == "release":
            store.settle_now(request, [lease], [1])
            expiries.pop(request, None)
        elif action == "renew":
            asyncio.run(store.renew(request, [lease]))
            if request in expiries:
                expiries[request] = now[0] + ttl
        expiries = {r: at for r, at in expiries.items() if at > now[0]}
        assert asyncio.run(store.peek([lease])) == (len(expiries),)
