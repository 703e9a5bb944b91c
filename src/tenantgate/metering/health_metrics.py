"""What an operator alerts on besides requests, read when Prometheus scrapes: the usage writer's
backlog, lag, losses and dead letters; how limits are enforced (shared in Redis, or per instance
while it fails) and by how many instances; the event loop's tasks; and the process itself (RSS,
open descriptors, CPU, from prometheus_client's process collector; the garbage collector's runs and
time)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, GCCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from tenantgate.admission.service import Admission
from tenantgate.clock import utcnow
from tenantgate.metering.garbage import CollectionTimes
from tenantgate.metering.recorder import UsageRecorder


class HealthCollector(Collector):
    def __init__(self, recorder: UsageRecorder, admission: Admission) -> None:
        self.recorder = recorder
        self.admission = admission

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        recorder = self.recorder
        oldest = recorder.oldest_pending
        lag = 0.0 if oldest is None else max(0.0, (utcnow() - oldest).total_seconds())
        yield GaugeMetricFamily("tenantgate_usage_pending", "Usage events not yet written", value=recorder.pending)
        yield GaugeMetricFamily(
            "tenantgate_usage_writer_lag_seconds", "Age of the oldest usage event not yet written", value=lag
        )
        yield CounterMetricFamily("tenantgate_usage_written", "Usage events written", value=recorder.written)
        yield CounterMetricFamily(
            "tenantgate_usage_dead_letters",
            "Usage events the database refused, kept apart",
            value=recorder.dead_lettered,
        )
        yield CounterMetricFamily(
            "tenantgate_usage_dropped", "Usage events dropped from memory (kept in the journal)", value=recorder.dropped
        )
        yield GaugeMetricFamily(
            "tenantgate_limits_shared", "1 while limits are counted in the shared store, 0 while each instance "
            "enforces its share alone", value=0.0 if self.admission.breaker_open else 1.0,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "tenantgate_instances", "Instances alive, as the shared store last counted them",
            value=self.admission.instances,
        )  # fmt: skip
        try:
            tasks = len(asyncio.all_tasks())
        except RuntimeError:  # scraped from outside the loop
            tasks = 0
        yield GaugeMetricFamily("tenantgate_event_loop_tasks", "Tasks alive on the event loop", value=tasks)


def watch_health(registry: CollectorRegistry, recorder: UsageRecorder, admission: Admission) -> Callable[[], None]:
    """Registers the health metrics; returns what stops timing the garbage collector."""
    registry.register(HealthCollector(recorder, admission))
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)  # python_gc_*: collections run (serve pauses them only while it imports)
    times = CollectionTimes()
    registry.register(times)
    gc.callbacks.append(times)
    return lambda: gc.callbacks.remove(times)
