"""`apply` with `pins: []` stores "no pins", also for a tenant that only the configuration file pins."""

from __future__ import annotations

from tenantgate.access.audit import AuditLog
from tenantgate.access.callers import SYSTEM
from tenantgate.declarative import Applier, Document
from tenantgate.storage.memory import MemoryStore
from tenantgate.tenancy import TenancyService


async def test_an_empty_pin_list_overrides_the_files_pins_once() -> None:
    store = MemoryStore()
    tenancy = TenancyService(store, None, frozenset({"starter"}), AuditLog(store), pin_targets=frozenset({"eu"}))
    await tenancy.create_tenant(SYSTEM, "acme")  # no pins stored: the file's pins apply to it
    applier = Applier(tenancy, store, lambda provider: frozenset())
    unpinned = Document.model_validate({"tenants": {"acme": {"pins": []}}})
    assert (await applier.apply(SYSTEM, unpinned, dry_run=False)).changes == [
        "~ tenant acme: pins the configuration file's → none"
    ]
    assert (await tenancy.tenant("acme")).pins == ()
    assert (await applier.apply(SYSTEM, unpinned, dry_run=False)).changes == []
    pinned = Document.model_validate({"tenants": {"acme": {"pins": ["eu"]}}})
    assert (await applier.apply(SYSTEM, pinned, dry_run=False)).changes == ["~ tenant acme: pins none → eu"]
