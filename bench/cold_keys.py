"""A key's first use when its tenant is already in use: the key directory's cold path on PostgreSQL.

One tenant and 41 keys in a scratch database; the first key is authenticated (its tenant is read
with it), then each other key once, timed: what a new key of a busy tenant costs on its first request.
Usage: python bench/cold_keys.py [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
The URL must name a server where this script may create and drop a scratch database.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from tenantgate.access.audit import AuditLog
from tenantgate.access.callers import SYSTEM
from tenantgate.auth.directory import KeyDirectory
from tenantgate.storage.sql import SqlStore
from tenantgate.tenancy import TenancyService

sys.path.insert(0, str(Path(__file__).parent))

from scratch_db import scratch_database

SCRATCH = "tenantgate_cold_keys"


async def first_uses(url: str, keys: int) -> list[float]:
    store = SqlStore.from_url(url)
    try:
        service = TenancyService(store, None, frozenset({"growth"}), AuditLog(store))
        await service.create_tenant(SYSTEM, "acme", plan="growth")
        secrets = [(await service.create_key(SYSTEM, "acme")).plaintext for _ in range(keys + 1)]
        directory = KeyDirectory(store)
        await directory.authenticate(f"Bearer {secrets[0]}", None)
        times = []
        for secret in secrets[1:]:
            started = time.perf_counter()
            await directory.authenticate(f"Bearer {secret}", None)
            times.append((time.perf_counter() - started) * 1000)
        return times
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keys", type=int, default=40)
    options = parser.parse_args()
    with scratch_database(options.database_url, SCRATCH) as url:
        times = sorted(asyncio.run(first_uses(url, options.keys)))
    p90 = times[int(len(times) * 0.9)]
    print(f"first use of a new key of a tenant in use: median {statistics.median(times):.2f} ms, "
          f"p90 {p90:.2f} ms (n={len(times)})")  # fmt: skip


if __name__ == "__main__":
    main()
