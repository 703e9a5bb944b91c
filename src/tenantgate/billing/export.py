"""Usage pushed to `TENANTGATE_USAGE_EXPORT_URL` as CloudEvents (cloud_events.py), in batches
(`application/cloudevents-batch+json`) with retries and exponential backoff; an event is marked
exported only after the sink answered 2xx, so delivery is at least once and the sink deduplicates
by `id`."""

from __future__ import annotations

import asyncio
import logging

import httpx
import orjson

from tenantgate.billing.cloud_events import cloud_event
from tenantgate.clock import utcnow
from tenantgate.storage.base import Store

log = logging.getLogger(__name__)
BATCH = 500
MAX_BACKOFF_S = 300.0


class UsageExporter:
    def __init__(self, store: Store, url: str, currency: str, *, client: httpx.AsyncClient | None = None) -> None:
        self._store = store
        self._url = url
        self._currency = currency
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
        self.exported = 0
        self.failures = 0

    async def push(self) -> int:
        """Send what is waiting, batch by batch; returns how many the sink took. Raises on a refusal."""
        sent = 0
        slugs = {t.id: t.slug for t in await self._store.list_tenants()}
        while events := await self._store.unexported_usage(BATCH):
            body = b"[" + b",".join(orjson.dumps(cloud_event(e, slugs.get(e.tenant_id, e.tenant_id), self._currency))
                                     for e in events) + b"]"  # fmt: skip
            response = await self._client.post(
                self._url, content=body, headers={"Content-Type": "application/cloudevents-batch+json"}
            )
            response.raise_for_status()
            await self._store.mark_exported([e.request_id for e in events], utcnow())
            sent += len(events)
            self.exported += len(events)
        return sent

    async def run(self, every_s: float) -> None:
        backoff = every_s
        while True:
            try:
                await self.push()
                backoff = every_s
            except Exception as exc:  # noqa: BLE001 - sink or database: retried with backoff, nothing marked
                self.failures += 1
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                log.warning("usage export to the sink failed (%s); retrying in %.0f s", type(exc).__name__, backoff)
            await asyncio.sleep(backoff)

    async def aclose(self) -> None:
        await self._client.aclose()
