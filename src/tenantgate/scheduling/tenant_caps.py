"""Tenants whose plan queues requests over its concurrency instead of refusing them.

Such a tenant's requests wait in the fair queue like any other, and the scheduler starts at most
`concurrency` of them at once across all deployments: the discipline passes over a tenant in
`full`. Shared by every deployment's dispatcher in one process.
"""

from __future__ import annotations


class TenantCaps:
    def __init__(self) -> None:
        self.caps: dict[str, int] = {}  # tenant -> requests it may run at once (only capped tenants)
        self.running: dict[str, int] = {}  # capped tenants' running requests, all deployments together
        self.full: set[str] = set()  # capped tenants running as many as they may

    def set(self, tenant: str, cap: int | None) -> None:
        """The tenant's cap from its plan (None: its concurrency is refused in admission, if at all)."""
        if cap is None:
            if self.caps.pop(tenant, None) is not None:
                self.full.discard(tenant)
            return
        self.caps[tenant] = cap
        if self.running.get(tenant, 0) >= cap:
            self.full.add(tenant)
        else:
            self.full.discard(tenant)

    def started(self, tenant: str) -> None:
        cap = self.caps.get(tenant)
        if cap is None:
            return
        running = self.running[tenant] = self.running.get(tenant, 0) + 1
        if running >= cap:
            self.full.add(tenant)

    def ended(self, tenant: str) -> None:
        """One of the tenant's requests ended: below its cap again, it leaves `full`."""
        running = self.running.get(tenant)
        if running is None:
            return
        if running <= 1:
            del self.running[tenant]
        else:
            self.running[tenant] = running - 1
        if running - 1 < self.caps.get(tenant, running):
            self.full.discard(tenant)
