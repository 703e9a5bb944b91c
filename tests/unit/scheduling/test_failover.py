"""Placement when a deployment fails: the request that met the failure goes on to the next
deployment, and when the failure opens the deployment's circuit, the requests waiting for it go on
at once instead of being sent to it when it frees up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson

from tenantgate.dataplane.deps import Placement
from tenantgate.dataplane.placement import Dispatch
from tenantgate.dataplane.request import Endpoint, parse_request
from tenantgate.domain import Principal, QueueTerms
from tenantgate.errors import InvalidRequest, UpstreamError, UpstreamRefused
from tenantgate.routing.catalog import Deployment
from tenantgate.routing.engine_load import EngineLoad
from tenantgate.routing.health import Health, TenantCircuits
from tenantgate.routing.policy import Route
from tenantgate.scheduling.lanes import Scheduler

TERMS = QueueTerms(weight=1.0, timeout_s=30.0, max_waiting=10, priority=0)
PRINCIPAL = Principal("t1", "acme", "k1", None, "starter", None, None, queue=TERMS)


class Answer:
    status = 200
    content_type = "application/json"

    async def read(self) -> bytes:
        return b"{}"

    async def first_bytes(self) -> None:
        return None

    async def chunks(self) -> AsyncIterator[bytes]:
        yield b"{}"

    def close(self) -> None:
        return None


class Upstreams:
    """`left` holds each request until `fail` is set, then fails it; `right` answers at once."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.fail = asyncio.Event()

    async def send(self, deployment: Deployment, path: str, body: bytes, headers: dict[str, str],
                   api_key: str | None = None) -> Answer:  # fmt: skip
        self.sent.append(deployment.name)
        if deployment.name == "left":
            await self.fail.wait()
            raise UpstreamError("left failed")
        return Answer()

    def check(self, deployments: Iterable[Deployment], path: str, payload: dict[str, Any]) -> None:
        return None

    async def list_models(self, base_url: str, api_key: str | None) -> list[str]:
        return []

    async def probe(self, deployment: Deployment) -> None:
        return None

    async def engine_load(self, deployment: Deployment) -> EngineLoad | None:
        return None

    async def aclose(self) -> None:
        return None


def deployment(name: str, cost: float) -> Deployment:
    return Deployment(name, "pool", "", "openai", f"http://{name}", frozenset({"m"}), 1, cost_per_1m_tokens=cost,
                      health=Health(failures_to_open=1, cooldown_s=600))  # fmt: skip


async def test_when_a_circuit_opens_the_requests_waiting_for_it_go_on_at_once() -> None:
    left, right = deployment("left", 0.1), deployment("right", 1.0)  # left is cheaper: tried first
    scheduler = Scheduler([left, right])
    upstreams = Upstreams()
    placement = Placement(scheduler, upstreams, 0.05, lambda tenant, name: None, TenantCircuits())
    route = Route("m", "m", (left, right))
    request = parse_request(Endpoint.CHAT, orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}))

    def dispatch(n: int) -> Dispatch:
        return Dispatch(placement, route, request, PRINCIPAL, f"r{n}", 10, 10)

    blocker = scheduler.ticket("t0", "other", 10, 10, TERMS)  # another tenant's request runs on right
    assert scheduler.enqueue(scheduler.lanes["right"], blocker, TERMS) is None
    first = dispatch(1)
    sending = asyncio.ensure_future(first.send())  # takes left's only seat
    while upstreams.sent != ["left"]:
        await asyncio.sleep(0)
    second = dispatch(2)  # both seats taken: it waits for left, the cheaper
    assert second.waiting and second.place.lane is scheduler.lanes["left"]
    waiting = asyncio.ensure_future(second.send())
    upstreams.fail.set()  # left fails the first request: its circuit opens
    right_lane = scheduler.lanes["right"]
    for _ in range(1000):  # both go on to wait for right: the failed one, and the one that waited for left
        if len(right_lane.waiters) == 2:
            break
        await asyncio.sleep(0)
    assert len(right_lane.waiters) == 2 and not scheduler.lanes["left"].waiters
    scheduler.release(right_lane, blocker, output_tokens=10)  # right frees up: one runs, then the other
    done, pending = await asyncio.wait({sending, waiting}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    (first if sending in done else second).release(10)
    assert (await asyncio.wait_for(pending.pop(), 5)).status == 200
    assert upstreams.sent == ["left", "right", "right"]  # the waiting one was never sent to the failed deployment
    assert left.health.failures == 1


class Saturated(Upstreams):
    """Holds the first request until `fail` is set; refuses the connection of the next one once."""

    def __init__(self) -> None:
        super().__init__()
        self.refusals = 1

    async def send(self, deployment: Deployment, path: str, body: bytes, headers: dict[str, str],
                   api_key: str | None = None) -> Answer:  # fmt: skip
        self.sent.append(deployment.name)
        if len(self.sent) == 1:
            await self.fail.wait()
        elif self.refusals:
            self.refusals -= 1
            raise UpstreamRefused("connection refused")
        return Answer()


async def test_a_request_a_full_engine_refused_is_charged_once_when_it_runs() -> None:
    engine = Deployment("engine", "pool", "", "openai", "http://engine", frozenset({"m"}), 2)
    scheduler = Scheduler([engine])
    upstreams = Saturated()
    placement = Placement(scheduler, upstreams, 0.05, lambda tenant, name: None, TenantCircuits())
    route = Route("m", "m", (engine,))
    request = parse_request(Endpoint.CHAT, orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}))
    first, second = (Dispatch(placement, route, request, PRINCIPAL, f"r{n}", 10, 10) for n in (1, 2))
    running = asyncio.ensure_future(first.send())
    while upstreams.sent != ["engine"]:
        await asyncio.sleep(0)
    # refused while the first runs: its place is given back (and its charge), and it goes again
    queued = asyncio.ensure_future(second.send())
    await asyncio.wait_for(queued, 5)
    assert upstreams.refusals == 0
    lane = scheduler.lanes["engine"]
    upstreams.fail.set()
    await asyncio.wait_for(running, 5)
    first.release(0)
    second.release(0)
    assert upstreams.sent == ["engine"] * 3
    assert lane.dispatcher.queue.counters.get("t1") == 10 + 10  # each prompt once


class Untranslatable(Upstreams):
    """`left` speaks a dialect this request cannot be put in; `right` answers."""

    async def send(self, deployment: Deployment, path: str, body: bytes, headers: dict[str, str],
                   api_key: str | None = None) -> Answer:  # fmt: skip
        self.sent.append(deployment.name)
        if deployment.name == "left":
            raise InvalidRequest("left cannot carry this request")
        return Answer()


async def test_a_request_a_deployment_cannot_carry_costs_nothing_there() -> None:
    left, right = deployment("left", 0.1), deployment("right", 1.0)  # left is cheaper: tried first
    scheduler = Scheduler([left, right])
    upstreams = Untranslatable()
    placement = Placement(scheduler, upstreams, 0.05, lambda tenant, name: None, TenantCircuits())
    request = parse_request(Endpoint.CHAT, orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}))
    dispatch = Dispatch(placement, Route("m", "m", (left, right)), request, PRINCIPAL, "r1", 10, 10)
    assert (await asyncio.wait_for(dispatch.send(), 5)).status == 200
    dispatch.release(0)
    assert upstreams.sent == ["left", "right"]
    assert scheduler.lanes["left"].dispatcher.queue.counters.get("t1") == 0  # given back where it never ran
    assert scheduler.lanes["right"].dispatcher.queue.counters.get("t1") == 10
