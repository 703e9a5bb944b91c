"""Prompt templates in memory on each instance: a version deleted on one is gone from the others
at their next read, and a read that began before the deletion does not bring it back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from tenantgate.access.audit import AuditLog
from tenantgate.access.callers import SYSTEM
from tenantgate.domain import PromptTemplate
from tenantgate.errors import NotFound
from tenantgate.prompt_templates import TemplateBook
from tenantgate.storage.memory import MemoryStore
from tenantgate.tenancy import TenancyService

HELLO = [{"role": "system", "content": "Hello."}]


class ReadInFlight(MemoryStore):
    """Answers a read with what was there when it began, after `during` changed things meanwhile."""

    during: Callable[[], Awaitable[None]] | None = None

    async def templates(self) -> list[PromptTemplate]:
        rows = await super().templates()
        if self.during is not None:
            await self.during()
        return rows


async def test_a_deletion_reaches_every_instance_and_stays() -> None:
    store = ReadInFlight()
    tenant = await TenancyService(store, None, frozenset({"starter"}), AuditLog(store)).create_tenant(SYSTEM, "acme")
    here, there = TemplateBook(store, AuditLog(store)), TemplateBook(store, AuditLog(store))
    for _ in range(2):
        await here.add(SYSTEM, tenant, "greet", HELLO)
    await there.refresh()
    assert there.find(tenant.id, "greet", None).version == 2

    async def delete_meanwhile() -> None:
        await here.delete(SYSTEM, tenant, "greet", 2)

    store.during = delete_meanwhile
    await here.refresh()  # read before the deletion, applied after it: the deletion stands
    store.during = None
    with pytest.raises(NotFound):
        here.find(tenant.id, "greet", 2)
    await there.refresh()
    assert there.find(tenant.id, "greet", None).version == 1
    assert [v.version for v in there.versions(tenant.id)] == [1]
    assert (await there.add(SYSTEM, tenant, "greet", HELLO)).version == 3  # the deleted number is not reused
