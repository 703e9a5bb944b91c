"""Predicted start times, and the measurements behind them: served cost per second, expected output
length, and how fast each tenant's work arrives.

Nothing here is a constant guess: the rate is what the deployment actually served while it was
saturated, and the output length is each tenant's recent history (the VTC-predict estimator: an
average over about the last five requests).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from tenantgate.scheduling.disciplines import CostOf, Discipline
from tenantgate.scheduling.tickets import Prices, Ticket


class ServiceRate:
    """Cost units served per second, averaged over windows in which work was waiting throughout.

    Windows with an empty queue say how much was asked, not what the deployment can do, so they
    are not sampled. `value` is None until one saturated window has been seen; until then
    `estimate` is the most served per second over any stretch so far (at least COLD_AFTER_S long):
    a lower bound of what the deployment can do, so early predictions err late, not early.
    """

    COLD_AFTER_S = 0.5

    def __init__(self, window_s: float = 2.0, smoothing: float = 0.3) -> None:
        self.window_s = window_s
        self.smoothing = smoothing
        self.value: float | None = None
        self.cold: float | None = None
        self._start: float | None = None
        self._cost = 0.0
        self._saturated = True

    def record(self, cost: float, now: float, saturated: bool) -> None:
        if self._start is None:
            self._start, self._saturated = now, saturated
        self._cost += cost
        self._saturated = self._saturated and saturated
        elapsed = now - self._start
        if self.value is None and elapsed >= self.COLD_AFTER_S:
            served = self._cost / elapsed
            if self.cold is None or served > self.cold:
                self.cold = served
        if elapsed < self.window_s:
            return
        if self._saturated:
            sample = self._cost / elapsed
            self.value = sample if self.value is None else self.value + self.smoothing * (sample - self.value)
        self._start, self._cost, self._saturated = now, 0.0, saturated

    @property
    def estimate(self) -> float | None:
        return self.value if self.value is not None else self.cold


class OutputPredictor:
    """Expected output tokens per tenant: a running average that forgets with a window of about five."""

    def __init__(self, window: int = 5) -> None:
        self.window = window
        self._mean: dict[str, float] = {}

    def observe(self, tenant: str, output_tokens: int) -> None:
        mean = self._mean.get(tenant)
        self._mean[tenant] = (
            float(output_tokens) if mean is None else (mean * (self.window - 1) + output_tokens) / self.window
        )

    def expect(self, tenant: str, max_output: int) -> float:
        mean = self._mean.get(tenant)
        return float(max_output) if mean is None else min(float(max_output), mean)


class ArrivalRates:
    """Cost arriving per second, per tenant: an exponentially decaying sum over about `horizon_s`."""

    def __init__(self, horizon_s: float = 60.0) -> None:
        self.horizon_s = horizon_s
        self._sums: dict[str, tuple[float, float]] = {}  # tenant -> (decayed sum, at)

    def record(self, tenant: str, cost: float, now: float) -> None:
        total, at = self._sums.get(tenant, (0.0, now))
        self._sums[tenant] = (total * math.exp((at - now) / self.horizon_s) + cost, now)

    def rates(self, now: float) -> dict[str, float]:
        return {
            tenant: total * math.exp((at - now) / self.horizon_s) / self.horizon_s
            for tenant, (total, at) in self._sums.items()
        }


class QueueOutlook:
    """What one queue's start forecasts are made from, fed as work arrives, starts and finishes."""

    def __init__(
        self, prices: Prices, rate: ServiceRate | None = None, predictor: OutputPredictor | None = None
    ) -> None:
        self.prices = prices
        self.rate = rate or ServiceRate()
        self.predictor = predictor or OutputPredictor()
        self.arrivals = ArrivalRates()
        self.weights: dict[str, float] = {}

    def arrived(self, ticket: Ticket, now: float) -> None:
        self.arrivals.record(ticket.tenant, self.expected_cost(ticket), now)
        self.weights[ticket.tenant] = ticket.weight

    def expected_cost(self, ticket: Ticket) -> float:
        return self.prices.cost(ticket.prompt_tokens, round(self.predictor.expect(ticket.tenant, ticket.max_output)))

    def forecast(self, queue: Discipline, now: float, only: Ticket | None = None) -> dict[Ticket, Forecast]:
        rates = self.arrivals.rates(now)
        return forecast_queue(queue, self.expected_cost, self.rate.estimate, rates, self.weights, only)


@dataclass(frozen=True, slots=True)
class Forecast:
    position: int  # requests that start before this one (0: next)
    predicted_start_s: float | None  # from now; None until the deployment has served anything


def forecast_queue(
    queue: Discipline, cost: CostOf, rate: float | None, arrivals: Mapping[str, float],
    weights: Mapping[str, float], only: Ticket | None = None,
) -> dict[Ticket, Forecast]:  # fmt: skip
    """Position and predicted start of every waiting ticket (or just of `only`).

    Everything the discipline would start before a ticket is served first, then one request's worth
    of service frees its slot: start ≈ (cost ahead + its own) / rate. Under a fair discipline, other
    tenants keep arriving while a ticket waits and their new requests go first until their counters
    pass its start tag; `arrivals` (cost per second per tenant) adds that share of the wait.
    """
    costs: dict[Ticket, float] = {}
    order = queue.drain_order(lambda t: costs.setdefault(t, cost(t)))
    finished_at: dict[str, float] = {}  # each queued tenant's counter once its queued work is served
    for ticket, tag in order:
        if tag is not None:
            finished_at[ticket.tenant] = tag + costs.setdefault(ticket, cost(ticket)) / ticket.weight
    floor = min((tag for _, tag in order if tag is not None), default=0.0)  # where newcomers are lifted to
    result: dict[Ticket, Forecast] = {}
    ahead = 0.0
    for position, (ticket, tag) in enumerate(order):
        ahead += costs.setdefault(ticket, cost(ticket))
        if only is not None and ticket is not only:
            continue
        result[ticket] = Forecast(position, _start(ticket, tag, ahead, rate, arrivals, weights, finished_at, floor))
    return result


def _start(
    ticket: Ticket, tag: float | None, ahead: float, rate: float | None, arrivals: Mapping[str, float],
    weights: Mapping[str, float], finished_at: Mapping[str, float], floor: float,
) -> float | None:  # fmt: skip
    if not rate:
        return None
    start = ahead / rate
    if tag is None:
        return start
    room = {
        tenant: (tag - finished_at.get(tenant, floor)) * weights.get(tenant, 1.0)
        for tenant in arrivals
        if tenant != ticket.tenant and finished_at.get(tenant, floor) < tag
    }
    for _ in range(4):  # a fixed point: the longer it waits, the more others get in first
        start = (ahead + sum(min(arrivals[t] * start, gap) for t, gap in room.items())) / rate
    return start
