"""A stream of a plan with a TTFT target is recorded as in time or late; nothing else is judged."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from tenantgate.billing.prices import PriceBook
from tenantgate.domain import Principal
from tenantgate.metering.meter import RequestMeter
from tenantgate.metering.recorder import UsageRecorder
from tenantgate.metering.request_metrics import RequestMetrics
from tenantgate.storage.memory import MemoryStore


def test_each_event_says_whether_its_first_token_met_the_plans_target() -> None:
    store = MemoryStore()
    recorder = UsageRecorder(store, flush_s=60, batch_size=100, buffer_limit=100)
    registry = CollectorRegistry()
    metrics = RequestMetrics(registry)
    principal = Principal("t1", "acme", "k1", None, "bulk", None, None, ttft_slo_ms=500)
    prices = PriceBook({})

    def request(request_id: str, ttft_s: float, status: int, target: float | None) -> None:
        started = time.perf_counter() - ttft_s  # as if the request began ttft_s ago and its first byte is now
        meter = RequestMeter(recorder, prices, principal, request_id, "chat/completions", "m", started, metrics, target)
        meter.first_byte()
        meter.finish(status, None if status == 200 else "upstream_error")

    request("fast", 0.1, 200, 500)
    request("slow", 0.9, 200, 500)
    request("failed", 0.1, 502, 500)  # a failure is an error, not a TTFT miss
    request("whole", 0.9, 200, None)  # not streamed: its first byte is its last
    asyncio.run(recorder.flush())
    now = datetime.now(UTC)
    events = asyncio.run(store.usage_between(now - timedelta(minutes=1), now + timedelta(minutes=1)))
    judged = {e.request_id: e.ttft_slo_met for e in events}
    assert judged == {"fast": True, "slow": False, "failed": None, "whole": None}
    met = registry.get_sample_value("tenantgate_ttft_slo_requests_total", {"plan": "bulk", "met": "true"})
    missed = registry.get_sample_value("tenantgate_ttft_slo_requests_total", {"plan": "bulk", "met": "false"})
    assert (met, missed) == (1.0, 1.0)
