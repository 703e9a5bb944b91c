"""Tell a tenant when it reaches a soft limit: stored once per tenant, kind and period, off the request path.

Delivery to a signed tenant webhook and to the dashboard reads these records (billing issue).
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
        once = (tenant_id, INCLUDED_TOKENS_REACHED, month)
        if once in self._sent:
            return
        self._sent.add(once)
        message = f"The {included} tokens included in this month's plan ({month}) are used; usage continues."
        notification = Notification(secrets.token_hex(8), tenant_id, INCLUDED_TOKENS_REACHED, month, message, utcnow())
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
