"""Schedule, place and send one request: wait for a place on the best deployment, send, fail over.

Placement order is computed once per request (least predicted wait, then cost). A request waits in
one deployment's fair queue at a time; when the send fails before any byte reached the client
(connection error, 5xx), the place is released, the failure counts against the deployment's circuit
breaker, and the request queues on the next deployment with what is left of its queue timeout.

An engine that refuses the connection while other requests run on it is full, not failing: the
request queues again on the same deployment, whose budget shrinks (scheduling/capacity.py). Streams
also report when their first byte came, which sizes the budget of engines that publish no metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from tenantgate.dataplane.deps import Placement
from tenantgate.dataplane.request import InferenceRequest
from tenantgate.domain import Principal, Usage
from tenantgate.errors import InvalidRequest, NoCapacity, QueueFull, UpstreamError, UpstreamRefused, UpstreamTimeout
from tenantgate.metering.meter import Served
from tenantgate.providers.base import CACHE_SALTED, MESSAGES_NATIVE, MESSAGES_PATH, UpstreamResponse
from tenantgate.routing.policy import Route
from tenantgate.scheduling.forecast import Forecast
from tenantgate.scheduling.lanes import Displaced, Lane, OnUpdate, Waiter, WaitingRequest
from tenantgate.scheduling.tickets import Ticket

MAX_REFUSALS = 5  # an engine that keeps refusing this request with others running is treated as failing


def _needs_native(needs: str, where: str) -> InvalidRequest:
    return InvalidRequest(
        f"This request has {needs}, which only Anthropic deployments take; {where} is not one.",
        param="messages", code="unsupported_by_provider",
    )  # fmt: skip


def check_native(request: InferenceRequest, route: Route) -> None:
    """Refuse before admission a Messages API request that no deployment of its model can take."""
    origin = request.origin
    if origin is not None and origin.needs and not any(d.provider in MESSAGES_NATIVE for d in route.deployments):
        raise _needs_native(origin.needs, f"no deployment of model '{route.requested}'")


@dataclass(eq=False, slots=True)
class Place:
    """Where the request stands: a lane, its ticket there, and its waiter while it waits."""

    lane: Lane
    ticket: Ticket
    waiter: Waiter | None


class Dispatch:
    def __init__(
        self, using: Placement, route: Route, request: InferenceRequest, principal: Principal, request_id: str,
        prompt_tokens: int, max_output: int, client_request_id: str | None = None,
        trace: dict[str, str] | None = None, started: float | None = None,
    ) -> None:  # fmt: skip
        self.trace = trace or {}  # the W3C trace context for the engine, when tracing is on
        self.started = time.perf_counter() if started is None else started  # when the request came in
        self.overhead_s: float | None = None  # the gateway's own time before the first send, queue wait excluded
        self._queued_s = 0.0
        self.scheduler = using.scheduler
        self.provider = using.provider
        self.queue_update_s = using.queue_update_s
        self.own_key = using.own_key
        self.circuits = using.circuits
        self.tell_circuit = using.tell_circuit
        self.route = route
        self.request = request
        self.principal = principal
        self.request_id = request_id
        self._size = (prompt_tokens, max_output)
        self.prompt_estimate = prompt_tokens
        self._about = WaitingRequest(request_id, route.requested, request.stream, client_request_id)
        scheduler = using.scheduler
        self.enqueued_at = scheduler.clock()
        self.deadline = self.enqueued_at + principal.queue.timeout_s
        self._fresh: Ticket | None = self._ticket()
        self._prefix: int | None = None
        self._lanes = scheduler.order(route.deployments, self._fresh, self._prefix_key)
        held_off = self._held_off(principal.tenant_id)
        if not self._lanes:
            if held_off is not None:
                raise held_off
            raise NoCapacity(
                f"Every deployment that may serve model '{route.requested}' is unhealthy or draining; "
                "requests are not sent to other pools or regions."
            )
        self.place = self.first()
        self.sent = False  # some deployment received it: its engine may have worked on it
        self.gpu_seconds = 0.0  # GPU time held on deployments, failed attempts included
        self._gpu_mark: float | None = None
        self._refusals = 0  # connections refused by a saturated engine, each followed by queueing again
        self._refused = False  # the last attempt's connection was refused before any answer

    def _held_off(self, tenant_id: str) -> NoCapacity | None:
        """Drop the lanes this tenant's own circuits keep it off; what to answer if none is left."""
        waits = {lane.deployment.name: self.circuits.open_for(tenant_id, lane.deployment.name) for lane in self._lanes}
        if not any(waits.values()):
            return None
        self._lanes = [lane for lane in self._lanes if not waits[lane.deployment.name]]
        seconds = min(left for left in waits.values() if left)
        error = NoCapacity(
            f"Requests of this tenant kept failing on every deployment serving model '{self.route.requested}'; "
            f"they are held off for {seconds:.0f} s, so that they do not take those deployments from other tenants.",
            code="tenant_circuit_open",
        )
        error.headers["Retry-After"] = str(max(1, round(seconds)))
        return error

    def _prefix_key(self) -> int | None:
        """Asked only when placement has a choice to make (several deployments)."""
        self._prefix = self.request.prefix_key(self.principal.tenant_id)
        return self._prefix

    def _ticket(self) -> Ticket:
        principal = self.principal
        return self.scheduler.ticket(principal.tenant_id, principal.tenant_slug, *self._size, principal.queue)

    def first(self) -> Place:
        """Join the first lane where this tenant may still queue (QueueFull if it may nowhere)."""
        error: QueueFull | None = None
        while self._lanes:
            lane = self._lanes.pop(0)
            ticket, self._fresh = self._fresh or self._ticket(), None  # a ticket belongs to one lane
            try:
                waiter = self.scheduler.enqueue(lane, ticket, self.principal.queue, self._lanes, self._about)
                self.place = Place(lane, ticket, waiter)
            except QueueFull as exc:
                error = exc
                continue
            return self.place
        assert error is not None
        raise error

    @property
    def waiting(self) -> bool:
        return self.place.waiter is not None

    def forecast(self) -> Forecast | None:
        waiter = self.place.waiter
        return None if waiter is None else self.scheduler.forecast(waiter)

    def waited_ms(self) -> int:
        started = self.place.ticket.dispatched_at
        return round(((self.scheduler.clock() if started is None else started) - self.enqueued_at) * 1000)

    async def wait(self, on_update: OnUpdate | None = None) -> None:
        """Until the request holds a place; a drained or failed lane sends it on to the next one."""
        scheduler = self.scheduler
        while (waiter := self.place.waiter) is not None:
            try:
                await scheduler.wait(waiter, self.deadline, on_update, self.queue_update_s)
                if waiter.lane is not self.place.lane:  # another deployment took it over; failover may go back
                    self._lanes = [self.place.lane, *(lane for lane in self._lanes if lane is not waiter.lane)]
                self.place = Place(waiter.lane, waiter.ticket, None)
            except Displaced:
                if not self._lanes:
                    raise NoCapacity(
                        f"The deployments serving model '{self.route.requested}' were drained or failed while the "
                        "request waited; none is left to take it."
                    ) from None
                self.first()

    async def send(self, on_update: OnUpdate | None = None) -> UpstreamResponse:
        """Wait for a place, send, and on failure before the first byte move on to the next lane."""
        while True:
            waiting_since = time.perf_counter()
            await self.wait(on_update)
            self._queued_s += time.perf_counter() - waiting_since
            place = self.place
            try:
                return await self._send_to(place.lane)
            except InvalidRequest:  # this deployment's dialect cannot carry it; another's may
                self._gpu_end()
                self.scheduler.release(place.lane, place.ticket, refund=True)
                if not self._lanes:
                    raise
            except (UpstreamError, UpstreamTimeout):  # the deployment failed before any byte
                self._gpu_end()
                if self._saturated(place):
                    continue
                deployment = place.lane.deployment
                if self.circuits.failure(self.principal.tenant_id, deployment.name):
                    deployment.health.no_verdict()  # the tenant's own failure: not the deployment's
                elif deployment.health.failure():  # its circuit opened
                    self.scheduler.circuit_opened(place.lane)
                    self.tell_circuit(deployment.name, True)
                self.scheduler.release(place.lane, place.ticket)
                if not self._lanes:
                    raise
            except BaseException:
                self._gpu_end()
                self.scheduler.release(place.lane, place.ticket)  # cancelled mid-send: give the place back
                raise
            self.first()

    def _saturated(self, place: Place) -> bool:
        """A refused connection while others run on the engine: shrink its budget, queue here again."""
        lane, scheduler = place.lane, self.scheduler
        others = lane.dispatcher.budget.sequences - 1
        if not self._refused or others < 1 or self._refusals >= MAX_REFUSALS or lane.deployment.health.failures:
            return False  # nothing else runs there, it kept refusing, or it is failing: a failure
        lane.capacity.refused(others, scheduler.clock())
        self._refusals += 1
        scheduler.resize(lane)
        scheduler.release(lane, place.ticket, refund=True)  # it never ran: its prompt is not charged
        self._lanes.insert(0, lane)
        self.first()
        return True

    async def _send_to(self, lane: Lane) -> UpstreamResponse:
        deployment = lane.deployment
        principal = self.principal
        headers = {
            "Content-Type": "application/json",
            "x-request-id": self.request_id,
            "x-tenantgate-tenant": principal.tenant_slug,
            "x-tenantgate-key": principal.key_id,
            **self.trace,
        }
        priority = principal.queue.priority if deployment.priority_hint else None
        salt = principal.cache_salt if deployment.provider in CACHE_SALTED else None
        origin = self.request.origin
        if origin is not None:  # a Messages API request: as it came where that dialect is spoken
            origin.native = deployment.provider in MESSAGES_NATIVE
            if origin.needs and not origin.native:
                raise _needs_native(origin.needs, f"deployment '{deployment.name}'")
        if origin is not None and origin.native:
            path, body = MESSAGES_PATH, origin.upstream_body(self.route.served)
        else:
            path = "/" + self.request.endpoint.value
            body = self.request.upstream_body(self.route.served, priority, salt)
        trial = deployment.health.sending()
        if self._prefix is not None:
            lane.remember(self._prefix, self.scheduler.clock())
        self._gpu_mark = deployment.gpu_time.begin()
        if self.overhead_s is None:
            self.overhead_s = time.perf_counter() - self.started - self._queued_s
        sent_before, self.sent = self.sent, True
        try:
            upstream = await self._answer_from(lane, path, body, headers)
        except InvalidRequest:  # refused by the adapter: nothing went out
            self.sent = sent_before
            if trial:
                deployment.health.no_verdict()
            raise
        except asyncio.CancelledError:
            # The client left before the trial had an answer: that says nothing about the deployment.
            if trial:
                deployment.health.no_verdict()
            raise
        deployment.health.success()
        if trial:  # the trial closed the circuit: for every instance
            self.tell_circuit(deployment.name, False)
        self.circuits.success(self.principal.tenant_id, deployment.name)
        return upstream

    async def _answer_from(self, lane: Lane, path: str, body: bytes, headers: dict[str, str]) -> UpstreamResponse:
        """The deployment's answer, once it is one to relay: a failure until then may fail over."""
        deployment, clock = lane.deployment, self.scheduler.clock
        in_flight, sent_at = lane.dispatcher.budget.sequences, clock()
        self._refused = False
        try:
            own_key = self.own_key(self.principal.tenant_id, deployment.name)
            upstream = await self.provider.send(deployment, path, body, headers, own_key)
        except UpstreamRefused:
            self._refused = True
            raise
        if upstream.status >= 500:
            upstream.close()
            raise UpstreamError(f"The upstream deployment '{deployment.name}' failed with HTTP {upstream.status}.")
        if self.request.stream and upstream.status == 200:
            try:  # a stream that dies before its first bytes can still go elsewhere
                await self._first_bytes(upstream, lane, in_flight, sent_at)
            except BaseException:
                upstream.close()
                raise
        return upstream

    async def _first_bytes(self, upstream: UpstreamResponse, lane: Lane, in_flight: int, sent_at: float) -> None:
        """Wait for the stream's first bytes, telling the deployment's capacity when they came (and,
        as soon as it is sure, that they are late: the engine queued the request)."""
        capacity, scheduler = lane.capacity, self.scheduler
        if not capacity.discovers or capacity.engine_metrics:
            await upstream.first_bytes()
            return
        late = capacity.late_after_s(self.prompt_estimate)
        first = asyncio.ensure_future(upstream.first_bytes())
        try:
            if late is not None:
                await asyncio.wait((first,), timeout=max(0.0, sent_at + late - scheduler.clock()))
                if not first.done() and capacity.queued(in_flight, scheduler.clock()):
                    scheduler.resize(lane)
            await first
        finally:
            if not first.done():
                first.cancel()
                with contextlib.suppress(BaseException):
                    await first
        now = scheduler.clock()
        if capacity.first_byte(now - sent_at, self.prompt_estimate, in_flight, now):
            scheduler.resize(lane)

    @property
    def deployment(self) -> str:
        return self.place.lane.deployment.name

    def _gpu_end(self) -> None:
        if self._gpu_mark is not None:
            self.gpu_seconds += self.place.lane.deployment.gpu_time.end(self._gpu_mark)
            self._gpu_mark = None

    def release(self, output_tokens: int | None) -> None:
        self._gpu_end()
        self.scheduler.release(self.place.lane, self.place.ticket, output_tokens)

    def cut_usage(self) -> Usage | None:
        """The charge of a request whose client left before an answer: its prompt, if it was sent."""
        return Usage(self.prompt_estimate, 0, estimated=True) if self.sent else None

    def served(self) -> Served:
        """Where it ran, for its usage event (call after `release`)."""
        deployment = self.place.lane.deployment
        return Served(deployment.name, deployment.pool, self.waited_ms(), self.gpu_seconds, self.overhead_s)

    def charge(self, output_tokens: int) -> None:
        self.scheduler.charge(self.place.lane, self.place.ticket, output_tokens)
