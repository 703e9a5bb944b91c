"""Memory the in-process counters hold (tracemalloc), in two cases: one key at `--rate` requests a
second for a minute (four windows: requests and tokens, tenant and key), and `--keys` keys making
one request each, 10 ms apart (their windows and lease sets).
Usage: PYTHONPATH=<a checkout's src> python bench/counter_memory.py [--rate 2000] [--keys 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import tracemalloc

from tenantgate.admission.counters import MemoryCounterStore
from tenantgate.admission.limits import Check, LimitKind


async def busy_key(rate: float) -> float:
    """Bytes held per request after a minute at `rate`."""
    now = [0.0]
    store = MemoryCounterStore(clock=lambda: now[0])
    checks = [Check(LimitKind.REQUESTS, f"rpm:{scope}", 10**9, 1, "window") for scope in ("tenant", "key")]
    checks += [Check(LimitKind.TOKENS, f"tpm:{scope}", 10**12, 300, "window") for scope in ("tenant", "key")]
    requests = int(60 * rate)
    tracemalloc.start()
    for number in range(requests):
        now[0] += 1 / rate
        await store.reserve(f"request-{number:08d}", checks)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return held / requests


async def keys_once(keys: int) -> float:
    """MiB held after `keys` keys made one request each (settled), 10 ms apart."""
    now = [0.0]
    store = MemoryCounterStore(clock=lambda: now[0])
    tracemalloc.start()
    for number in range(keys):
        now[0] += 0.01
        checks = [
            Check(LimitKind.REQUESTS, f"rpm:key:{number}", 10**9, 1, "window"),
            Check(LimitKind.TOKENS, f"tpm:key:{number}", 10**12, 300, "window"),
            Check(LimitKind.CONCURRENCY, f"conc:key:{number}", 10, 1, "lease", ttl_s=30),
        ]
        await store.reserve(f"request-{number}", checks)
        await store.settle(f"request-{number}", checks, [1, 280, 1])
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return held / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--keys", type=int, default=100_000)
    options = parser.parse_args()
    per_request = asyncio.run(busy_key(options.rate))
    print(f"one key at {options.rate:g} requests a second for a minute: {per_request:.0f} bytes held per request")
    spread = asyncio.run(keys_once(options.keys))
    print(f"{options.keys:,} keys, one request each, 10 ms apart: {spread:.1f} MiB held")


if __name__ == "__main__":
    main()
