"""A flood of bad end-user assertions costs one audit write a minute per key, and the entry says
how many refusals it stands for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tenantgate.access.audit import AuditLog
from tenantgate.auth.assertions import REFUSALS_AUDITED_EVERY_S, EndUserAssertions
from tenantgate.auth.directory import KeyDirectory
from tenantgate.domain import Principal
from tenantgate.errors import AuthenticationFailed
from tenantgate.storage.memory import MemoryStore
from tests.unit.manual_clock import ManualClock


async def test_refusals_are_audited_once_a_minute_per_key_with_a_count() -> None:
    store, clock = MemoryStore(), ManualClock(1_000_000.0)
    assertions = EndUserAssertions(store, KeyDirectory(store), AuditLog(store), clock=clock)
    edge, other = (Principal("t1", "edge", key, None, "growth", None, None) for key in ("k1", "k2"))

    async def refused(principal: Principal, times: int) -> None:
        for _ in range(times):
            with pytest.raises(AuthenticationFailed, match="no proxy key"):
                await assertions.end_user(principal, "not-a-jwt")

    async def entries() -> list[tuple[str, object]]:
        now = datetime.now(UTC)
        found = await store.list_audit("t1", now - timedelta(hours=1), now + timedelta(hours=1), 100)
        return sorted((e.target, (e.after or {}).get("refused_since_last_entry")) for e in found)

    await refused(edge, 50)
    await refused(other, 1)  # another key has its own minute
    assert await entries() == [("key k1", 0), ("key k2", 0)]
    clock.now += REFUSALS_AUDITED_EVERY_S
    await refused(edge, 1)
    assert await entries() == [("key k1", 0), ("key k1", 49), ("key k2", 0)]
