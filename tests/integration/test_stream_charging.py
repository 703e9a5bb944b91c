"""Streams that outrun their reservation are charged while they run, in memory and in Redis."""

from __future__ import annotations

import secrets

from tenantgate.admission.counters import CounterStore
from tenantgate.admission.limits import checks_for
from tenantgate.admission.service import Admission
from tenantgate.clock import utcnow
from tenantgate.dataplane.request import Endpoint, parse_request
from tenantgate.domain import Limits, Principal, Usage


async def test_overrun_is_charged_during_the_stream_and_settled_exactly(counter_store: CounterStore) -> None:
    store = counter_store
    limits = Limits(tpm=100_000, daily_tokens=1_000_000, budget_micros=10**9)
    tenant = secrets.token_hex(6)
    principal = Principal(tenant, "t", "k", None, "growth", None, None, tenant_limits=limits)
    admission = Admission(store, lambda m, p, c: 10 * (p + c), lease_ttl_s=30, output_estimate=32, output_cap=32)
    body = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true}'
    request = parse_request(Endpoint.CHAT, body)
    reservation = await admission.reserve(principal, request, "r1")
    assert reservation is not None and reservation.output_reserved == 32
    prompt = reservation.prompt_estimate
    view = checks_for(f"tenant:{tenant}", limits, 0, 0, utcnow(), 30)

    assert await store.peek(view) == (prompt + 32, prompt + 32, 10 * (prompt + 32))
    admission.charge_progress(reservation, 64)
    admission.charge_progress(reservation, 300)
    admission.charge_progress(reservation, 200)  # stale progress never lowers the charge
    await admission.drain()
    assert await store.peek(view) == (prompt + 300, prompt + 300, 10 * (prompt + 300))

    await admission.settle(reservation, Usage(prompt_tokens=5, completion_tokens=420))
    assert await store.peek(view) == (425, 425, 4250)
