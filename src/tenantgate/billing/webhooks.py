"""Deliver tenant notifications (thresholds, soft caps) to the tenant's webhook, signed.

Each POST carries the notification as JSON and two headers:
- `X-Tenantgate-Delivery`: the notification id (the same on every retry: receivers deduplicate);
- `X-Tenantgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the tenant's secret>`.
Failures are retried with exponential backoff (2 s, 4 s, … at most 10 min) up to `MAX_ATTEMPTS`.
A notification is stored once per threshold and period, so a tenant hears of each once (at
least once on the wire, deduplicated by the delivery id).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from typing import TYPE_CHECKING

import orjson

from tenantgate.clock import utcnow
from tenantgate.domain import Notification
from tenantgate.storage.base import Store

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 12


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def payload(notification: Notification, tenant_slug: str) -> bytes:
    return orjson.dumps({
        "id": notification.id, "tenant": tenant_slug, "kind": notification.kind, "period": notification.period,
        "message": notification.message, "created_at": notification.created_at.isoformat().replace("+00:00", "Z"),
    })  # fmt: skip


class WebhookDelivery:
    def __init__(self, store: Store, client: httpx.AsyncClient | None = None) -> None:
        self._store = store
        self._client = client  # made at the first delivery: its TLS setup is a few hundredths of a second of start-up
        self._next_try: dict[str, float] = {}  # notification id -> monotonic time of its next attempt
        self._tries: dict[str, int] = {}
        self.delivered = 0

    async def deliver_due(self) -> None:
        now = time.monotonic()
        slugs: dict[str, str] | None = None
        for notification in await self._store.undelivered_notifications(100, MAX_ATTEMPTS):
            if self._next_try.get(notification.id, 0.0) > now:
                continue
            webhook = await self._store.get_webhook(notification.tenant_id)
            if webhook is None:
                continue
            if slugs is None:
                slugs = {t.id: t.slug for t in await self._store.list_tenants()}
            body = payload(notification, slugs.get(notification.tenant_id, notification.tenant_id))
            headers = {
                "Content-Type": "application/json", "X-Tenantgate-Delivery": notification.id,
                "X-Tenantgate-Signature": signature(webhook.secret, int(time.time()), body),
            }  # fmt: skip
            import httpx  # here, at the first delivery: most starts deliver nothing, and it is 0.08 s of one

            try:
                if self._client is None:
                    self._client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
                response = await self._client.post(webhook.url, content=body, headers=headers)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                tries = self._tries.get(notification.id, 0) + 1
                self._tries[notification.id] = tries
                self._next_try[notification.id] = now + min(2.0**tries, 600.0)
                await self._store.mark_notification(notification.id, None)
                log.warning("webhook delivery %s to tenant %s failed (%s)", notification.id, notification.tenant_id,
                            type(exc).__name__)  # fmt: skip
                continue
            await self._store.mark_notification(notification.id, utcnow())
            self._next_try.pop(notification.id, None)
            self._tries.pop(notification.id, None)
            self.delivered += 1

    async def run(self, every_s: float = 2.0) -> None:
        while True:
            try:
                await self.deliver_due()
            except Exception:
                log.warning("webhook delivery round failed", exc_info=True)
            await asyncio.sleep(every_s)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
