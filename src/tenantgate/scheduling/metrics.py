"""Prometheus view of the fair queues, per deployment and tenant (labelled by tenant slug).

Gauges are read from the lanes when Prometheus scrapes, so the request path pays only for the
wait histogram, the rejection counter and the pool's fairness window. The per-tenant wait
histogram labels at most MAX_TENANT_LABELS tenants by slug (the first seen); the rest share
`tenant="other"`, so 10,000 tenants do not make 10,000 histograms.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tenantgate.scheduling.fairness_index import FairnessWindow
from tenantgate.scheduling.lanes import Scheduler
from tenantgate.scheduling.shared_counters import SharedCounters
from tenantgate.scheduling.state import MemoryCounters
from tenantgate.scheduling.tickets import Ticket

WAIT_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
MAX_TENANT_LABELS = 200
OTHER = "other"


class QueueMetrics:
    """Receives the scheduler's events and serves its state to Prometheus."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.waits = Histogram(
            "tenantgate_queue_wait_seconds", "Time from arrival to dispatch", ["tenant"],
            buckets=WAIT_BUCKETS, registry=registry,
        )  # fmt: skip
        self.rejections = Counter(
            "tenantgate_queue_rejections", "Requests that left the queue without running", ["tenant", "reason"],
            registry=registry,
        )  # fmt: skip
        self.labels: dict[str, str] = {}  # tenant id -> slug
        self._waits_of: dict[str, Histogram] = {}  # tenant id -> its labelled child, looked up once
        self.windows: dict[str, FairnessWindow] = {}  # pool -> its tenants' service and waits, last minute

    def _window(self, pool: str) -> FairnessWindow:
        window = self.windows.get(pool)
        if window is None:
            window = self.windows[pool] = FairnessWindow()
        return window

    def started(self, ticket: Ticket, waited_s: float, pool: str) -> None:
        child = self._waits_of.get(ticket.tenant)
        if child is None:
            label = self.labels.get(ticket.tenant, ticket.tenant) if len(self._waits_of) < MAX_TENANT_LABELS else OTHER
            child = self._waits_of[ticket.tenant] = self.waits.labels(label)
        child.observe(waited_s)
        self._window(pool).waited(ticket.tenant, waited_s)

    def ended(self, ticket: Ticket, pool: str, weighted_cost: float) -> None:
        self._window(pool).served(ticket.tenant, weighted_cost)

    def rejected(self, ticket: Ticket, reason: str) -> None:
        self.rejections.labels(self.labels.get(ticket.tenant, ticket.tenant), reason).inc()

    def watch(self, scheduler: Scheduler, wait_target_s: float) -> None:
        self.registry.register(_LaneCollector(scheduler, self.labels, self.windows, wait_target_s))


def desired_deployments(available: int, in_flight: int, budget: int, longest_wait_s: float, target_s: float) -> int:
    """The autoscaling signal of a pool: deployments enough for what runs now, and for the longest
    predicted wait to fall under `target_s` (a wait grows with the backlog over the capacity, so
    capacity times wait / target clears it in that time). Never below 1."""
    serving = max(available, 1)
    busy = in_flight / budget if budget else 0.0
    return max(1, math.ceil(serving * max(busy, longest_wait_s / target_s)))


class _LaneCollector(Collector):
    def __init__(
        self, scheduler: Scheduler, labels: dict[str, str], windows: dict[str, FairnessWindow], wait_target_s: float
    ) -> None:
        self.scheduler = scheduler
        self.labels = labels
        self.windows = windows
        self.wait_target_s = wait_target_s

    def _fairness(self) -> Iterator[GaugeMetricFamily]:
        service = GaugeMetricFamily(
            "tenantgate_fairness_jain_service", "Jain's index of weighted service relative to max-min fair "
            "shares, last minute", labels=["pool"],
        )  # fmt: skip
        waits = GaugeMetricFamily(
            "tenantgate_fairness_jain_queue_wait", "Jain's index of tenants' mean queue wait, last minute",
            labels=["pool"],
        )  # fmt: skip
        backlogged: dict[str, set[str]] = {}
        for lane in self.scheduler.lanes.values():
            if len(lane.dispatcher.queue):
                backlogged.setdefault(lane.deployment.pool, set()).update(t.tenant for t in lane.waiters)
        for pool, window in self.windows.items():
            indexes = ((service, window.service_index(backlogged.get(pool, set()))), (waits, window.wait_index()))
            for family, value in indexes:
                if value is not None:
                    family.add_metric([pool], value)
        yield from (service, waits)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_deployment = ["deployment"]
        by_tenant = ["deployment", "tenant"]
        depth = GaugeMetricFamily("tenantgate_queue_depth", "Requests waiting", labels=by_tenant)
        start = GaugeMetricFamily(
            "tenantgate_queue_predicted_start_seconds", "Predicted start of the tenant's next request",
            labels=by_tenant,
        )  # fmt: skip
        counter = GaugeMetricFamily("tenantgate_fair_counter", "Virtual token counter", labels=by_tenant)
        running = GaugeMetricFamily("tenantgate_in_flight", "Requests dispatched", labels=by_deployment)
        tokens = GaugeMetricFamily("tenantgate_in_flight_tokens", "Tokens reserved by them", labels=by_deployment)
        budget = GaugeMetricFamily(
            "tenantgate_in_flight_budget", "Requests the deployment may run at once (configured or discovered)",
            labels=by_deployment,
        )  # fmt: skip
        available = GaugeMetricFamily(
            "tenantgate_deployment_available", "1 when healthy and not draining", labels=by_deployment
        )
        desired = GaugeMetricFamily(
            "tenantgate_pool_desired_deployments", "Deployments the pool needs for its load and for the longest "
            "predicted wait to fall under the TTFT target (an autoscaling signal)", labels=["pool"],
        )  # fmt: skip
        pools: dict[str, list[float]] = {}  # pool -> [available, in flight, budget, longest wait]
        now = self.scheduler.clock()
        for name, lane in self.scheduler.lanes.items():
            dispatcher = lane.dispatcher
            running.add_metric([name], dispatcher.budget.sequences)
            tokens.add_metric([name], dispatcher.budget.tokens)
            budget.add_metric([name], lane.capacity.limit)
            available.add_metric([name], 1.0 if lane.deployment.accepts_work else 0.0)
            pool = pools.setdefault(lane.deployment.pool, [0, 0, 0, 0.0])
            if lane.deployment.accepts_work:
                pool[0] += 1
                pool[1] += dispatcher.budget.sequences
                pool[2] += lane.capacity.limit
            for tenant, queue in lane.tenant_queues(now).items():
                label = self.labels.get(tenant, tenant)
                depth.add_metric([name, label], queue.waiting)
                if queue.next_start_s is not None:
                    start.add_metric([name, label], queue.next_start_s)
                    pool[3] = max(pool[3], queue.next_start_s)
            counters = getattr(dispatcher.queue, "counters", None)
            if isinstance(counters, MemoryCounters | SharedCounters):
                for tenant, value in counters.snapshot().items():
                    counter.add_metric([name, self.labels.get(tenant, tenant)], value)
        for pool_name, (serving, in_flight, limit, wait) in pools.items():
            value = desired_deployments(int(serving), int(in_flight), int(limit), wait, self.wait_target_s)
            desired.add_metric([pool_name], value)
        yield from (depth, start, counter, running, tokens, budget, available, desired)
        yield from self._fairness()
