"""Cost of the fair queue per request when nothing has to wait: placement, enqueue (which starts it),
one output charge and release, with the Prometheus wait histogram, as the gateway drives them.

Usage: python bench/scheduler_overhead.py [--n 50000] [--tenants 8] [--deployments 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from prometheus_client import CollectorRegistry

from tenantgate.domain import QueueTerms
from tenantgate.routing.catalog import Deployment
from tenantgate.scheduling.lanes import Scheduler
from tenantgate.scheduling.metrics import QueueMetrics

TERMS = QueueTerms(weight=1.0, timeout_s=30.0, max_waiting=100, priority=1)


async def measure(n: int, tenants: int, deployments: int) -> float:
    """Best of five runs of `n` requests, in µs per request."""
    catalog = [
        Deployment(f"d{i}", "pool", "", "openai", f"http://d{i}", frozenset({"m"}), max_in_flight=64)
        for i in range(deployments)
    ]
    metrics = QueueMetrics(CollectorRegistry())
    scheduler = Scheduler(catalog, observer=metrics)
    metrics.watch(scheduler, 2.0)
    names = [f"tenant-{i}" for i in range(tenants)]
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for i in range(n):
            tenant = names[i % tenants]
            ticket = scheduler.ticket(tenant, tenant, 20, 16, TERMS)
            lane = scheduler.order(catalog, ticket)[0]
            if scheduler.enqueue(lane, ticket, TERMS) is not None:
                raise SystemExit("a request had to wait: this measures the uncontended path only")
            scheduler.charge(lane, ticket, 16)
            scheduler.release(lane, ticket, 16)
        best = min(best, (time.perf_counter() - started) / n * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--tenants", type=int, default=8)
    parser.add_argument("--deployments", type=int, default=1)
    options = parser.parse_args()
    micros = asyncio.run(measure(options.n, options.tenants, options.deployments))
    print(json.dumps({"us_per_request": round(micros, 2), **vars(options)}))


if __name__ == "__main__":
    main()
