"""Cost of admission per request: reserve + settle with every limit active, in-process and over Redis.

Each figure is the best of 5 runs of n/5 requests (a shared machine's stolen time only adds). With
`--held 64`, that many requests hold their reservations meanwhile, as at 64 connections.
Usage: python bench/admission_overhead.py [--redis redis://127.0.0.1:6379/0] [--n 20000] [--held 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from tenantgate.admission.counters import CounterStore, MemoryCounterStore
from tenantgate.admission.redis_counters import RedisCounterStore
from tenantgate.admission.service import Admission
from tenantgate.dataplane.request import Endpoint, parse_request
from tenantgate.domain import Limits, Principal, Usage

BODY = b'{"model": "sim-small", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 16}'
ALL = Limits(rpm=10**9, tpm=10**12, concurrency=10**6, daily_tokens=10**15, monthly_tokens=10**15, budget_micros=10**15)


PLAN = Limits(rpm=10**9, tpm=10**12, concurrency=10**6, daily_tokens=10**15)  # like Starter/Growth


async def measure(
    store: CounterStore, n: int, key_limits: Limits = ALL, tenant_limits: Limits = ALL, held: int = 0
) -> dict[str, float]:
    admission = Admission(store, lambda m, p, c: p + c, lease_ttl_s=30, output_estimate=256, output_cap=4096)
    principal = Principal(
        "t1", "bench", "k1", None, "scale", None, None, tenant_limits=tenant_limits, key_limits=key_limits
    )
    request = parse_request(Endpoint.CHAT, BODY)
    usage = Usage(10, 16)
    for i in range(min(n, 500)):  # warm up
        reservation = await admission.reserve(principal, request, f"w{i}")
        assert reservation is not None
        await admission.settle(reservation, usage)
    for i in range(held):
        assert await admission.reserve(principal, request, f"h{i}") is not None
    runs = []
    for run in range(5):
        started = time.perf_counter()
        for i in range(n // 5):
            reservation = await admission.reserve(principal, request, f"r{run}-{i}")
            assert reservation is not None
            await admission.settle(reservation, usage)
        runs.append((time.perf_counter() - started) / (n // 5) * 1e6)
    await store.close()
    return {"requests": n, "held": held, "reserve_plus_settle_us": round(min(runs), 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default=None)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--held", type=int, default=0, help="reservations held meanwhile (requests in flight)")
    options = parser.parse_args()

    def store() -> CounterStore:
        return RedisCounterStore.from_url(options.redis) if options.redis else MemoryCounterStore()

    name = "redis" if options.redis else "memory"
    every = asyncio.run(measure(store(), options.n, held=options.held))
    print(json.dumps({"store": name, "limits": "all 6 kinds on tenant and key (12 checks)", **every}))
    plan = asyncio.run(measure(store(), options.n, key_limits=Limits(), tenant_limits=PLAN, held=options.held))
    print(json.dumps({"store": name, "limits": "rpm, tpm, concurrency, daily on the tenant (4 checks)", **plan}))


if __name__ == "__main__":
    main()
