"""What several management reports share: time windows checked, fresh rollups, the audit log's rows."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import Query, Request
from pydantic import BaseModel

from tenantgate.api.deps import Audit, gateway, rollups
from tenantgate.api.schemas import sane_moment
from tenantgate.clock import utcnow
from tenantgate.domain import AuditEvent
from tenantgate.errors import InvalidRequest


class AuditOut(BaseModel):
    id: str
    at: datetime
    actor: str
    actor_role: str
    action: str
    target: str
    tenant_id: str | None
    before: dict[str, object] | None
    after: dict[str, object] | None
    source: str

    @classmethod
    def of(cls, e: AuditEvent) -> AuditOut:
        return cls(id=e.id, at=e.at, actor=e.actor, actor_role=e.actor_role, action=e.action, target=e.target,
                   tenant_id=e.tenant_id, before=e.before, after=e.after, source=e.source)  # fmt: skip


Since = Annotated[datetime | None, Query(description="From (with a timezone); default 30 days ago")]


Until = Annotated[datetime | None, Query(description="To (with a timezone); default now")]


Limit = Annotated[int, Query(ge=1, le=10_000)]


async def audit_events(audit: Audit, tenant_id: str | None, since: datetime | None, until: datetime | None, limit: int
                 ) -> list[AuditOut]:  # fmt: skip
    end = aware(until, "until") if until else utcnow() + timedelta(seconds=1)
    start, end = window(aware(since, "since") if since else end - timedelta(days=30), end)
    return [AuditOut.of(e) for e in await audit.events(tenant_id, start, end, limit)]


Format = Annotated[Literal["json", "csv"], Query(description="json or csv")]


MAX_RANGE = timedelta(days=400)


def aware(value: datetime, name: str) -> datetime:
    """A query's moment, checked as `sane_moment` does; InvalidRequest naming the parameter otherwise."""
    try:
        return sane_moment(value, name)
    except ValueError as exc:
        raise InvalidRequest(f"{exc}.", param=name) from None


def window(start: datetime, end: datetime, longest: timedelta = MAX_RANGE) -> tuple[datetime, datetime]:
    """A query's time range, checked: start before end, and at most `longest` long."""
    if not start < end or end - start > longest:
        days = longest.days
        raise InvalidRequest(f"'since' must be before 'until', and at most {days} days before it.", param="since")
    return start, end


async def refresh(request: Request) -> None:
    await gateway(request).recorder.flush()
    await rollups(request).roll_pending()
