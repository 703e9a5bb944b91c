"""The status page shows open incidents and those resolved in the last week, newest first."""

from __future__ import annotations

from datetime import timedelta

from tenantgate.access.audit import AuditLog
from tenantgate.access.callers import SYSTEM
from tenantgate.clock import utcnow
from tenantgate.domain import Incident, IncidentState
from tenantgate.incidents import StatusBoard
from tenantgate.storage.memory import MemoryStore


async def test_resolved_incidents_leave_the_page_after_a_week() -> None:
    store = MemoryStore()
    board = StatusBoard(store, AuditLog(store))
    long_ago = utcnow() - timedelta(days=8)
    await store.save_incident(Incident("old", "Old outage", "", IncidentState.RESOLVED, long_ago, long_ago, long_ago))
    open_one = await board.post(SYSTEM, "Slow answers", "", IncidentState.INVESTIGATING)
    done = await board.update(SYSTEM, (await board.post(SYSTEM, "Pool down", "", IncidentState.IDENTIFIED)).id,
                              IncidentState.RESOLVED, "Back up")  # fmt: skip
    assert done.resolved_at is not None and done.message == "Back up"
    assert {i.id for i in await board.shown()} == {open_one.id, done.id}
    reopened = await board.update(SYSTEM, done.id, IncidentState.MONITORING, None)
    assert reopened.resolved_at is None and reopened.message == "Back up"
