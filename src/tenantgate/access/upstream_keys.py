"""Bring your own key: a tenant's own API key for a deployment, used for that tenant's requests there
instead of the deployment's. Sealed at rest with the gateway's secret key (secret_box.py), opened
into memory; never returned by the API, never logged or audited (the audit log says that it
changed, not what to). Changes take effect at once on the instance that made them and, by the
poll, within `REFRESH_S` on the others."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from tenantgate.access.audit import AuditLog
from tenantgate.access.callers import Caller
from tenantgate.access.secret_box import SecretBox
from tenantgate.clock import utcnow
from tenantgate.domain import Tenant
from tenantgate.errors import ConfigurationError, NotFound
from tenantgate.storage.base import AccessStore

log = logging.getLogger(__name__)
REFRESH_S = 5.0


@dataclass(frozen=True, slots=True)
class UpstreamKeyShown:
    """What the API shows of a tenant's key: that it is set, and since when."""

    deployment: str
    updated_at: datetime


class TenantUpstreamKeys:
    def __init__(self, store: AccessStore, box: SecretBox, audit: AuditLog, deployments: frozenset[str]) -> None:
        self._store = store
        self._box = box
        self._audit = audit
        self._deployments = deployments
        self._open: dict[tuple[str, str], str] = {}  # (tenant id, deployment) -> the key, in memory only
        self._since: dict[tuple[str, str], datetime] = {}
        self._changed: dict[tuple[str, str], datetime] = {}  # changes made here: a read begun before one misses it

    def key_for(self, tenant_id: str, deployment: str) -> str | None:
        """On the request path: the tenant's own key for the deployment, if it set one."""
        return self._open.get((tenant_id, deployment))

    def shown(self, tenant: Tenant) -> list[UpstreamKeyShown]:
        held = sorted((d, at) for (t, d), at in self._since.items() if t == tenant.id)
        return [UpstreamKeyShown(deployment, at) for deployment, at in held]

    async def set(self, by: Caller, tenant: Tenant, deployment: str, api_key: str) -> UpstreamKeyShown:
        self._known(deployment)
        at = utcnow()
        await self._store.set_upstream_key(tenant.id, deployment, self._box.seal(api_key), at)
        held = (tenant.id, deployment)
        self._open[held], self._since[held], self._changed[held] = api_key, at, at
        await self._audit.record(by, "upstream_key.set", f"deployment {deployment}", tenant_id=tenant.id)
        return UpstreamKeyShown(deployment, at)

    async def remove(self, by: Caller, tenant: Tenant, deployment: str) -> None:
        if (tenant.id, deployment) not in self._open:
            raise NotFound(f"Tenant '{tenant.slug}' has no key of its own for deployment '{deployment}'.",
                           code="upstream_key_not_found")  # fmt: skip
        at = utcnow()
        await self._store.set_upstream_key(tenant.id, deployment, None, at)
        self._open.pop((tenant.id, deployment), None)
        self._since.pop((tenant.id, deployment), None)
        self._changed[(tenant.id, deployment)] = at
        await self._audit.record(by, "upstream_key.remove", f"deployment {deployment}", tenant_id=tenant.id)

    async def refresh(self) -> None:
        """Read every tenant's keys again (what other instances changed). A change made here after the
        read began stays as made: the read may not have seen it."""
        began = utcnow()
        opened: dict[tuple[str, str], str] = {}
        since: dict[tuple[str, str], datetime] = {}
        for held in await self._store.upstream_keys():
            try:
                opened[(held.tenant_id, held.deployment)] = self._box.open(held.sealed_key)
            except ConfigurationError:
                log.warning("tenant %s's key for %s cannot be opened with the secret key; it is not used",
                            held.tenant_id, held.deployment)  # fmt: skip
                continue
            since[(held.tenant_id, held.deployment)] = held.updated_at
        for changed, at in self._changed.items():
            if at >= began:
                opened.pop(changed, None)
                since.pop(changed, None)
                if changed in self._open:
                    opened[changed], since[changed] = self._open[changed], self._since[changed]
        self._changed = {changed: at for changed, at in self._changed.items() if at >= began}
        self._open, self._since = opened, since

    def _known(self, deployment: str) -> None:
        if deployment not in self._deployments:
            known = ", ".join(sorted(self._deployments))
            raise NotFound(f"There is no deployment '{deployment}'; deployments: {known}.", code="deployment_not_found")
