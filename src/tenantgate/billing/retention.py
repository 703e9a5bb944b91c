"""Raw usage events are kept N days per tenant (the tenant's own setting, else the installation's
default), then deleted for real; rollups and invoices are kept. Only hours the rollup job has long
since rolled up are purged: the shortest retention is a day, the job re-rolls the last few hours."""

from __future__ import annotations

import asyncio
import logging

from tenantgate.clock import utcnow
from tenantgate.storage.base import Store

log = logging.getLogger(__name__)


async def purge_expired(store: Store, default_days: int) -> int:
    return await store.purge_usage(utcnow(), default_days)


async def run_retention(store: Store, default_days: int, every_s: float = 3600.0) -> None:
    while True:
        try:
            removed = await purge_expired(store, default_days)
            if removed:
                log.info("usage retention: deleted %d raw events", removed)
        except Exception:
            log.warning("usage retention purge failed; retried in an hour", exc_info=True)
        await asyncio.sleep(every_s)
