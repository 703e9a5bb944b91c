"""One deployment's dispatch decisions: run while the in-flight budget allows, queue fairly above it.

Pure and clock-free (callers pass `now`), so the gateway and the virtual-time experiments drive
the very same object. Work-conserving: whenever the budget has room and something waits, the
discipline's choice starts; the first choice that does not fit stops the round (no skipping, so a
large request cannot starve behind small ones).
"""

from __future__ import annotations

from tenantgate.scheduling.disciplines import Discipline
from tenantgate.scheduling.forecast import Forecast, OutputPredictor, QueueOutlook, ServiceRate
from tenantgate.scheduling.state import InflightBudget
from tenantgate.scheduling.tenant_caps import TenantCaps
from tenantgate.scheduling.tickets import Prices, Ticket


class Dispatcher:
    def __init__(
        self,
        discipline: Discipline,
        budget: InflightBudget,
        prices: Prices | None = None,
        rate: ServiceRate | None = None,
        predictor: OutputPredictor | None = None,
        caps: TenantCaps | None = None,
    ) -> None:
        self.queue = discipline
        self.caps = caps or TenantCaps()
        self.budget = budget
        self.prices = prices or Prices()
        self.outlook = QueueOutlook(self.prices, rate, predictor)
        self.running: set[Ticket] = set()
        self.paused = False  # draining: what runs finishes, nothing new starts

    def offer(self, ticket: Ticket, now: float) -> list[Ticket]:
        """Queue `ticket` and start whatever may start now (it, or nothing, when others wait first)."""
        self.outlook.arrived(ticket, now)
        queue = self.queue
        if queue.predictive:
            ticket.predicted_output = round(self.outlook.predictor.expect(ticket.tenant, ticket.max_output))
        may_start = not self.paused and ticket.tenant not in self.caps.full
        if may_start and not len(queue) and self.budget.fits(ticket.budget_tokens):
            queue.start_now(ticket)  # the common, uncontended case: no queue to go through
            self._start(ticket, now, saturated=False)
            return [ticket]
        queue.push(ticket)
        return self.fill(now)

    def withdraw(self, ticket: Ticket) -> bool:
        """Take a waiting ticket out (client gone, timed out). False if it already started."""
        return self.queue.remove(ticket)

    def charge_output(self, ticket: Ticket, tokens: int, now: float) -> None:
        self.queue.charge_output(ticket, tokens)
        self.outlook.rate.record(self.prices.output * tokens, now, saturated=len(self.queue) > 0)

    def release(
        self, ticket: Ticket, now: float, output_tokens: int | None = None, refund: bool = False
    ) -> list[Ticket]:
        """`ticket` finished (or failed; `refund`: never ran); its budget goes to whoever is next.
        Returns what started."""
        if ticket in self.running:
            self.caps.ended(ticket.tenant)
        self.running.discard(ticket)
        if refund:
            self.queue.refund(ticket)
        else:
            self.queue.finish(ticket, ticket.output_charged if output_tokens is None else output_tokens)
        self.budget.give(ticket.budget_tokens)
        if output_tokens is not None:
            self.outlook.predictor.observe(ticket.tenant, output_tokens)
        return self.fill(now)

    def resume(self, now: float) -> list[Ticket]:
        self.paused = False
        return self.fill(now)

    def fill(self, now: float) -> list[Ticket]:
        started: list[Ticket] = []
        queue, budget, full = self.queue, self.budget, self.caps.full
        if self.paused or not len(queue):
            return started
        while (head := queue.peek(full)) is not None and budget.fits(head.budget_tokens):
            ticket = queue.pop(full)
            self._start(ticket, now, saturated=len(queue) > 0)
            started.append(ticket)
        return started

    def _start(self, ticket: Ticket, now: float, saturated: bool) -> None:
        self.budget.take(ticket.budget_tokens)
        self.caps.started(ticket.tenant)
        ticket.dispatched_at = now
        self.running.add(ticket)
        self.outlook.rate.record(self.prices.prompt * ticket.prompt_tokens, now, saturated)

    def forecast(self, now: float, only: Ticket | None = None) -> dict[Ticket, Forecast]:
        return self.outlook.forecast(self.queue, now, only)

    def predicted_wait_s(self, ticket: Ticket) -> float:
        """What a new ticket would wait here: 0 when it would start at once (placement's yardstick)."""
        if not len(self.queue) and self.budget.fits(ticket.budget_tokens):
            return 0.0
        rate, cost = self.outlook.rate.value, self.outlook.expected_cost
        backlog = sum(cost(t) for t, _ in self.queue.drain_order(cost))
        own = cost(ticket)
        if not rate:
            return float(len(self.queue) + 1)  # unmeasured: rank by depth until a rate is known
        return (backlog + own) / rate
