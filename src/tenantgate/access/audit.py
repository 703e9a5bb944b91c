"""The audit log: every change made through the management API, the CLI or `apply`, appended by the
service that made it (services own every write, so this is the one place changes pass through)."""

from __future__ import annotations

import dataclasses
import secrets
from datetime import datetime
from typing import Any

from tenantgate.access.callers import Caller
from tenantgate.clock import utcnow
from tenantgate.domain import AuditEvent
from tenantgate.storage.base import AccessStore

SECRET_FIELDS = frozenset({"secret_hash", "previous_secret_hash", "password_hash", "secret"})


def snapshot(record: Any) -> dict[str, object] | None:
    """A record as the audit log keeps it: plain JSON values, never a secret or its hash."""
    if record is None:
        return None
    is_record = dataclasses.is_dataclass(record) and not isinstance(record, type)
    values = dataclasses.asdict(record) if is_record else dict(record)
    return {name: _plain(value) for name, value in values.items() if name not in SECRET_FIELDS}


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


class AuditLog:
    def __init__(self, store: AccessStore) -> None:
        self._store = store

    async def record(
        self, by: Caller, action: str, target: str, *, tenant_id: str | None, before: Any = None, after: Any = None
    ) -> AuditEvent:
        event = AuditEvent(
            id=secrets.token_hex(8),
            at=utcnow(),
            actor=by.name,
            actor_role=by.role.value,
            action=action,
            target=target,
            tenant_id=tenant_id,
            before=snapshot(before),
            after=snapshot(after),
            source=by.source,
        )
        await self._store.add_audit(event)
        return event

    async def events(self, tenant_id: str | None, since: datetime, until: datetime, limit: int) -> list[AuditEvent]:
        return await self._store.list_audit(tenant_id, since, until, limit)
