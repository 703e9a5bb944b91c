"""The counter store: test every check and reserve them all, atomically, in one call.

Shapes (the same semantics in memory and in Redis, see redis_counters.py):
- window: a sliding log of (time, request, amount) over the last 60 s; passes when the amounts
  still inside the window plus this request's amount stay within the limit. Exact: no 60 s
  window ever holds more than the limit, unlike fixed windows.
- lease: a set of in-flight requests with an expiry (renewed while they run); passes when fewer
  than `limit` unexpired leases are held.
- total: a period counter (day, month) that resets at `reset_at`.
Settlement replaces a window entry's reserved amount by the actual one, drops the lease, and
adds (actual - reserved) to totals, so overruns are charged and unused reservations refunded.
"""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tenantgate.admission.limits import Check

INF = float("inf")
SWEEP_EVERY = 8  # reservations between two looks for idle windows and lease sets
SWEEP_UP_TO = 64  # idle ones dropped at a look: more than 8 reservations can create
COMPACT_PAST = 64  # ended entries a window keeps at its head before it may drop them from its lists
TOTAL_KEPT_S = 86_400.0  # a period total outlives its period by a day (as in Redis), then goes


@dataclass(frozen=True, slots=True)
class Granted:
    remaining: tuple[int, ...]  # per check: limit minus what is now used


@dataclass(frozen=True, slots=True)
class Denied:
    index: int  # the first check that failed
    retry_after_s: float


@dataclass(frozen=True, slots=True)
class Unseeded:
    """Period totals the store does not hold (a new period, or a store that lost its data): they
    must be seeded from the recorded usage before anything is reserved against them."""

    indexes: tuple[int, ...]


Outcome = Granted | Denied | Unseeded


class CounterStore(Protocol):
    async def reserve(self, request_id: str, checks: Sequence[Check]) -> Outcome:
        """Unseeded (reserving nothing) when a period total is missing; else test and reserve all."""

    async def seed(self, checks: Sequence[Check], values: Sequence[int]) -> None:
        """Set missing period totals to what was recorded; one already there is left alone."""

    async def settle(self, request_id: str, checks: Sequence[Check], actual: Sequence[int]) -> None:
        """`actual[i]` replaces `checks[i].amount` (ignored for leases, which are released)."""

    async def renew(self, request_id: str, checks: Sequence[Check]) -> None:
        """Push the expiry of this request's leases forward."""

    async def peek(self, checks: Sequence[Check]) -> tuple[int, ...]:
        """What each counter holds now, reserving nothing."""

    async def heartbeat(self, instance_id: str, alive_s: float) -> int:
        """Count this instance as alive for `alive_s`; how many instances are alive now."""

    async def leave(self, instance_id: str) -> None:
        """This instance stops: no longer count it."""

    async def ping(self) -> None:
        """Raise if the store cannot be reached."""

    async def close(self) -> None: ...


@dataclass(slots=True)
class WindowLog:
    """One sliding window's entries: their times and requests in two lists, oldest first from
    `head` on, and their amounts by request (settlement replaces them). Taking the oldest from the
    front of a dict instead costs a scan over every entry deleted before it, tens of microseconds per
    check once a window holds a minute of a busy tenant's requests. No tuple per entry (a window
    holds a minute of traffic; the time's float is one object all the request's windows share), and
    lists rather than deques, which take 760 bytes each even when empty."""

    ttl_s: float
    times: list[float] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    head: int = 0  # entries before it have ended; dropped from the lists once they are half of them
    amounts: dict[str, int] = field(default_factory=dict)
    total: int = 0

    @property
    def newest(self) -> float:
        return self.times[-1] if len(self.times) > self.head else -INF

    def add(self, request_id: str, at: float, amount: int) -> None:
        replaced = self.amounts.pop(request_id, None)
        if replaced is not None:  # the same request again (never twice in practice): the later one counts
            self.total -= replaced
            index = self.requests.index(request_id, self.head)
            del self.requests[index], self.times[index]
        self.times.append(at)
        self.requests.append(request_id)
        self.amounts[request_id] = amount
        self.total += amount

    def expire(self, before: float) -> None:
        """Drop what was reserved at or before `before`."""
        times, requests, amounts = self.times, self.requests, self.amounts
        index, end = self.head, len(times)
        while index < end and times[index] <= before:
            self.total -= amounts.pop(requests[index])
            index += 1
        if index == end:
            times.clear()
            requests.clear()
            index = 0
        elif index > COMPACT_PAST and index * 2 > end:
            del times[:index], requests[:index]
            index = 0
        self.head = index

    def settle(self, request_id: str, amount: int) -> None:
        reserved = self.amounts.get(request_id)
        if reserved is not None:
            self.amounts[request_id] = amount
            self.total += amount - reserved

    def entries(self) -> list[tuple[float, int]]:
        """(reserved at, amount) of each entry, oldest first."""
        pairs = zip(self.times[self.head :], self.requests[self.head :], strict=True)
        return [(at, self.amounts[request_id]) for at, request_id in pairs]


class MemoryCounterStore:
    """One process's counters. Calls never await, so each is atomic on the event loop."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, sweep_every: int = SWEEP_EVERY,
        wall: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        """`clock` times windows and leases; `wall` (seconds since the epoch) ends period totals."""
        self._clock = clock
        self._wall = wall
        self._sweep_every = sweep_every
        # least recently used first (see `_sweep`)
        self._windows: OrderedDict[str, WindowLog] = OrderedDict()
        self._leases: OrderedDict[str, dict[str, float]] = OrderedDict()
        # No lease in the set expires before this (renewal only pushes expiries later), so a set is
        # searched for expired leases once per lease lifetime rather than at every request.
        self._lease_due: dict[str, float] = {}
        self._totals: dict[str, int] = {}
        self._total_ends: list[tuple[float, str]] = []  # heap: (when a total may go, its counter)
        self._until_sweep = sweep_every

    async def reserve(self, request_id: str, checks: Sequence[Check]) -> Outcome:
        missing = [i for i, c in enumerate(checks) if c.shape == "total" and c.counter not in self._totals]
        if missing:
            return Unseeded(tuple(missing))
        now = self._clock()
        remaining = []
        for index, check in enumerate(checks):
            current = self._used(check, now)
            left = check.limit - current - check.amount
            if left < 0:
                return Denied(index, self._retry_after(check, current, now))
            remaining.append(left)
        for check in checks:
            if check.shape == "window":
                window = self._windows.get(check.counter)
                if window is None:
                    window = self._windows[check.counter] = WindowLog(check.ttl_s)
                else:
                    self._windows.move_to_end(check.counter)
                window.add(request_id, now, check.amount)
            elif check.shape == "lease":
                leases = self._leases.get(check.counter)
                if leases is None:
                    leases = self._leases[check.counter] = {}
                else:
                    self._leases.move_to_end(check.counter)
                leases[request_id] = now + check.ttl_s
                self._lease_due[check.counter] = min(self._lease_due.get(check.counter, INF), now + check.ttl_s)
            else:
                self._totals[check.counter] = self._totals.get(check.counter, 0) + check.amount
        self._until_sweep -= 1
        if self._until_sweep <= 0:
            self._until_sweep = self._sweep_every
            self._sweep(now)
        return Granted(tuple(remaining))

    def _sweep(self, now: float) -> None:
        """Drop the windows and lease sets used least recently that nothing in counts any more, and
        the period totals a day after their period: a key that made one request does not keep its
        counters for ever. Every few reservations, so that its fixed cost is not every request's."""
        windows, leases = self._windows, self._leases
        for _ in range(SWEEP_UP_TO):
            if not windows:
                break
            counter, window = next(iter(windows.items()))
            if window.newest > now - window.ttl_s:
                break  # the others were used since, so they hold something that counts too
            del windows[counter]
        for _ in range(SWEEP_UP_TO):
            if not leases:
                break
            counter, held = next(iter(leases.items()))
            if now >= self._lease_due.get(counter, INF):
                self._drop_ended_leases(counter, held, now)
            if held:
                leases.move_to_end(counter)  # a long request holds it: the next one next time
                break
            del leases[counter]
            self._lease_due.pop(counter, None)
        ends, wall = self._total_ends, self._wall()
        while ends and ends[0][0] <= wall:  # its period ended a day ago: no request counts on it now
            self._totals.pop(heapq.heappop(ends)[1], None)

    def _used(self, check: Check, now: float) -> int:
        if check.shape == "window":
            window = self._windows.get(check.counter)
            if window is None:
                return 0
            window.expire(now - check.ttl_s)
            return window.total
        if check.shape == "lease":
            leases = self._leases.get(check.counter, {})
            if now >= self._lease_due.get(check.counter, INF):
                self._drop_ended_leases(check.counter, leases, now)
            return len(leases)
        return self._totals.get(check.counter, 0)

    def _drop_ended_leases(self, counter: str, leases: dict[str, float], now: float) -> None:
        for member in [m for m, expiry in leases.items() if expiry <= now]:
            del leases[member]
        self._lease_due[counter] = min(leases.values(), default=INF)

    def _retry_after(self, check: Check, used: int, now: float) -> float:
        if check.shape == "window":
            if check.amount > check.limit:
                return check.ttl_s
            freed = 0
            window = self._windows.get(check.counter)
            for at, amount in window.entries() if window is not None else ():
                freed += amount
                if used - freed + check.amount <= check.limit:
                    return max(0.0, at + check.ttl_s - now)
            return check.ttl_s
        if check.shape == "lease":
            return 1.0
        return 0.0  # totals: the caller knows reset_at

    async def settle(self, request_id: str, checks: Sequence[Check], actual: Sequence[int]) -> None:
        self.settle_now(request_id, checks, actual)

    def settle_now(self, request_id: str, checks: Sequence[Check], actual: Sequence[int]) -> None:
        for check, amount in zip(checks, actual, strict=True):
            if check.shape == "window":
                window = self._windows.get(check.counter)
                if window is not None:
                    window.settle(request_id, amount)
            elif check.shape == "lease":
                self._leases.get(check.counter, {}).pop(request_id, None)
            elif check.counter in self._totals:  # a total lost meanwhile is seeded afresh, not patched
                self._totals[check.counter] += amount - check.amount

    async def seed(self, checks: Sequence[Check], values: Sequence[int]) -> None:
        for check, value in zip(checks, values, strict=True):
            if check.counter not in self._totals:
                self._totals[check.counter] = value
                if check.reset_at is not None:
                    heapq.heappush(self._total_ends, (check.reset_at.timestamp() + TOTAL_KEPT_S, check.counter))

    def forget_totals(self) -> None:
        """Lose every period total, as a restarted process does."""
        self._totals.clear()
        self._total_ends.clear()

    async def renew(self, request_id: str, checks: Sequence[Check]) -> None:
        now = self._clock()
        for check in checks:
            leases = self._leases.get(check.counter)
            if check.shape == "lease" and leases is not None and request_id in leases:
                leases[request_id] = now + check.ttl_s

    async def peek(self, checks: Sequence[Check]) -> tuple[int, ...]:
        now = self._clock()
        return tuple(self._used(check, now) for check in checks)

    async def heartbeat(self, instance_id: str, alive_s: float) -> int:
        return 1  # only this process shares these counters

    async def leave(self, instance_id: str) -> None:
        return None

    async def ping(self) -> None:
        return None  # this process's own memory

    async def close(self) -> None:
        return None
