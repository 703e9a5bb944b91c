"""The status page's incidents: operators post and update them, everyone reads them."""

from __future__ import annotations

import dataclasses
import secrets
from datetime import timedelta

from tenantgate.access.audit import AuditLog
from tenantgate.access.callers import Caller
from tenantgate.access.roles import Action
from tenantgate.clock import utcnow
from tenantgate.domain import Incident, IncidentState
from tenantgate.errors import NotFound
from tenantgate.storage.base import StatusStore

RESOLVED_SHOWN = timedelta(days=7)  # a resolved incident stays on the page this long
SHOWN_AT_MOST = 200


class StatusBoard:
    def __init__(self, store: StatusStore, audit: AuditLog) -> None:
        self._store = store
        self._audit = audit

    async def post(self, by: Caller, title: str, message: str, state: IncidentState) -> Incident:
        by.require(Action.PLATFORM_WRITE)
        now = utcnow()
        resolved = now if state is IncidentState.RESOLVED else None
        incident = Incident(secrets.token_hex(8), title, message, state, now, now, resolved)
        await self._store.save_incident(incident)
        await self._audit.record(by, "incident.post", f"incident {incident.id}", tenant_id=None, after=incident)
        return incident

    async def update(self, by: Caller, incident_id: str, state: IncidentState | None, message: str | None) -> Incident:
        by.require(Action.PLATFORM_WRITE)
        found = await self._store.get_incident(incident_id)
        if found is None:
            raise NotFound(f"No incident with id '{incident_id[:40]}'.", code="incident_not_found")
        now = utcnow()
        state = state or found.state
        resolved = found.resolved_at or now if state is IncidentState.RESOLVED else None
        updated = dataclasses.replace(
            found, state=state, message=message if message is not None else found.message, updated_at=now,
            resolved_at=resolved,
        )  # fmt: skip
        await self._store.save_incident(updated)
        await self._audit.record(by, "incident.update", f"incident {incident_id}", tenant_id=None,
                                 before=found, after=updated)  # fmt: skip
        return updated

    async def shown(self) -> list[Incident]:
        """What the status page shows: every open incident, and those resolved in the last week."""
        return await self._store.list_incidents(SHOWN_AT_MOST, resolved_since=utcnow() - RESOLVED_SHOWN)
