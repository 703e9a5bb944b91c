"""The fair queue in front of every deployment, for asyncio request handlers.

Each deployment has a lane: a `Dispatcher` (budget + discipline) and the futures of the requests
waiting on it. A request enqueues, waits until the dispatcher starts it (or its deadline passes, or
its client leaves), runs, and releases its place, which starts whoever the discipline picks next.
A lane left with room and nobody waiting takes over the next request waiting on another lane that
may also serve it, so no deployment of a pool idles while work for it waits elsewhere.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from tenantgate.domain import QueueTerms
from tenantgate.errors import QueueFull, QueueTimeout
from tenantgate.routing.catalog import Deployment
from tenantgate.scheduling.capacity import Capacity
from tenantgate.scheduling.disciplines import make_discipline
from tenantgate.scheduling.dispatcher import Dispatcher
from tenantgate.scheduling.forecast import Forecast
from tenantgate.scheduling.state import MemoryBudget, VirtualCounters
from tenantgate.scheduling.tenant_caps import TenantCaps
from tenantgate.scheduling.tickets import Prices, Ticket

FORECAST_TTL_S = 0.2  # waiting requests share one pass over the queue per this interval
EQUAL_WAIT_S = 0.05  # placement treats predicted waits this close as equal
PREFIX_MEMORY_S = 120.0  # a deployment is taken to still hold a prefix it served this recently
PREFIX_MEMORY = 8192  # prefixes remembered per deployment (the oldest are forgotten first)


class Displaced(Exception):
    """The deployment a request waited on stopped taking work (drained); place it elsewhere."""


class Lane:
    def __init__(self, deployment: Deployment, dispatcher: Dispatcher, capacity: Capacity) -> None:
        self.deployment = deployment
        self.dispatcher = dispatcher
        self.capacity = capacity
        self.prefixes: OrderedDict[int, float] = OrderedDict()  # prefix key -> when it was last sent here
        self.waiters: dict[Ticket, Waiter] = {}
        self._forecast: dict[Ticket, Forecast] = {}
        self._forecast_at = -math.inf

    def placement_key(self, ticket: Ticket, prefix: int | None, now: float) -> tuple[int, int, float, float]:
        dispatcher = self.dispatcher
        load = dispatcher.budget.sequences / self.capacity.limit
        wait = math.floor(dispatcher.predicted_wait_s(ticket) / EQUAL_WAIT_S)
        cold = 0 if prefix is not None and self.holds(prefix, now) else 1
        return wait, cold, self.deployment.cost_per_1m_tokens, load

    def holds(self, prefix: int, now: float) -> bool:
        """This deployment served the prefix recently: its engine's prefix cache may still have it."""
        served = self.prefixes.get(prefix)
        return served is not None and now - served < PREFIX_MEMORY_S

    def remember(self, prefix: int, now: float) -> None:
        prefixes = self.prefixes
        prefixes[prefix] = now
        prefixes.move_to_end(prefix)
        if len(prefixes) > PREFIX_MEMORY:
            prefixes.popitem(last=False)

    def forecast(self, ticket: Ticket, now: float) -> Forecast | None:
        if now - self._forecast_at > FORECAST_TTL_S:
            self._forecast, self._forecast_at = self.dispatcher.forecast(now), now
        forecast = self._forecast.get(ticket)
        if forecast is None and ticket in self.waiters:  # it joined after the shared pass: its own pass
            forecast = self.dispatcher.forecast(now, only=ticket).get(ticket)
        return forecast

    def tenant_queues(self, now: float) -> dict[str, TenantWaiting]:
        """Per tenant id: how many of its requests wait here, and when the first of them should start."""
        queues: dict[str, TenantWaiting] = {}
        if not len(self.dispatcher.queue):
            return queues
        for ticket, forecast in self.dispatcher.forecast(now).items():
            entry = queues.setdefault(ticket.tenant, TenantWaiting())
            entry.waiting += 1
            start = forecast.predicted_start_s
            if start is not None and (entry.next_start_s is None or start < entry.next_start_s):
                entry.next_start_s = start
        return queues


@dataclass(slots=True)
class TenantWaiting:
    waiting: int = 0
    next_start_s: float | None = None  # None until the deployment's service rate is measured


@dataclass(frozen=True, slots=True)
class WaitingRequest:
    """What the caller's tenant may see of one of its waiting requests."""

    request_id: str
    model: str
    stream: bool
    client_request_id: str | None = None


@dataclass(eq=False, slots=True)
class Waiter:
    lane: Lane  # where it waits (or, once started, runs): a take-over moves it
    ticket: Ticket
    future: asyncio.Future[None]
    elsewhere: tuple[Lane, ...] = ()  # the other lanes that may serve it
    about: WaitingRequest | None = None


OnUpdate = Callable[[Forecast], Awaitable[None]]


class QueueObserver(Protocol):
    labels: dict[str, str]  # tenant id -> a name for people (the slug)

    def started(self, ticket: Ticket, waited_s: float, pool: str) -> None: ...

    def ended(self, ticket: Ticket, pool: str, weighted_cost: float) -> None:
        """A request that ran is over; it was served `weighted_cost` (cost / its plan weight)."""

    def rejected(self, ticket: Ticket, reason: str) -> None: ...


class _Unobserved:
    def __init__(self) -> None:
        self.labels: dict[str, str] = {}

    def started(self, ticket: Ticket, waited_s: float, pool: str) -> None:
        pass

    def ended(self, ticket: Ticket, pool: str, weighted_cost: float) -> None:
        pass

    def rejected(self, ticket: Ticket, reason: str) -> None:
        pass


class Scheduler:
    def __init__(
        self, deployments: Iterable[Deployment], prices: Prices | None = None,
        clock: Callable[[], float] = time.monotonic, observer: QueueObserver | None = None,
        counters_for: Callable[[str], VirtualCounters] | None = None,
    ) -> None:  # fmt: skip
        self.prices = prices or Prices()
        self.clock = clock
        self.observer: QueueObserver = observer or _Unobserved()
        self.lanes: dict[str, Lane] = {}
        self.caps = TenantCaps()  # plans that queue over their concurrency, across every lane
        for deployment in deployments:
            capacity = Capacity(deployment.max_in_flight)
            budget = MemoryBudget(capacity.limit, deployment.max_inflight_tokens)
            counters = None if counters_for is None else counters_for(deployment.name)
            discipline = make_discipline(deployment.scheduler, self.prices, counters)
            dispatcher = Dispatcher(discipline, budget, self.prices, caps=self.caps)
            self.lanes[deployment.name] = Lane(deployment, dispatcher, capacity)

    def ticket(self, tenant: str, label: str, prompt_tokens: int, max_output: int, terms: QueueTerms) -> Ticket:
        self.observer.labels[tenant] = label
        if terms.concurrency is not None or tenant in self.caps.caps:
            self.caps.set(tenant, terms.concurrency)
        return Ticket(tenant, prompt_tokens, max_output, self.clock(), terms.weight)

    def order(
        self, deployments: Iterable[Deployment], ticket: Ticket, prefix: Callable[[], int | None] = lambda: None
    ) -> list[Lane]:
        """Placement: deployments taking work, least predicted wait first; among equal waits, one that
        recently served this tenant's same prompt prefix (`prefix`: a key that includes the tenant, so
        never another tenant's), then the cheapest, then the least loaded (so that equal, idle
        deployments share the work)."""
        lanes = [self.lanes[d.name] for d in deployments if d.accepts_work]
        if len(lanes) > 1:
            key, now = prefix(), self.clock()
            lanes.sort(key=lambda lane: lane.placement_key(ticket, key, now))
        return lanes

    def enqueue(
        self, lane: Lane, ticket: Ticket, terms: QueueTerms, elsewhere: Iterable[Lane] = (),
        about: WaitingRequest | None = None,
    ) -> Waiter | None:  # fmt: skip
        """Join the lane's queue; None when the ticket started at once."""
        dispatcher = lane.dispatcher
        if dispatcher.queue.queued(ticket.tenant) >= terms.max_waiting:
            self.observer.rejected(ticket, "queue_full")
            starts = [
                f.predicted_start_s
                for t, f in dispatcher.forecast(self.clock()).items()
                if t.tenant == ticket.tenant and f.predicted_start_s is not None
            ]
            raise QueueFull(
                f"Your tenant already has {terms.max_waiting} requests waiting for deployment "
                f"'{lane.deployment.name}', the most its plan allows; retry when some have started.",
                retry_after_s=min(starts, default=1.0),
            )
        ticket.arrival = now = self.clock()
        started = dispatcher.offer(ticket, now)
        self._wake(lane, started, now)
        if ticket in started:
            return None
        waiter = Waiter(lane, ticket, asyncio.get_running_loop().create_future(), tuple(elsewhere), about)
        lane.waiters[ticket] = waiter
        return waiter

    async def wait(
        self, waiter: Waiter, deadline: float, on_update: OnUpdate | None = None, every_s: float = 1.0
    ) -> None:
        """Until the ticket starts. Raises QueueTimeout at `deadline`, Displaced if the lane drains."""
        try:
            while not waiter.future.done():
                remaining = deadline - self.clock()
                if remaining <= 0:
                    self.observer.rejected(waiter.ticket, "queue_timeout")
                    raise QueueTimeout(
                        f"The request waited {self.clock() - waiter.ticket.arrival:.1f} s in the fair queue, the "
                        "longest its plan allows; the deployments serving this model are busy, retry later."
                    )
                try:
                    async with asyncio.timeout(min(remaining, every_s)):
                        await asyncio.shield(waiter.future)
                except TimeoutError:
                    if on_update is not None and not waiter.future.done():
                        forecast = waiter.lane.forecast(waiter.ticket, self.clock())
                        if forecast is not None:
                            await on_update(forecast)
            waiter.future.result()  # raises Displaced
        except BaseException:
            self.abandon(waiter)
            raise

    def forecast(self, waiter: Waiter) -> Forecast | None:
        return waiter.lane.forecast(waiter.ticket, self.clock())

    def waiting(self, tenant: str) -> list[tuple[Waiter, Forecast | None]]:
        """One tenant's waiting requests, with where each stands."""
        now = self.clock()
        return [
            (waiter, lane.forecast(ticket, now))
            for lane in self.lanes.values()
            for ticket, waiter in lane.waiters.items()
            if ticket.tenant == tenant
        ]

    def abandon(self, waiter: Waiter) -> None:
        """The request stopped waiting (timeout, client gone); if it had just started, free its place."""
        lane, ticket = waiter.lane, waiter.ticket
        lane.waiters.pop(ticket, None)
        if lane.dispatcher.withdraw(ticket):
            self.observer.rejected(ticket, "left")
        else:
            self.release(lane, ticket)

    def charge(self, lane: Lane, ticket: Ticket, output_tokens: int) -> None:
        """The request has streamed `output_tokens` in total so far."""
        more = output_tokens - ticket.output_charged
        if more > 0:
            lane.dispatcher.charge_output(ticket, more, self.clock())

    def release(self, lane: Lane, ticket: Ticket, output_tokens: int | None = None, refund: bool = False) -> None:
        """The ticket's request ended; `refund` when it never ran (its prompt charge is taken back)."""
        if ticket not in lane.dispatcher.running:
            return  # released already
        if output_tokens is not None:
            self.charge(lane, ticket, output_tokens)
        if not refund:
            cost = self.prices.cost(ticket.prompt_tokens, ticket.output_charged) / ticket.weight
            self.observer.ended(ticket, lane.deployment.pool, cost)
        now = self.clock()
        was_full = ticket.tenant in self.caps.full
        self._wake(lane, lane.dispatcher.release(ticket, now, output_tokens, refund), now)
        if was_full and ticket.tenant not in self.caps.full:  # its requests waiting elsewhere may start
            for other in self.lanes.values():
                if other is not lane and other.dispatcher.queue.queued(ticket.tenant):
                    self._wake(other, other.dispatcher.fill(now), now)
        self._take_over(lane, now)

    def resize(self, lane: Lane) -> None:
        """The lane's capacity changed: a larger budget starts what waits at once, a smaller one lets
        what runs finish."""
        budget = lane.dispatcher.budget
        grew = lane.capacity.limit > budget.max_sequences
        budget.max_sequences = lane.capacity.limit
        if grew:
            now = self.clock()
            self._wake(lane, lane.dispatcher.fill(now), now)
            self._take_over(lane, now)

    def share_budgets(self, instances: int) -> None:
        """`instances` gateways send to the same engines: each configured budget is shared out."""
        for lane in self.lanes.values():
            if lane.capacity.shared_by(instances):
                self.resize(lane)

    def drain(self, name: str, draining: bool = True) -> Lane:
        """Stop (or resume) dispatch to a deployment; requests waiting on it are placed elsewhere."""
        lane = self.lanes[name]
        lane.deployment.draining = draining
        lane.dispatcher.paused = draining
        if draining:
            self.evacuate(lane)
        else:
            now = self.clock()
            self._wake(lane, lane.dispatcher.resume(now), now)
            self._take_over(lane, now)
        return lane

    def circuit_opened(self, lane: Lane) -> None:
        """The deployment's circuit opened (here or on another instance): what was learned of its
        capacity is forgotten and what waits there moves on."""
        lane.capacity.forget()
        self.evacuate(lane)

    def evacuate(self, lane: Lane) -> None:
        """Send the requests waiting on `lane` on to their next deployment (it drains or has failed)."""
        for ticket, waiter in list(lane.waiters.items()):
            if lane.dispatcher.withdraw(ticket) and not waiter.future.done():
                waiter.future.set_exception(Displaced(lane.deployment.name))
            lane.waiters.pop(ticket, None)

    def _wake(self, lane: Lane, started: list[Ticket], now: float) -> None:
        for ticket in started:
            self.observer.started(ticket, now - ticket.arrival, lane.deployment.pool)
            waiter = lane.waiters.pop(ticket, None)
            if waiter is not None and not waiter.future.done():
                waiter.future.set_result(None)

    def _take_over(self, idle: Lane, now: float) -> None:
        """Work conservation across lanes: while `idle` has room and nothing of its own waits, start
        the head of the longest other queue there, if that request may run on `idle`."""
        dispatcher = idle.dispatcher
        while not len(dispatcher.queue) and not dispatcher.paused and idle.deployment.accepts_work:
            waiter = self._movable_to(idle)
            if waiter is None or not dispatcher.budget.fits(waiter.ticket.budget_tokens):
                return
            self._move(waiter, idle, now)

    def _movable_to(self, idle: Lane) -> Waiter | None:
        found, depth = None, 0
        for lane in self.lanes.values():
            queue = lane.dispatcher.queue
            if lane is idle or len(queue) <= depth:
                continue
            head = queue.peek(self.caps.full)  # the next one by the lane's own fair order
            waiter = None if head is None else lane.waiters.get(head)
            if waiter is not None and idle in waiter.elsewhere:
                found, depth = waiter, len(queue)
        return found

    def _move(self, waiter: Waiter, target: Lane, now: float) -> None:
        source, old = waiter.lane, waiter.ticket
        source.dispatcher.withdraw(old)
        del source.waiters[old]
        ticket = Ticket(old.tenant, old.prompt_tokens, old.max_output, old.arrival, old.weight)
        waiter.lane, waiter.ticket = target, ticket
        started = target.dispatcher.offer(ticket, now)  # room and an empty queue: it starts at once
        assert started == [ticket]
        self.observer.started(ticket, now - ticket.arrival, target.deployment.pool)
        waiter.future.set_result(None)
