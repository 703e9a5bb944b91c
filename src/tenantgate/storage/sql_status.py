"""The SQL store's status-page incidents (platform-wide rows: no tenant scope)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from tenantgate.domain import Incident, IncidentState
from tenantgate.storage.sql_scope import ALL, Scoped
from tenantgate.storage.sql_usage import aware
from tenantgate.storage.tables import incidents


class SqlStatus(Scoped):
    async def save_incident(self, incident: Incident) -> None:
        values = dataclasses.asdict(incident) | {"state": incident.state.value}
        async with self._begin(ALL) as conn:
            updated = await conn.execute(incidents.update().where(incidents.c.id == incident.id).values(**values))
            if not updated.rowcount:
                await conn.execute(incidents.insert().values(**values))

    async def get_incident(self, incident_id: str) -> Incident | None:
        async with self._connect(ALL) as conn:
            row = (await conn.execute(incidents.select().where(incidents.c.id == incident_id))).first()
        return None if row is None else _incident(row)

    async def list_incidents(self, limit: int, resolved_since: datetime | None = None) -> list[Incident]:
        c = incidents.c
        query = incidents.select().order_by(c.created_at.desc(), c.id.desc()).limit(limit)
        if resolved_since is not None:
            query = query.where(c.resolved_at.is_(None) | (c.resolved_at >= resolved_since))
        async with self._connect(ALL) as conn:
            rows = (await conn.execute(query)).all()
        return [_incident(r) for r in rows]


def _incident(row: Any) -> Incident:
    return Incident(
        row.id, row.title, row.message, IncidentState(row.state), aware(row.created_at) or row.created_at,
        aware(row.updated_at) or row.updated_at, aware(row.resolved_at),
    )  # fmt: skip
