"""Plans that need a prepaid balance before their limits apply (a deposit before high limits).

A plan with `prepaid_required_usd` gives its limits only to tenants whose unexpired prepaid credit
left is at least that much; until then the tenant gets the limits of the plan named in
`until_prepaid`. Balances are kept in memory and refreshed in the background (every 5 s, and at
once on the instance that granted or burned credit), so the request path never reads the database;
a tenant whose side of the line changed has its cached principals rebuilt.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from tenantgate.billing.prices import to_micros
from tenantgate.clock import utcnow
from tenantgate.domain import Tenant
from tenantgate.plans import PlanRules
from tenantgate.settings import PlanConfig
from tenantgate.storage.base import Store

log = logging.getLogger(__name__)


class PrepaidGate:
    def __init__(self, plans: Mapping[str, PlanConfig], rules: Callable[[str], PlanRules]) -> None:
        self._required = {
            p.name: (to_micros(p.prepaid_required_usd), p.until_prepaid)
            for p in plans.values()
            if p.prepaid_required_usd is not None and p.until_prepaid is not None
        }
        self._rules = rules
        self._balances: dict[str, int] = {}

    def plan_for(self, tenant: Tenant) -> str:
        """The plan whose limits the tenant has now."""
        required = self._required.get(tenant.plan)
        if required is None or self._balances.get(tenant.id, 0) >= required[0]:
            return tenant.plan
        return required[1]

    def rules_for(self, tenant: Tenant) -> PlanRules:
        return self._rules(self.plan_for(tenant))

    def balance(self, tenant_id: str) -> int:
        return self._balances.get(tenant_id, 0)

    async def refresh(self, store: Store, tenants: Callable[[], Mapping[str, Tenant]]) -> set[str]:
        """Reload every balance; returns the tenants whose plan in force changed."""
        known = tenants()
        before = {tenant_id: self.plan_for(t) for tenant_id, t in known.items()}
        self._balances = await store.credit_balances(utcnow())
        return {tenant_id for tenant_id, t in known.items() if self.plan_for(t) != before[tenant_id]}

    async def run(self, store: Store, tenants: Callable[[], Mapping[str, Tenant]],
                  changed: Callable[[str], None], every_s: float = 5.0) -> None:  # fmt: skip
        while True:
            try:
                for tenant_id in await self.refresh(store, tenants):
                    changed(tenant_id)
            except Exception:
                log.warning("prepaid balance refresh failed; the balances loaded before stay", exc_info=True)
            await asyncio.sleep(every_s)
