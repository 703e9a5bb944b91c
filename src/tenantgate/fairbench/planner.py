"""How many deployments a pool needs so that each plan's time-to-first-token target is met.

The traffic (a trace, or what the gateway recorded) is cut to its busiest window, then replayed in
virtual time through pools of 1, 2, … deployments of the engine model, each behind the gateway's
fair queue (`pool_replay.py`). A plan's target is met when at least `goal` of its requests got their
first token within it.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tenantgate.fairbench.pool_replay import Timed, replay_pool
from tenantgate.fairbench.workloads import Arrival
from tenantgate.sim.engine_model import EngineConfig

ALL = "*"  # the target of every client whose plan has none of its own


@dataclass(frozen=True, slots=True)
class PoolPlan:
    pool: str
    requests: int
    window_s: float
    deployments_now: int | None
    attainment: dict[int, dict[str, float]]  # deployments -> plan -> share of requests within target
    needed: int | None  # fewest deployments that meet every plan's target; None: more than tried
    notes: list[str] = field(default_factory=list)


def busiest(arrivals: Sequence[Arrival], window_s: float | None) -> list[Arrival]:
    """The `window_s` seconds with the most tokens asked for, shifted to start at 0 (all if None)."""
    ordered = sorted(arrivals, key=lambda a: a.time)
    if not ordered:
        return []
    if window_s is None:
        start, end = 0, len(ordered)
    else:
        times = [a.time for a in ordered]
        prefix = [0]
        for a in ordered:
            prefix.append(prefix[-1] + a.prompt_tokens + a.output_tokens)
        start, end, best = 0, 0, -1
        for i, t in enumerate(times):
            j = bisect.bisect_left(times, t + window_s)
            if prefix[j] - prefix[i] > best:
                start, end, best = i, j, prefix[j] - prefix[i]
    origin = ordered[start].time
    return [Arrival(a.time - origin, a.client, a.prompt_tokens, a.output_tokens) for a in ordered[start:end]]


def attainment(timed: Sequence[Timed], plan_of: Mapping[str, str], targets_ms: Mapping[str, float]) -> dict[str, float]:
    met: dict[str, list[bool]] = {}
    for t in timed:
        plan = plan_of.get(t.client, ALL)
        target = targets_ms.get(plan, targets_ms.get(ALL))
        if target is not None:
            met.setdefault(plan, []).append(t.ttft_s * 1000 <= target)
    return {plan: sum(flags) / len(flags) for plan, flags in sorted(met.items())}


def plan_pool(
    pool: str, arrivals: Sequence[Arrival], plan_of: Mapping[str, str], targets_ms: Mapping[str, float],
    engine: EngineConfig, *, goal: float = 0.95, deployments_now: int | None = None, max_deployments: int = 16,
    window_s: float | None = None, scheduler: str = "vtc",
) -> PoolPlan:  # fmt: skip
    peak = busiest(arrivals, window_s)
    span = max((a.time for a in peak), default=0.0)
    tried: dict[int, dict[str, float]] = {}
    needed = None
    sizes = list(range(1, max_deployments + 1))
    if deployments_now is not None and deployments_now > max_deployments:
        sizes.append(deployments_now)
    for size in sizes:
        if needed is not None and size > max(needed, deployments_now or 0):
            break
        shares = attainment(replay_pool(peak, size, engine, scheduler), plan_of, targets_ms)
        tried[size] = shares
        if needed is None and shares and all(share >= goal for share in shares.values()):
            needed = size
    notes = [] if peak else ["no requests in the window"]
    return PoolPlan(pool, len(peak), span, deployments_now, tried, needed, notes)
