"""Admission over Redis under concurrency: what the gateway's client and Redis each spend per request.

`--concurrency` tasks each reserve and settle in a loop (every limit kind on tenant and key, 12
checks), so their calls share batches as at that many connections. Prints the client's CPU per
request (this process: the admission code, redis-py, asyncio), Redis's CPU per request (`INFO cpu`)
and, from `INFO commandstats`, the time Redis spent in EVALSHA per request and in the commands the
scripts called. The Redis database given is emptied first. To compare builds, run it with another
checkout's `src` first on PYTHONPATH.
Usage: python bench/redis_counters_load.py --redis redis://127.0.0.1:6379/12 [--concurrency 64] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from admission_overhead import ALL, BODY
from redis import Redis

from tenantgate.admission.redis_counters import RedisCounterStore
from tenantgate.admission.service import Admission
from tenantgate.dataplane.request import Endpoint, parse_request
from tenantgate.domain import Principal, Usage


def redis_cpu_s(redis: Redis) -> float:
    cpu = redis.info("cpu")
    return float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


async def load(url: str, concurrency: int, seconds: float) -> int:
    """Reservations and settlements for `seconds`; the requests served."""
    store = RedisCounterStore.from_url(url)
    admission = Admission(store, lambda m, p, c: p + c, lease_ttl_s=30, output_estimate=256, output_cap=4096)
    principal = Principal("t1", "bench", "k1", None, "scale", None, None, tenant_limits=ALL, key_limits=ALL)
    request, usage = parse_request(Endpoint.CHAT, BODY), Usage(10, 16)
    served, until = [0], time.monotonic() + seconds

    async def client(index: int) -> None:
        n = 0
        while time.monotonic() < until:
            n += 1
            reservation = await admission.reserve(principal, request, f"c{index}-{n}")
            assert reservation is not None
            await admission.settle(reservation, usage)
            served[0] += 1

    await asyncio.gather(*(client(i) for i in range(concurrency)))
    await store.close()
    return served[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10)
    options = parser.parse_args()
    redis = Redis.from_url(options.redis)
    redis.flushdb()
    asyncio.run(load(options.redis, options.concurrency, 2.0))  # warm-up: scripts loaded, totals seeded
    redis.config_resetstat()
    redis_before, client_before = redis_cpu_s(redis), time.process_time()
    served = asyncio.run(load(options.redis, options.concurrency, options.seconds))
    stats = redis.info("commandstats")
    per_request = 1e6 / served
    scripts = stats.get("cmdstat_evalsha", {"usec": 0, "calls": 0})
    inside = sum(int(v["usec"]) for k, v in stats.items() if k != "cmdstat_evalsha")
    result = {
        "concurrency": options.concurrency,
        "requests": served,
        "requests_per_s": round(served / options.seconds),
        "client_cpu_us_per_request": round((time.process_time() - client_before) * per_request, 1),
        "redis_cpu_us_per_request": round((redis_cpu_s(redis) - redis_before) * per_request, 1),
        "evalsha_us_per_request": round(int(scripts["usec"]) / served, 1),
        "commands_in_scripts_us_per_request": round(inside / served, 1),
        "evalsha_calls_per_request": round(int(scripts["calls"]) / served, 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
