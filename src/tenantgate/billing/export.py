"""Usage as CloudEvents: one event per request (`id` = request id, `subject` = tenant slug), the
format metering and billing systems such as OpenMeter ingest. Written as NDJSON by the CLI, and
pushed to `TENANTGATE_USAGE_EXPORT_URL` in batches (`application/cloudevents-batch+json`) with
retries and exponential backoff; an event is marked exported only after the sink answered 2xx,
so delivery is at least once and the sink deduplicates by `id`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping

import httpx
import orjson

from tenantgate.clock import utcnow
from tenantgate.domain import UsageEvent
from tenantgate.storage.base import Store

log = logging.getLogger(__name__)
EVENT_TYPE = "com.tenantgate.usage"
BATCH = 500
MAX_BACKOFF_S = 300.0


def cloud_event(event: UsageEvent, tenant_slug: str, currency: str) -> dict[str, object]:
    usage = event.usage
    return {
        "specversion": "1.0", "type": EVENT_TYPE, "source": "tenantgate", "id": event.request_id,
        "time": event.created_at.isoformat().replace("+00:00", "Z"), "subject": tenant_slug,
        "datacontenttype": "application/json",
        "data": {
            "model": event.model, "endpoint": event.endpoint, "key": event.key_id, "user": event.user_id,
            "status": event.status, "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens, "cached_tokens": usage.cached_tokens,
            "total_tokens": usage.total_tokens, "estimated": usage.estimated, "gpu_seconds": event.gpu_seconds,
            "cost_micros": event.cost_micros, "currency": currency, "price_version": event.price_version,
            "deployment": event.deployment, "cache_hit": event.cache_hit, "saved_micros": event.saved_micros,
            "queue_wait_ms": event.queue_wait_ms,
        },
    }  # fmt: skip


def ndjson(events: Iterable[UsageEvent], slugs: Mapping[str, str], currency: str) -> bytes:
    return b"".join(orjson.dumps(cloud_event(e, slugs.get(e.tenant_id, e.tenant_id), currency)) + b"\n" for e in events)


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
