"""Tenants' own upstream keys in memory: a change made on this instance while a re-read of the
database is in flight is not undone by that read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from cryptography.fernet import Fernet

from tenantgate.access.audit import AuditLog
from tenantgate.access.callers import SYSTEM
from tenantgate.access.secret_box import SecretBox
from tenantgate.access.upstream_keys import TenantUpstreamKeys
from tenantgate.domain import UpstreamKey
from tenantgate.storage.memory import MemoryStore
from tenantgate.tenancy import TenancyService


class ReadInFlight(MemoryStore):
    """Answers a read with what was there when it began, after `during` changed things meanwhile."""

    during: Callable[[], Awaitable[None]] | None = None

    async def upstream_keys(self) -> list[UpstreamKey]:
        rows = await super().upstream_keys()
        if self.during is not None:
            await self.during()
        return rows


async def test_a_change_made_during_a_reread_stands() -> None:
    store = ReadInFlight()
    tenant = await TenancyService(store, None, frozenset({"starter"}), AuditLog(store)).create_tenant(SYSTEM, "acme")
    keys = TenantUpstreamKeys(store, SecretBox([Fernet.generate_key().decode()]), AuditLog(store), frozenset({"d"}))

    async def set_key() -> None:
        await keys.set(SYSTEM, tenant, "d", "sk-set-meanwhile")

    store.during = set_key
    await keys.refresh()
    assert keys.key_for(tenant.id, "d") == "sk-set-meanwhile"

    async def remove_key() -> None:
        await keys.remove(SYSTEM, tenant, "d")

    store.during = remove_key
    await keys.refresh()  # the read saw the key; it was removed meanwhile
    assert keys.key_for(tenant.id, "d") is None
    store.during = None
    await keys.refresh()
    assert keys.key_for(tenant.id, "d") is None and keys.shown(tenant) == []
