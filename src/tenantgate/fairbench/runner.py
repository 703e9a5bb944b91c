"""Drive the real scheduler over the engine model in virtual time.

Two placements of the scheduler, both with the production classes:
- `engine` (default): the discipline is the engine's own admission queue, consulted at every
  admission point with the engine's KV check — the setting of the VTC paper.
- `gateway` (`inflight_tokens` set): the gateway's `Dispatcher` holds requests until the
  deployment's in-flight token budget has room, then hands them to an engine that serves first
  come, first served — the setting of tenantgate in front of vLLM.
`rpm:N` is the paper's request-rate baseline: a client's request is rejected when N of its requests
were accepted in the last 60 s; accepted ones are served first come, first served.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tenantgate.fairbench.metrics import Report, Served, report
from tenantgate.fairbench.workloads import Workload
from tenantgate.scheduling.disciplines import DISCIPLINES, Discipline, make_discipline
from tenantgate.scheduling.dispatcher import Dispatcher
from tenantgate.scheduling.forecast import QueueOutlook
from tenantgate.scheduling.state import MemoryBudget
from tenantgate.scheduling.tickets import Prices, Ticket
from tenantgate.sim.engine_model import EngineConfig, EngineModel, FcfsPolicy, SimRequest, Step


@dataclass(frozen=True, slots=True)
class Experiment:
    scheduler: str = "vtc"  # vtc | vtc-predict | lcf | fcfs | rpm:N
    weights: Mapping[str, float] | None = None
    inflight_tokens: int | None = None
    engine: EngineConfig = field(default_factory=EngineConfig)
    prices: Prices = field(default_factory=Prices)
    predict: bool = True

    def __post_init__(self) -> None:
        if self.scheduler not in DISCIPLINES and not self.scheduler.startswith("rpm:"):
            raise ValueError(f"unknown scheduler '{self.scheduler}' (choose {', '.join(DISCIPLINES)} or rpm:N)")
        if self.scheduler.startswith("rpm:"):
            limit = self.scheduler.removeprefix("rpm:")
            if not limit.isdigit() or int(limit) < 1:
                raise ValueError("rpm:N needs a whole number N >= 1, e.g. rpm:10")
        if self.inflight_tokens is not None and self.inflight_tokens < 1:
            raise ValueError("the in-flight token budget must be at least 1")

    @property
    def rpm_limit(self) -> int | None:
        return int(self.scheduler.removeprefix("rpm:")) if self.scheduler.startswith("rpm:") else None


class QueuePolicy:
    """The engine's admission queue backed by a scheduling discipline (the `engine` placement)."""

    def __init__(self, discipline: Discipline, prices: Prices) -> None:
        self.discipline = discipline
        self.prices = prices
        self.outlook = QueueOutlook(prices)
        self.tickets: dict[SimRequest, Ticket] = {}
        self.requests: dict[Ticket, SimRequest] = {}
        self.now = 0.0

    def add(self, request: SimRequest) -> None:
        ticket = self.tickets[request]
        self.outlook.arrived(ticket, request.arrival)
        if self.discipline.predictive:
            ticket.predicted_output = round(self.outlook.predictor.expect(ticket.tenant, ticket.max_output))
        self.discipline.push(ticket)

    def peek(self) -> SimRequest | None:
        ticket = self.discipline.peek()
        return None if ticket is None else self.requests[ticket]

    def pop(self) -> SimRequest:
        ticket = self.discipline.pop()
        saturated = len(self.discipline) > 0
        self.outlook.rate.record(self.prices.prompt * ticket.prompt_tokens, self.now, saturated)
        return self.requests[ticket]

    def remove(self, request: SimRequest) -> bool:
        return self.discipline.remove(self.tickets[request])

    def __len__(self) -> int:
        return len(self.discipline)


class _Sampler:
    """Forecasts cost a pass over the queue, so one arrival per client per simulated second gets one."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.last: dict[str, float] = {}

    def wants(self, client: str, now: float) -> bool:
        if not self.enabled or now - self.last.get(client, -1.0) < 1.0:
            return False
        self.last[client] = now
        return True


ServiceObserver = Callable[[float, str, float, frozenset[str]], None]
"""(time, client, cost served, clients with requests waiting): service as the engine does it."""


def run(workload: Workload, experiment: Experiment, observe: ServiceObserver | None = None) -> Report:
    weights = experiment.weights or {}
    limit = experiment.rpm_limit
    name = "fcfs" if limit is not None else experiment.scheduler
    discipline = make_discipline(name, experiment.prices)
    if experiment.inflight_tokens is None:
        if observe is not None:
            raise ValueError("service is observed behind the gateway only: set inflight_tokens")
        return _run_in_engine(workload, experiment, QueuePolicy(discipline, experiment.prices), weights, limit)
    budget = MemoryBudget(experiment.engine.max_num_seqs, experiment.inflight_tokens)
    dispatcher = Dispatcher(discipline, budget, experiment.prices)
    return _run_behind_gateway(workload, experiment, dispatcher, weights, limit, observe)


class _RateLimit:
    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.accepted: dict[str, deque[float]] = {}

    def rejects(self, client: str, now: float) -> bool:
        if self.limit is None:
            return False
        recent = self.accepted.setdefault(client, deque())
        while recent and recent[0] <= now - 60:
            recent.popleft()
        if len(recent) >= self.limit:
            return True
        recent.append(now)
        return False


def _asked(workload: Workload) -> list[tuple[float, str, float]]:
    return [(a.time, a.client, a.prompt_tokens + 2.0 * a.output_tokens) for a in workload.arrivals]


def _served(request: SimRequest, ticket: Ticket, predicted: float | None, dispatched: float) -> Served:
    assert request.first_token_at is not None and request.finished_at is not None
    return Served(
        request.tenant, request.arrival, request.prompt_tokens, request.output_tokens,
        request.first_token_at, request.finished_at, dispatched, predicted,
    )  # fmt: skip


def _replay(
    workload: Workload, engine: EngineModel, limit: int | None, weights: Mapping[str, float],
    on_arrival: Callable[[SimRequest, Ticket], None], on_step: Callable[[Step], None],
    waiting: Callable[[], bool] = lambda: False,
) -> int:  # fmt: skip
    """Interleave arrivals and engine steps in time order; returns how many requests `rpm:N` rejected."""
    gate = _RateLimit(limit)
    aborted = 0
    pending = deque(workload.arrivals)
    numbers = itertools.count()
    while pending or not engine.idle or waiting():
        moment = engine.next_start()
        if pending and (moment is None or pending[0].time <= moment):
            arrival = pending.popleft()
            if not engine.running:
                engine.advance_to(arrival.time)
            if gate.rejects(arrival.client, arrival.time):
                aborted += 1
                continue
            p, o, t, client = arrival.prompt_tokens, arrival.output_tokens, arrival.time, arrival.client
            on_arrival(
                SimRequest(str(next(numbers)), p, o, t, client), Ticket(client, p, o, t, weights.get(client, 1.0))
            )
            continue
        step = engine.step()
        if step is None:
            break
        on_step(step)
    return aborted


def _run_in_engine(
    workload: Workload, experiment: Experiment, policy: QueuePolicy, weights: Mapping[str, float], limit: int | None
) -> Report:
    engine = EngineModel(experiment.engine, policy)
    predicted: dict[SimRequest, float | None] = {}
    sampler = _Sampler(experiment.predict)
    served: list[Served] = []

    def on_arrival(request: SimRequest, ticket: Ticket) -> None:
        policy.tickets[request], policy.requests[ticket] = ticket, request
        engine.submit(request)
        predicted[request] = _prediction(policy, ticket, sampler.wants(ticket.tenant, ticket.arrival))

    def on_step(step: Step) -> None:
        policy.now = step.end
        for request in step.emitted:
            ticket = policy.tickets[request]
            policy.discipline.charge_output(ticket, 1)
            policy.outlook.rate.record(experiment.prices.output, step.end, saturated=len(policy) > 0)
        for request in step.finished:
            ticket = policy.tickets.pop(request)
            policy.requests.pop(ticket)
            policy.discipline.finish(ticket, request.output_tokens)
            policy.outlook.predictor.observe(ticket.tenant, request.output_tokens)
            assert request.admitted_at is not None
            served.append(_served(request, ticket, predicted.pop(request), request.admitted_at))

    aborted = _replay(workload, engine, limit, weights, on_arrival, on_step)
    return report(served, workload.clients, workload.duration, _asked(workload), aborted)


def _prediction(policy: QueuePolicy, ticket: Ticket, enabled: bool) -> float | None:
    if not enabled or not len(policy.discipline):
        return None
    return policy.outlook.forecast(policy.discipline, ticket.arrival, only=ticket)[ticket].predicted_start_s


def _run_behind_gateway(
    workload: Workload, experiment: Experiment, dispatcher: Dispatcher, weights: Mapping[str, float],
    limit: int | None, observe: ServiceObserver | None,
) -> Report:  # fmt: skip
    engine = EngineModel(experiment.engine, FcfsPolicy())
    sampler = _Sampler(experiment.predict)
    prices = experiment.prices
    tickets: dict[SimRequest, Ticket] = {}
    requests: dict[Ticket, SimRequest] = {}
    predicted: dict[Ticket, float | None] = {}
    served: list[Served] = []

    def start(started: list[Ticket], now: float) -> None:
        for ticket in started:
            request = requests[ticket]
            request.arrival = now  # reaches the engine now; its client-side arrival is on the ticket
            engine.submit(request)

    def on_arrival(request: SimRequest, ticket: Ticket) -> None:
        now = ticket.arrival
        tickets[request], requests[ticket] = ticket, request
        started = dispatcher.offer(ticket, now)
        wanted = ticket not in started and sampler.wants(ticket.tenant, now)
        predicted[ticket] = dispatcher.forecast(now, ticket)[ticket].predicted_start_s if wanted else None
        start(started, now)

    def on_step(step: Step) -> None:
        if observe is not None:
            waiting = frozenset(c for c in workload.clients if dispatcher.queue.queued(c))
            for request in step.emitted:
                prompt = request.prompt_tokens if step.prefill else 0
                observe(step.end, request.tenant, prices.cost(prompt, 1), waiting)
        for request in step.emitted:
            dispatcher.charge_output(tickets[request], 1, step.end)
        for request in step.finished:
            ticket = tickets.pop(request)
            requests.pop(ticket)
            assert ticket.dispatched_at is not None
            request.arrival = ticket.arrival
            served.append(_served(request, ticket, predicted.pop(ticket), ticket.dispatched_at))
            start(dispatcher.release(ticket, step.end, request.output_tokens), step.end)

    aborted = _replay(workload, engine, limit, weights, on_arrival, on_step, lambda: len(dispatcher.queue) > 0)
    return report(served, workload.clients, workload.duration, _asked(workload), aborted)
