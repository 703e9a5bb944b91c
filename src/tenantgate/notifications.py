"""Tell a tenant when it reaches a soft limit or a threshold of a quota, budget or prepaid credit:
stored once per tenant, kind and period (the database's unique key makes it once across
instances), off the request path. `billing/webhooks.py` delivers them to the tenant's webhook.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from tenantgate.clock import utcnow
from tenantgate.domain import Notification
from tenantgate.storage.base import NotificationStore

log = logging.getLogger(__name__)
INCLUDED_TOKENS_REACHED = "included_tokens_reached"


class Notifier:
    def __init__(self, store: NotificationStore) -> None:
        self._store = store
        self._sent: set[tuple[str, str, str]] = set()  # this instance's memory; the store dedupes across instances
        self._writing: set[asyncio.Task[None]] = set()

    def included_tokens_reached(self, tenant_id: str, included: int, month: str) -> None:
        message = f"The {included} tokens included in this month's plan ({month}) are used; usage continues."
        self.notify(tenant_id, INCLUDED_TOKENS_REACHED, month, message)

    def threshold_reached(self, tenant_id: str, limit: str, percent: int, period: str, maximum: str) -> None:
        """`limit` (daily_tokens, monthly_tokens, budget, credit) reached `percent` % of `maximum` in `period`."""
        message = f"{percent} % of the {limit.replace('_', ' ')} ({maximum}) for {period} is used."
        self.notify(tenant_id, f"{limit}_{percent}", period, message)

    def notify(self, tenant_id: str, kind: str, period: str, message: str) -> None:
        once = (tenant_id, kind, period)
        if once in self._sent:
            return
        self._sent.add(once)
        notification = Notification(secrets.token_hex(8), tenant_id, kind, period, message, utcnow())
        task = asyncio.get_running_loop().create_task(self._write(notification))
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)

    async def _write(self, notification: Notification) -> None:
        try:
            if await self._store.add_notification(notification):
                log.info("tenant %s: %s", notification.tenant_id, notification.kind)
        except Exception:  # noqa: BLE001 - forget it here so the next request retries
            self._sent.discard((notification.tenant_id, notification.kind, notification.period))
            log.warning("could not store notification %s for tenant %s", notification.kind, notification.tenant_id)

    async def drain(self) -> None:
        if self._writing:
            await asyncio.gather(*self._writing, return_exceptions=True)
