"""Jain's fairness index, and the per-pool window it is computed over in the running gateway.

Jain's index of x_1..x_n is (Σx)² / (n·Σx²): 1 when all are equal, 1/n when one gets everything.
Its x_i should be what each got relative to what it should fairly get (Jain's "actual / fair"):
- **service**: weighted service (cost / plan weight) relative to the tenant's max-min fair share of
  what the pool served in the window. A tenant with nothing waiting now got what it asked for, so its
  demand is what it was served; tenants still waiting wanted more, and share the rest equally.
  (The experiments, `tenantgate bench fairness`, know each client's demand and use it directly.)
- **queue wait**: mean queue wait of every tenant that sent something in the window. A fair queue
  makes a tenant that floods wait for its own backlog, so this index falls under a flood by design;
  it shows who waits, not whether the scheduler is fair.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass


def jain(values: Iterable[float]) -> float | None:
    """None for no values; 1.0 when every value is zero (nobody is treated worse than another)."""
    xs = list(values)
    if not xs:
        return None
    squares = sum(x * x for x in xs)
    return 1.0 if squares == 0 else sum(xs) ** 2 / (len(xs) * squares)


def max_min_shares(demands: Mapping[str, float], capacity: float) -> dict[str, float]:
    """Water-filling: each client gets its demand or an equal part of what is left, whichever is less."""
    shares: dict[str, float] = {}
    left, pending = capacity, sorted(demands, key=lambda c: demands[c])
    while pending:
        equal = left / len(pending)
        client = pending[0]
        if demands[client] > equal:
            shares.update(dict.fromkeys(pending, equal))
            break
        shares[client] = demands[client]
        left -= demands[client]
        pending.pop(0)
    return shares


@dataclass(slots=True)
class _Tally:
    service: float = 0.0
    waits: int = 0
    wait_s: float = 0.0


class FairnessWindow:
    """One pool's tenants over the last `span_s` seconds (two halves, the older dropped as time moves)."""

    def __init__(self, span_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.half_s = span_s / 2
        self.clock = clock
        self._current: dict[str, _Tally] = {}
        self._previous: dict[str, _Tally] = {}
        self._turn_at = clock() + self.half_s

    def _turn(self) -> None:
        now = self.clock()
        if now >= self._turn_at:
            stale = now >= self._turn_at + self.half_s
            self._previous, self._current = ({} if stale else self._current), {}
            self._turn_at = now + self.half_s

    def _tally(self, tenant: str) -> _Tally:
        self._turn()
        tally = self._current.get(tenant)
        if tally is None:
            tally = self._current[tenant] = _Tally()
        return tally

    def waited(self, tenant: str, seconds: float) -> None:
        tally = self._tally(tenant)
        tally.waits += 1
        tally.wait_s += seconds

    def served(self, tenant: str, weighted_cost: float) -> None:
        self._tally(tenant).service += weighted_cost

    def _merged(self) -> dict[str, _Tally]:
        self._turn()
        merged: dict[str, _Tally] = {}
        for half in (self._previous, self._current):
            for tenant, tally in half.items():
                into = merged.setdefault(tenant, _Tally())
                into.service += tally.service
                into.waits += tally.waits
                into.wait_s += tally.wait_s
        return merged

    def service_index(self, backlogged: AbstractSet[str]) -> float | None:
        """`backlogged`: the tenants with requests waiting in the pool now."""
        tallies = self._merged()
        demands = {tenant: math.inf if tenant in backlogged else t.service for tenant, t in tallies.items()}
        shares = max_min_shares(demands, sum(t.service for t in tallies.values()))
        return jain(tallies[tenant].service / share for tenant, share in shares.items() if share > 0)

    def wait_index(self) -> float | None:
        return jain(t.wait_s / t.waits for t in self._merged().values() if t.waits)
