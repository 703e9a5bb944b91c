"""A pool of N deployments in virtual time: the gateway's fair queue in front of each engine model,
arrivals placed as the gateway places them (least predicted wait, then least loaded).

The capacity planner replays recorded traffic (or a trace) through pools of 1, 2, … deployments and
reads off the time to first token of every request.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from tenantgate.fairbench.workloads import Arrival
from tenantgate.scheduling.disciplines import make_discipline
from tenantgate.scheduling.dispatcher import Dispatcher
from tenantgate.scheduling.state import MemoryBudget
from tenantgate.scheduling.tickets import Prices, Ticket
from tenantgate.sim.engine_model import EngineConfig, EngineModel, FcfsPolicy, SimRequest, Step


@dataclass(frozen=True, slots=True)
class Timed:
    client: str
    ttft_s: float


class _Deployment:
    def __init__(self, engine: EngineConfig, scheduler: str, prices: Prices) -> None:
        self.engine = EngineModel(engine, FcfsPolicy())
        budget = MemoryBudget(engine.max_num_seqs, engine.kv_tokens)
        self.dispatcher = Dispatcher(make_discipline(scheduler, prices), budget, prices)
        self.requests: dict[Ticket, SimRequest] = {}
        self.tickets: dict[SimRequest, Ticket] = {}

    def start(self, started: Sequence[Ticket], now: float) -> None:
        for ticket in started:
            request = self.requests[ticket]
            request.arrival = now
            self.engine.submit(request)

    def placement(self, ticket: Ticket) -> tuple[float, float]:
        return self.dispatcher.predicted_wait_s(ticket), self.dispatcher.budget.sequences

    @property
    def busy(self) -> bool:
        return not self.engine.idle or len(self.dispatcher.queue) > 0


def replay_pool(
    arrivals: Sequence[Arrival], deployments: int, engine: EngineConfig, scheduler: str = "vtc",
    prices: Prices | None = None,
) -> list[Timed]:  # fmt: skip
    """Every request's time to first token (from its arrival at the gateway) on a pool of `deployments`."""
    prices = prices or Prices()
    pool = [_Deployment(engine, scheduler, prices) for _ in range(deployments)]
    numbers = itertools.count()
    pending = sorted(arrivals, key=lambda a: a.time)
    timed: list[Timed] = []
    arrived: dict[SimRequest, tuple[str, float]] = {}
    index = 0
    while index < len(pending) or any(d.busy for d in pool):
        moments = [(m, d) for d in pool if (m := d.engine.next_start()) is not None]
        moment, stepping = min(moments, key=lambda pair: pair[0], default=(None, None))
        if index < len(pending) and (moment is None or pending[index].time <= moment):
            arrival = pending[index]
            index += 1
            p, o, client = arrival.prompt_tokens, arrival.output_tokens, arrival.client
            request, ticket = SimRequest(str(next(numbers)), p, o, arrival.time, client), Ticket(client, p, o, 0.0)
            arrived[request] = (client, arrival.time)
            target = min(pool, key=lambda d: d.placement(ticket))
            target.requests[ticket], target.tickets[request] = request, ticket
            if not target.engine.running:
                target.engine.advance_to(arrival.time)
            target.start(target.dispatcher.offer(ticket, arrival.time), arrival.time)
            continue
        if stepping is None:
            break
        step = stepping.engine.step()
        if step is not None:
            _account(stepping, step, arrived, timed)
    return timed


def _account(
    deployment: _Deployment, step: Step, arrived: dict[SimRequest, tuple[str, float]], timed: list[Timed]
) -> None:
    dispatcher = deployment.dispatcher
    if step.prefill:
        for request in step.emitted:
            client, at = arrived[request]
            timed.append(Timed(client, step.end - at))
    for request in step.emitted:
        dispatcher.charge_output(deployment.tickets[request], 1, step.end)
    for request in step.finished:
        ticket = deployment.tickets.pop(request)
        deployment.requests.pop(ticket)
        arrived.pop(request)
        deployment.start(dispatcher.release(ticket, step.end, request.output_tokens), step.end)
