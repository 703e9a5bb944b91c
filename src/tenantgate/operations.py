"""Operators' changes to the running installation that are not a tenant's: price versions, draining
and resuming deployments, purging usage past retention. Each is written and audited here, so the
handlers stay thin and every write has one place."""

from __future__ import annotations

from tenantgate.access.audit import AuditLog
from tenantgate.access.callers import Caller
from tenantgate.billing.prices import PriceBook
from tenantgate.billing.retention import purge_expired
from tenantgate.change_bus import ChangeBus
from tenantgate.domain import Price
from tenantgate.errors import NotFound
from tenantgate.scheduling.lanes import Lane, Scheduler
from tenantgate.storage.base import Store


class Operations:
    def __init__(
        self, store: Store, prices: PriceBook, scheduler: Scheduler, audit: AuditLog, retention_days: int,
        bus: ChangeBus | None = None,
    ) -> None:  # fmt: skip
        self._bus = bus or ChangeBus(None)
        self._store = store
        self._prices = prices
        self._scheduler = scheduler
        self._audit = audit
        self._retention_days = retention_days

    async def add_price(self, by: Caller, price: Price) -> Price:
        """Store a price version (Conflict if the model has one from that moment) and use it at once."""
        await self._store.add_price(price)
        self._prices.replace(await self._store.list_prices())
        await self._audit.record(by, "price.add", f"price of {price.model}", tenant_id=None, after=price)
        return price

    async def drain(self, by: Caller, deployment: str, draining: bool = True) -> Lane:
        """No new dispatch there (what runs finishes, what waits moves elsewhere), or again."""
        if deployment not in self._scheduler.lanes:
            raise NotFound(f"There is no deployment named '{deployment}'; GET /api/v1/pools lists them.")
        lane = self._scheduler.drain(deployment, draining)
        await self._bus.drained(deployment, draining)  # every instance, and those that start later
        action = "deployment.drain" if draining else "deployment.resume"
        await self._audit.record(by, action, f"deployment {deployment}", tenant_id=None)
        return lane

    async def purge(self, by: Caller) -> int:
        """Delete raw usage past each tenant's retention now (otherwise hourly); returns how many."""
        deleted = await purge_expired(self._store, self._retention_days)
        await self._audit.record(by, "usage.purge", "usage past retention", tenant_id=None, after={"deleted": deleted})
        return deleted
