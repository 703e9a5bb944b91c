"""The in-memory store's status-page incidents."""

from __future__ import annotations

from datetime import datetime

from tenantgate.domain import Incident


class MemoryStatus:
    def _init_status(self) -> None:
        self._incidents: dict[str, Incident] = {}

    async def save_incident(self, incident: Incident) -> None:
        self._incidents[incident.id] = incident

    async def get_incident(self, incident_id: str) -> Incident | None:
        return self._incidents.get(incident_id)

    async def list_incidents(self, limit: int, resolved_since: datetime | None = None) -> list[Incident]:
        shown = [i for i in self._incidents.values()
                 if resolved_since is None or i.resolved_at is None or i.resolved_at >= resolved_since]  # fmt: skip
        return sorted(shown, key=lambda i: (i.created_at, i.id), reverse=True)[:limit]
