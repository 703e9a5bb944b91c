"""The in-memory store's status-page incidents."""

from __future__ import annotations

from tenantgate.domain import Incident


class MemoryStatus:
    def _init_status(self) -> None:
        self._incidents: dict[str, Incident] = {}

    async def save_incident(self, incident: Incident) -> None:
        self._incidents[incident.id] = incident

    async def get_incident(self, incident_id: str) -> Incident | None:
        return self._incidents.get(incident_id)

    async def list_incidents(self, limit: int) -> list[Incident]:
        return sorted(self._incidents.values(), key=lambda i: (i.created_at, i.id), reverse=True)[:limit]
