"""How many requests a deployment may run at once, when nobody configured it: found from the engine.

The gateway's fair queue only orders what waits in the gateway. Whatever it dispatches beyond what
the engine runs at once waits in the engine's own first-come-first-served queue, where a noisy
tenant's backlog delays everyone. So the in-flight budget should be what the engine runs, and no
static number is right for long (engines size their batch by KV-cache memory and load).

Two ways to find it, like a congestion window:
- **Engine metrics** (vLLM, SGLang, TGI, llama.cpp publish running and waiting requests): while
  the engine queues, the budget is what runs minus what waits; while it does not and work waits
  here, the budget grows (doubling until the engine first queues, then one step per probe interval).
- **Adaptive**, for engines without metrics: a streamed request whose first byte comes much later
  than the engine's unloaded time to first byte (per prompt size) was queued by the engine, so the
  engine runs fewer than were in flight when it was sent; one that comes on time with the budget
  full lets the budget grow (one per request until the first queueing, then one per budget's worth).

A connection the engine refuses or resets while others run on it is the same signal (its server
takes only so many connections). Pure and clock-free: callers pass `now`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tenantgate.routing.engine_load import EngineLoad

CEILING = 256  # most a discovered budget grows to (vLLM's default --max-num-seqs)
COLD_START = 4  # a new deployment's budget before anything is known about its engine
LATE_FACTOR = 2.0  # a first byte later than this times the unloaded one, plus the slack, was queued
LATE_SLACK_S = 0.05
PROBE_EVERY_S = 5.0  # after the engine queued, grow again only this long after the last shrink
# ...or this long, when its KV cache had room: then its sequence limit (a static setting) was the bound
PROBE_FIXED_LIMIT_S = 60.0
KV_FULL = 0.9


@dataclass(slots=True)
class Capacity:
    """A deployment's in-flight budget (`limit`) and why it is what it is (`source`, `reason`)."""

    configured: int | None = None  # an operator's max_in_flight: fixed, nothing is discovered
    ceiling: int = CEILING
    limit: int = COLD_START
    source: str = "cold start"
    reason: str = "nothing measured yet"
    known: int | None = None  # what the engine ran for us the last time it queued: its capacity then
    probed_at: float = 0.0  # last time the engine queued, or the budget went past `known`
    probe_every_s: float = PROBE_EVERY_S
    engine_metrics: bool = False  # the engine publishes its load: the adaptive signals stand aside
    _queued_before: bool = False  # the previous metrics scrape saw the engine queue too
    _growth: float = 0.0  # fractional growth carried between adaptive samples
    _baselines: dict[int, float] | None = None  # unloaded time to first byte per prompt-size bucket

    def __post_init__(self) -> None:
        if self.configured is not None:
            self.limit, self.source, self.reason = self.configured, "configured", "max_in_flight in the catalog"
        else:
            self.limit = min(self.limit, self.ceiling)
            self._baselines = {}

    @property
    def discovers(self) -> bool:
        return self.configured is None

    def _may_grow(self, now: float) -> bool:
        """Below the known capacity always; past it only once per probe interval."""
        return self.known is None or self.limit < self.known or now - self.probed_at >= self.probe_every_s

    def _grown(self, now: float) -> int:
        known = self.known
        if known is None:
            return self.limit * 2  # slow start: nothing known yet
        if self.limit < known:
            return min(known, self.limit * 2)  # back up to what the engine ran before
        self.probed_at = now
        return self.limit + 1

    def _saturated(self, fits: int, now: float, source: str, reason: str) -> bool:
        self.probed_at, self._growth = now, 0.0
        changed = self._set(min(self.limit, fits), source, reason)
        self.known = self.limit  # not `fits` when requests sent before a shrink still run above it
        return changed

    # -- engine metrics ------------------------------------------------------------------------------

    def engine_reported(self, load: EngineLoad, ours: int, backlog: int, now: float) -> bool:
        """One scrape of the engine's metrics; `ours` run there from here, `backlog` wait here.
        True when the limit changed."""
        self.engine_metrics = True
        queued = load.waiting > 0
        confirmed, self._queued_before = queued and self._queued_before, queued
        source = f"engine metrics ({load.engine})"
        kv = "" if load.kv_usage is None else f", KV cache {load.kv_usage:.0%} used"
        if confirmed:  # two scrapes in a row: not a request caught between arrival and admission
            kv_bound = load.kv_usage is None or load.kv_usage >= KV_FULL
            self.probe_every_s = PROBE_EVERY_S if kv_bound else PROBE_FIXED_LIMIT_S
            reason = f"the engine queues {load.waiting} with {load.running} running{kv}"
            return self._saturated(max(1, ours - load.waiting), now, source, reason)
        if queued or ours < self.limit or not backlog or not self._may_grow(now):
            return False  # nothing learnt: the engine is not the bottleneck, or the budget is not used up
        reason = f"the engine runs all {load.running} without queueing and {backlog} wait here{kv}"
        return self._set(self._grown(now), source, reason)

    # -- adaptive, from what the gateway observes --------------------------------------------------

    def late_after_s(self, prompt_tokens: int) -> float | None:
        """When a first byte still missing means the engine queued the request (None: unknown yet)."""
        baselines = self._baselines
        baseline = None if baselines is None else baselines.get(prompt_tokens.bit_length())
        return None if baseline is None else LATE_FACTOR * baseline + LATE_SLACK_S

    def first_byte(self, seconds: float, prompt_tokens: int, in_flight_at_send: int, now: float) -> bool:
        """A streamed request's first byte came `seconds` after it was sent. True when the limit changed."""
        baselines = self._baselines
        if baselines is None or self.engine_metrics:
            return False
        late = self.late_after_s(prompt_tokens)
        if late is not None and seconds > late:
            return self.queued(in_flight_at_send, now)
        bucket = prompt_tokens.bit_length()
        if bucket not in baselines or seconds < baselines[bucket]:
            baselines[bucket] = seconds
        if in_flight_at_send < self.limit or not self._may_grow(now):
            return False
        # One step per on-time request below the known capacity (a doubling per round trip), one
        # per budget's worth past it.
        past_known = self.known is not None and self.limit >= self.known
        self._growth += 1.0 / self.limit if past_known else 1.0
        if self._growth < 1.0:
            return False
        self._growth -= 1.0
        if past_known:
            self.probed_at = now
        reason = f"first bytes on time with {in_flight_at_send} in flight"
        return self._set(self.limit + 1, "adaptive (time to first byte)", reason)

    def queued(self, in_flight_at_send: int, now: float) -> bool:
        """A request sent while `in_flight_at_send` ran here (itself included) waited in the engine."""
        if self.engine_metrics or not self.discovers:
            return False
        reason = f"a request sent with {in_flight_at_send} in flight waited in the engine"
        return self._saturated(max(1, in_flight_at_send - 1), now, "adaptive (time to first byte)", reason)

    def refused(self, others_in_flight: int, now: float) -> bool:
        """The engine refused or reset a connection while `others_in_flight` of ours ran there: it
        takes no more connections than that (its metrics, if any, cannot say so)."""
        self._growth, self.probed_at = 0.0, now
        reason = f"the engine refused a connection with {others_in_flight} of ours running"
        source = self.source if self.engine_metrics else "adaptive (refused connections)"
        changed = self._set(max(1, min(self.limit, others_in_flight)), source, reason)
        self.known = self.limit
        return changed

    def forget(self) -> None:
        """The engine was unreachable (maybe restarting, maybe resized): what was learnt is stale."""
        self.known, self._growth, self._queued_before = None, 0.0, False
        self.probe_every_s = PROBE_EVERY_S

    def shared_by(self, instances: int) -> bool:
        """A configured budget is the engine's, and `instances` gateways send to it: each keeps its
        share (at least 1), so together they never exceed it. True when the limit changed. (A
        discovered budget already reads the engine's whole load, the others' requests included.)"""
        if self.configured is None:
            return False
        limit = max(1, self.configured // max(1, instances))
        changed = limit != self.limit
        self.limit = limit
        self.source = "configured" if instances <= 1 else f"configured, shared by {instances} instances"
        self.reason = "max_in_flight in the catalog" + ("" if instances <= 1 else f", divided by {instances}")
        return changed

    def _set(self, limit: int, source: str, reason: str) -> bool:
        if not self.discovers:
            return False
        limit = max(1, min(limit, self.ceiling))
        changed = limit != self.limit
        self.limit, self.source, self.reason = limit, source, reason
        return changed
