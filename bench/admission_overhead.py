"""Cost of admission per request: reserve + settle with every limit active, in-process and over Redis.

Each figure is the best of 5 runs of n/5 requests (a shared machine's stolen time only adds). With
`--held 64`, that many requests hold their reservations meanwhile, as at 64 connections. With
`--rate R` (in-process counters), the counters' clock moves 1/R s per request, after a minute of
requests at that rate first, so that the sliding windows hold a minute of traffic and every request
also expires the oldest entries, as in a gateway serving R requests a second.
Usage: python bench/admission_overhead.py [--redis redis://127.0.0.1:6379/0] [--n 20000] [--held 0] [--rate 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable

from tenantgate.admission.counters import CounterStore, MemoryCounterStore
from tenantgate.admission.redis_counters import RedisCounterStore
from tenantgate.admission.service import Admission
from tenantgate.dataplane.request import Endpoint, parse_request
from tenantgate.domain import Limits, Principal, Usage

BODY = b'{"model": "sim-small", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 16}'
ALL = Limits(rpm=10**9, tpm=10**12, concurrency=10**6, daily_tokens=10**15, monthly_tokens=10**15, budget_micros=10**15)


PLAN = Limits(rpm=10**9, tpm=10**12, concurrency=10**6, daily_tokens=10**15)  # like Starter/Growth


async def measure(
    store: CounterStore, n: int, key_limits: Limits = ALL, tenant_limits: Limits = ALL, held: int = 0,
    history: int = 0, tick: Callable[[], None] = lambda: None,
) -> dict[str, float]:  # fmt: skip
    """`history`: requests made first (not measured); `tick`: called once per request."""
    admission = Admission(store, lambda m, p, c: p + c, lease_ttl_s=30, output_estimate=256, output_cap=4096)
    principal = Principal(
        "t1", "bench", "k1", None, "scale", None, None, tenant_limits=tenant_limits, key_limits=key_limits
    )
    request = parse_request(Endpoint.CHAT, BODY)
    usage = Usage(10, 16)
    for i in range(max(history, min(n, 500))):  # warm up
        tick()
        reservation = await admission.reserve(principal, request, f"w{i}")
        assert reservation is not None
        await admission.settle(reservation, usage)
    for i in range(held):
        assert await admission.reserve(principal, request, f"h{i}") is not None
    runs = []
    for run in range(5):
        started = time.perf_counter()
        for i in range(n // 5):
            tick()
            reservation = await admission.reserve(principal, request, f"r{run}-{i}")
            assert reservation is not None
            await admission.settle(reservation, usage)
        runs.append((time.perf_counter() - started) / (n // 5) * 1e6)
    await store.close()
    return {"requests": n, "held": held, "history": history, "reserve_plus_settle_us": round(min(runs), 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default=None)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--held", type=int, default=0, help="reservations held meanwhile (requests in flight)")
    parser.add_argument("--rate", type=float, default=0, help="requests a second on a simulated clock (0: real)")
    options = parser.parse_args()
    if options.rate and options.redis:
        parser.error("--rate simulates the in-process counters' clock; Redis keeps its own time")
    now = [0.0]

    def tick() -> None:
        now[0] += 1 / options.rate

    def store() -> CounterStore:
        if options.redis:
            return RedisCounterStore.from_url(options.redis)
        return MemoryCounterStore(clock=lambda: now[0]) if options.rate else MemoryCounterStore()

    name = "redis" if options.redis else "memory"
    history = int(60 * options.rate)

    def run(key_limits: Limits, tenant_limits: Limits) -> dict[str, float]:
        ticking = tick if options.rate else lambda: None
        return asyncio.run(measure(store(), options.n, key_limits, tenant_limits, options.held, history, ticking))

    every = run(ALL, ALL)
    print(json.dumps({"store": name, "limits": "all 6 kinds on tenant and key (12 checks)", **every}))
    plan = run(Limits(), PLAN)
    print(json.dumps({"store": name, "limits": "rpm, tpm, concurrency, daily on the tenant (4 checks)", **plan}))


if __name__ == "__main__":
    main()
