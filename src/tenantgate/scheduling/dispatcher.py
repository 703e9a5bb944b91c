"""One deployment's dispatch decisions: run while the in-flight budget allows, queue fairly above it.

Pure and clock-free (callers pass `now`), so the gateway and the virtual-time experiments drive
the very same object. Work-conserving: whenever the budget has room and something waits, the
discipline's choice starts; the first choice that does not fit stops the round (no skipping, so a
large request cannot starve behind small ones).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tenantgate.scheduling.disciplines import CostOf, Discipline
from tenantgate.scheduling.forecast import ArrivalRates, OutputPredictor, ServiceRate
from tenantgate.scheduling.state import InflightBudget
from tenantgate.scheduling.tickets import Prices, Ticket


@dataclass(frozen=True, slots=True)
class Forecast:
    position: int  # requests that start before this one (0: next)
    predicted_start_s: float | None  # from now; None until the deployment's rate has been measured


class Dispatcher:
    def __init__(
        self,
        discipline: Discipline,
        budget: InflightBudget,
        prices: Prices | None = None,
        rate: ServiceRate | None = None,
        predictor: OutputPredictor | None = None,
    ) -> None:
        self.queue = discipline
        self.budget = budget
        self.prices = prices or Prices()
        self.rate = rate or ServiceRate()
        self.predictor = predictor or OutputPredictor()
        self.arrivals = ArrivalRates()
        self.weights: dict[str, float] = {}
        self.running: set[Ticket] = set()
        self.paused = False  # draining: what runs finishes, nothing new starts

    def offer(self, ticket: Ticket, now: float) -> list[Ticket]:
        """Queue `ticket` and start whatever may start now (it, or nothing, when others wait first)."""
        self.arrivals.record(ticket.tenant, self.expected_cost(ticket), now)
        self.weights[ticket.tenant] = ticket.weight
        queue = self.queue
        if not len(queue) and not self.paused and self.budget.fits(ticket.budget_tokens):
            queue.start_now(ticket)  # the common, uncontended case: no queue to go through
            self._start(ticket, now, saturated=False)
            return [ticket]
        queue.push(ticket)
        return self._fill(now)

    def withdraw(self, ticket: Ticket) -> bool:
        """Take a waiting ticket out (client gone, timed out). False if it already started."""
        return self.queue.remove(ticket)

    def charge_output(self, ticket: Ticket, tokens: int, now: float) -> None:
        self.queue.charge_output(ticket, tokens)
        self.rate.record(self.prices.output * tokens, now, saturated=len(self.queue) > 0)

    def release(self, ticket: Ticket, now: float, output_tokens: int | None = None) -> list[Ticket]:
        """`ticket` finished (or failed); its budget goes to whoever is next. Returns what started."""
        self.running.discard(ticket)
        self.budget.give(ticket.budget_tokens)
        if output_tokens is not None:
            self.predictor.observe(ticket.tenant, output_tokens)
        return self._fill(now)

    def resume(self, now: float) -> list[Ticket]:
        self.paused = False
        return self._fill(now)

    def _fill(self, now: float) -> list[Ticket]:
        started: list[Ticket] = []
        queue, budget = self.queue, self.budget
        if self.paused or not len(queue):
            return started
        while (head := queue.peek()) is not None and budget.fits(head.budget_tokens):
            ticket = queue.pop()
            self._start(ticket, now, saturated=len(queue) > 0)
            started.append(ticket)
        return started

    def _start(self, ticket: Ticket, now: float, saturated: bool) -> None:
        self.budget.take(ticket.budget_tokens)
        ticket.dispatched_at = now
        self.running.add(ticket)
        self.rate.record(self.prices.prompt * ticket.prompt_tokens, now, saturated)

    def expected_cost(self, ticket: Ticket) -> float:
        return self.prices.cost(ticket.prompt_tokens, round(self.predictor.expect(ticket.tenant, ticket.max_output)))

    def forecast(self, now: float, only: Ticket | None = None) -> dict[Ticket, Forecast]:
        rates = self.arrivals.rates(now)
        return forecast_queue(self.queue, self.expected_cost, self.rate.value, rates, self.weights, only)

    def predicted_wait_s(self, ticket: Ticket) -> float:
        """What a new ticket would wait here: 0 when it would start at once (placement's yardstick)."""
        if not len(self.queue) and self.budget.fits(ticket.budget_tokens):
            return 0.0
        rate = self.rate.value
        backlog = sum(self.expected_cost(t) for t, _ in self.queue.drain_order(self.expected_cost))
        own = self.expected_cost(ticket)
        if not rate:
            return float(len(self.queue) + 1)  # unmeasured: rank by depth until a rate is known
        return (backlog + own) / rate


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
