"""The billing service on the in-memory store: finalising burns credit, alerts once per threshold,
stays final, and takes credit notes no larger than the invoice."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tenantgate.access.audit import AuditLog
from tenantgate.access.callers import SYSTEM
from tenantgate.billing.invoicing import Billing
from tenantgate.billing.rollups import RollupJob
from tenantgate.errors import Conflict
from tenantgate.notifications import Notifier
from tenantgate.settings import PlanConfig
from tenantgate.storage.memory import MemoryStore
from tests.integration.test_store_suite import tenant

DECEMBER = datetime(2026, 12, 3, tzinfo=UTC)


async def test_finalising_burns_credit_alerts_once_and_is_immutable() -> None:
    store = MemoryStore()
    await store.create_tenant(tenant("acme"))
    plans = {"growth": PlanConfig(name="growth", display_name="Growth", monthly_fee_usd=9)}
    notifier = Notifier(store)
    clock = [datetime(2026, 11, 20, tzinfo=UTC)]
    rollups = RollupJob(store, lambda _: 0, {})
    billing = Billing(store, plans.get, rollups, currency="USD", audit=AuditLog(store), clock=lambda: clock[0],
                      notifier=notifier)  # fmt: skip
    await billing.grant(SYSTEM, "acme", 10_000_000, None, "welcome")
    with pytest.raises(Conflict, match="has not ended"):
        await billing.finalize(SYSTEM, "acme", "2026-11")
    clock[0] = DECEMBER
    final = await billing.finalize(SYSTEM, "acme", "2026-11")
    assert final["status"] == "final" and final["total_micros"] == 0 and final["credits_micros"] == -9_000_000
    await notifier.drain()
    kinds = sorted(n.kind for n in await store.list_notifications("t-acme"))
    assert kinds == ["credit_50", "credit_80"]  # 90 % of the grant went: 50 and 80 crossed, 100 not
    with pytest.raises(Conflict, match="final already"):
        await billing.finalize(SYSTEM, "acme", "2026-11")
    await billing.grant(SYSTEM, "acme", 1_000_000, None, "top-up")
    assert (await billing.invoice("acme", "2026-11"))["lines"] == final["lines"]  # a final invoice never changes
    with pytest.raises(Conflict, match="more than the invoice"):
        await billing.credit_note(SYSTEM, "acme", "2026-11", 1, "nothing is due on it")
    left = {c["note"]: c["remaining_micros"] for c in await billing.credits("acme")}
    assert left == {"welcome": 1_000_000, "top-up": 1_000_000}


async def test_a_finalised_invoice_and_its_credit_note_are_in_the_audit_log() -> None:
    store = MemoryStore()
    await store.create_tenant(tenant("acme"))
    plans = {"growth": PlanConfig(name="growth", display_name="Growth", monthly_fee_usd=9)}
    audit = AuditLog(store)
    rollups = RollupJob(store, lambda _: 0, {})
    billing = Billing(store, plans.get, rollups, currency="USD", audit=audit, clock=lambda: DECEMBER)
    final = await billing.finalize(SYSTEM, "acme", "2026-11")
    assert final["total_micros"] == 9_000_000
    await billing.credit_note(SYSTEM, "acme", "2026-11", 1_000_000, "goodwill")
    events = await audit.events("t-acme", datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC), 10)
    assert [e.action for e in reversed(events)] == ["invoice.finalize", "invoice.credit_note"]
