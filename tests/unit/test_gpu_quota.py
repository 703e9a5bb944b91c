"""Hard-capped plans with included GPU-minutes: admission admits while GPU time is left, settles
each request with the GPU time it held, and rebuilds the month's total from recorded usage."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tenantgate.admission.counters import MemoryCounterStore
from tenantgate.admission.service import Admission
from tenantgate.clock import utcnow
from tenantgate.dataplane.request import Endpoint, parse_request
from tenantgate.domain import Limits, Principal, Usage
from tenantgate.errors import RateLimited
from tenantgate.plans import plan_limits
from tenantgate.settings import PlanConfig
from tenantgate.storage.memory import MemoryStore
from tests.integration.test_store_suite import event

CHAT = parse_request(Endpoint.CHAT, b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}')


def test_only_hard_plans_block_on_gpu_minutes() -> None:
    hard = PlanConfig(name="h", display_name="H", included_gpu_minutes=1.5, cap="hard")
    assert plan_limits(hard).monthly_gpu_ms == 90_000
    assert plan_limits(hard.model_copy(update={"cap": "overage"})).monthly_gpu_ms is None  # billed, not blocked


async def test_gpu_minutes_are_admitted_while_left_and_settled_with_the_time_held() -> None:
    recorded = MemoryStore()
    admission = Admission(MemoryCounterStore(), lambda m, p, c: 0, lease_ttl_s=30, output_estimate=8,
                          output_cap=8, recorded=recorded)  # fmt: skip
    principal = Principal("t1", "t", "k1", None, "p", None, None, tenant_limits=Limits(monthly_gpu_ms=60_000))
    # 30 GPU-seconds were used this month before this process started
    await recorded.insert_usage([replace(event("old", "t1", "m", 1, 1), created_at=utcnow(), gpu_seconds=30.0)])
    first = await admission.reserve(principal, CHAT, "r1")
    admission.settle_soon(first, Usage(1, 1), gpu_seconds=25.0)  # 55 s of 60
    second = await admission.reserve(principal, CHAT, "r2")  # 5 s left: admitted
    admission.settle_soon(second, Usage(1, 1), gpu_seconds=10.0)  # 65 s: over
    with pytest.raises(RateLimited) as refused:
        await admission.reserve(principal, CHAT, "r3")
    assert refused.value.code == "gpu_quota_exceeded" and "1 GPU-minutes" in refused.value.message
    [row] = await admission.current("t1", Limits(monthly_gpu_ms=60_000), None)
    assert row["limit"] == "monthly_gpu_minutes" and row["max"] == 1 and row["used"] == pytest.approx(65 / 60)
