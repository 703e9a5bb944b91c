"""The SQL store's billing side: raw events by time, rollups, credit grants, invoices, credit notes."""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tenantgate.billing.records import CreditGrant, CreditNote, FinalInvoice, Rollup, RollupKey, UsageTotals, Webhook
from tenantgate.billing.sketches import sketch_from_bytes, sketch_to_bytes
from tenantgate.clock import utcnow
from tenantgate.domain import Notification, RequestFilter, UsageEvent
from tenantgate.errors import Conflict
from tenantgate.storage.sql_lists import among
from tenantgate.storage.sql_scope import ALL, Scoped
from tenantgate.storage.sql_usage import EVENTS, aware, event_of
from tenantgate.storage.tables import (
    credit_applications,
    credit_grants,
    credit_notes,
    invoices,
    notifications,
    request_contents,
    tenant_webhooks,
    tenants,
    usage_events,
    usage_rollups,
)


def rollup_values(granularity: str, row: Rollup) -> dict[str, Any]:
    key = row.key
    return {
        "granularity": granularity, "bucket": key.bucket, "tenant_id": key.tenant_id, "key_id": key.key_id,
        "user_id": key.user_id, "endpoint": key.endpoint, "model": key.model, "deployment": key.deployment,
        "pool": key.pool, "requests": row.requests, "errors": row.errors, "rejected": row.rejected,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens, "cached_tokens": row.cached_tokens, "estimated": row.estimated,
        "gpu_seconds": row.gpu_seconds, "charged_micros": row.charged_micros, "gpu_cost_micros": row.gpu_cost_micros,
        "ttft_sketch": sketch_to_bytes(row.ttft_ms), "queue_wait_sketch": sketch_to_bytes(row.queue_wait_ms),
        "latency_sketch": sketch_to_bytes(row.latency_ms), "error_count": row.error_count,
        "rejected_count": row.rejected_count, "slo_requests": row.slo_requests, "slo_met": row.slo_met,
        "queue_waits": row.queue_waits, "queue_wait_ms_sum": row.queue_wait_ms_sum,
    }  # fmt: skip


SKETCHES = ("ttft_sketch", "queue_wait_sketch", "latency_sketch")
MERGE_PAGE = 100  # stored rows a round adds into per statement: decoded and encoded in one turn of the loop
WITHOUT_SKETCHES = [column for column in usage_rollups.c if column.name not in SKETCHES]


def _rollup(row: Any) -> Rollup:
    ttft, queue_wait, latency = (row._mapping.get(name) for name in SKETCHES)  # absent when not asked for
    key = RollupKey(
        aware(row.bucket) or row.bucket, row.tenant_id, row.key_id, row.user_id, row.endpoint, row.model,
        row.deployment, row.pool,
    )  # fmt: skip
    return Rollup(
        key, int(row.requests), dict(row.errors or {}), int(row.prompt_tokens), int(row.completion_tokens),
        int(row.cached_tokens), int(row.estimated), float(row.gpu_seconds), int(row.charged_micros),
        int(row.gpu_cost_micros), sketch_from_bytes(ttft), sketch_from_bytes(queue_wait), sketch_from_bytes(latency),
        dict(row.rejected or {}), int(row.slo_requests), int(row.slo_met), int(row.queue_waits),
        float(row.queue_wait_ms_sum),
    )  # fmt: skip


class _RolledElsewhere(Exception):
    pass


# One row of usage_rollups by its primary key; executed with many keys at once (one round trip).
_ROLLUP_ROW = usage_rollups.delete().where(
    *(column == sa.bindparam(f"k_{column.name}") for column in usage_rollups.primary_key)
)


def _row_key(granularity: str, key: RollupKey) -> dict[str, object]:
    return {
        "k_granularity": granularity, "k_bucket": key.bucket, "k_tenant_id": key.tenant_id, "k_key_id": key.key_id,
        "k_user_id": key.user_id, "k_endpoint": key.endpoint, "k_model": key.model, "k_deployment": key.deployment,
    }  # fmt: skip


class SqlBilling(Scoped):
    _engine: AsyncEngine

    async def _serialise(self, conn: AsyncConnection, name: str) -> None:
        """Instances writing the same rows take turns (PostgreSQL; SQLite writes one at a time anyway)."""
        if self._engine.dialect.name == "postgresql":
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(zlib.crc32(name.encode()))))

    async def usage_between(self, since: datetime, until: datetime, tenant_id: str | None = None) -> list[UsageEvent]:
        u = usage_events.c
        query = EVENTS.where(u.created_at >= since, u.created_at < until)
        if tenant_id is not None:
            query = query.where(u.tenant_id == tenant_id).order_by(u.created_at, u.request_id)
        async with self._connect(tenant_id) as conn:
            rows = (await conn.execute(query)).all()
        return [event_of(r) for r in rows]

    async def replace_rollups(self, granularity: str, since: datetime, until: datetime, rows: Sequence[Rollup]) -> None:
        r, u = usage_rollups.c, usage_events.c
        async with self._begin(ALL) as conn:
            await self._serialise(conn, "rollups")
            await conn.execute(
                usage_rollups.delete().where(r.granularity == granularity, r.bucket >= since, r.bucket < until)
            )
            if rows:
                await conn.execute(usage_rollups.insert(), [rollup_values(granularity, row) for row in rows])
            if granularity == "hour":  # these hours now hold every event in them
                in_range = (u.created_at >= since) & (u.created_at < until) & u.rolled_at.is_(None)
                await conn.execute(usage_events.update().where(in_range).values(rolled_at=utcnow()))

    async def request_log(
        self, tenant_id: str, since: datetime, until: datetime, matching: RequestFilter, limit: int
    ) -> list[UsageEvent]:
        u = usage_events.c
        query = EVENTS.where(u.tenant_id == tenant_id, u.created_at >= since, u.created_at < until)
        for column, value in ((u.model, matching.model), (u.key_id, matching.key_id), (u.user_id, matching.user_id),
                              (u.request_id, matching.request_id)):  # fmt: skip
            if value is not None:
                query = query.where(column == value)
        if matching.failed_only:
            query = query.where(u.status >= 400)
        if matching.older_than is not None:
            at, request_id = matching.older_than
            query = query.where((u.created_at < at) | ((u.created_at == at) & (u.request_id < request_id)))
        query = query.order_by(u.created_at.desc(), u.request_id.desc()).limit(limit)
        async with self._connect(tenant_id) as conn:
            rows = (await conn.execute(query)).all()
        return [event_of(r) for r in rows]

    async def unrolled_usage(self, limit: int, page: int) -> AsyncGenerator[list[UsageEvent], None]:
        u = usage_events.c
        query = EVENTS.where(u.rolled_at.is_(None)).order_by(u.created_at).limit(limit)
        async with self._connect(ALL) as conn:
            result = await conn.stream(query)  # fetched a page at a time (a server-side cursor)
            async for rows in result.partitions(page):
                yield [event_of(r) for r in rows]

    async def merge_rollups(self, rows: Sequence[tuple[str, Rollup]], rolled: Sequence[str]) -> bool:
        try:
            async with self._begin(ALL) as conn:
                await self._serialise(conn, "rollups")
                await self._merge(conn, rows, rolled)
        except _RolledElsewhere:
            return False
        return True

    async def _merge(self, conn: AsyncConnection, rows: Sequence[tuple[str, Rollup]], rolled: Sequence[str]) -> None:
        r, u = usage_rollups.c, usage_events.c
        pending = among(u.request_id, rolled, self._engine.dialect.name) & u.rolled_at.is_(None)
        marked = (await conn.execute(usage_events.update().where(pending).values(rolled_at=utcnow()))).rowcount
        if marked != len(set(rolled)):
            raise _RolledElsewhere  # another instance rolled some of them meanwhile: undo, retry next round
        dialect = self._engine.dialect.name
        groups: dict[tuple[str, datetime], list[Rollup]] = {}
        for granularity, row in rows:
            groups.setdefault((granularity, row.key.bucket), []).append(row)
        for (granularity, bucket), group in groups.items():
            group.sort(key=lambda row: (row.key.tenant_id, row.key.key_id))
            for start in range(0, len(group), MERGE_PAGE):  # a page's rows are decoded and encoded in one turn
                mine = {row.key: row for row in group[start : start + MERGE_PAGE]}
                tenants, keys = sorted({key.tenant_id for key in mine}), sorted({key.key_id for key in mine})
                theirs = among(r.tenant_id, tenants, dialect) & among(r.key_id, keys, dialect)  # one text for any
                replaced = []
                where = (r.granularity == granularity) & (r.bucket == bucket) & theirs
                for existing in (await conn.execute(usage_rollups.select().where(where))).all():
                    old = _rollup(existing)
                    if old.key in mine:
                        old.merge(mine[old.key])
                        mine[old.key] = old
                        replaced.append(_row_key(granularity, old.key))
                if replaced:
                    await conn.execute(_ROLLUP_ROW, replaced)
                await conn.execute(usage_rollups.insert(), [rollup_values(granularity, row) for row in mine.values()])

    async def list_rollups(
        self, granularity: str, since: datetime, until: datetime, tenant_id: str | None = None,
        percentiles: bool = True,
    ) -> list[Rollup]:  # fmt: skip
        r = usage_rollups.c
        query = usage_rollups.select() if percentiles else sa.select(*WITHOUT_SKETCHES)
        query = query.where(r.granularity == granularity, r.bucket >= since, r.bucket < until)
        if tenant_id is not None:
            query = query.where(r.tenant_id == tenant_id)
        async with self._connect(tenant_id) as conn:
            rows = (await conn.execute(query.order_by(r.bucket))).all()
        return [_rollup(row) for row in rows]

    async def tenant_totals(self, granularity: str, since: datetime, until: datetime) -> list[UsageTotals]:
        r = usage_rollups.c
        summed = (r.requests, r.error_count, r.rejected_count, r.prompt_tokens, r.completion_tokens, r.gpu_seconds,
                  r.charged_micros, r.gpu_cost_micros, r.slo_requests, r.slo_met, r.queue_waits,
                  r.queue_wait_ms_sum)  # fmt: skip
        query = (
            sa.select(r.tenant_id, r.model, *(sa.func.sum(column) for column in summed))
            .where(r.granularity == granularity, r.bucket >= since, r.bucket < until)
            .group_by(r.tenant_id, r.model)
        )
        async with self._connect(ALL) as conn:
            rows = (await conn.execute(query)).all()
        return [
            UsageTotals(tenant_id, model, int(requests), int(errors), int(rejected), int(prompt), int(completion),
                        float(gpu_seconds), int(charged), int(gpu_cost), int(slo_requests), int(slo_met), int(waits),
                        float(wait_ms))
            for (tenant_id, model, requests, errors, rejected, prompt, completion, gpu_seconds, charged, gpu_cost,
                 slo_requests, slo_met, waits, wait_ms) in rows
        ]  # fmt: skip

    async def error_counts(self, granularity: str, since: datetime, until: datetime) -> dict[tuple[datetime, str], int]:
        r = usage_rollups.c
        failed = (r.granularity == granularity, r.bucket >= since, r.bucket < until, r.error_count > 0)
        counts: dict[tuple[datetime, str], int] = {}
        async with self._connect(ALL) as conn:
            for row in (await conn.execute(sa.select(r.bucket, r.errors).where(*failed))).all():
                bucket = aware(row.bucket) or row.bucket
                for kind, count in (row.errors or {}).items():
                    counts[(bucket, kind)] = counts.get((bucket, kind), 0) + int(count)
        return counts

    async def add_credit_grant(self, grant: CreditGrant) -> None:
        async with self._begin(ALL) as conn:
            await conn.execute(credit_grants.insert().values(**dataclasses.asdict(grant)))

    async def list_credit_grants(self, tenant_id: str) -> list[CreditGrant]:
        g = credit_grants.c
        query = credit_grants.select().where(g.tenant_id == tenant_id).order_by(g.granted_at, g.id)
        async with self._connect(tenant_id) as conn:
            rows = (await conn.execute(query)).all()
        return [
            CreditGrant(r.id, r.tenant_id, int(r.amount_micros), aware(r.granted_at) or r.granted_at,
                        aware(r.expires_at), r.note)
            for r in rows
        ]  # fmt: skip

    async def credit_applied(self, tenant_id: str) -> dict[str, int]:
        a = credit_applications.c
        query = sa.select(a.grant_id, sa.func.sum(a.amount_micros)).where(a.tenant_id == tenant_id).group_by(a.grant_id)
        async with self._connect(tenant_id) as conn:
            rows = (await conn.execute(query)).all()
        return {r[0]: int(r[1]) for r in rows}

    async def credit_balances(self, now: datetime) -> dict[str, int]:
        g, a = credit_grants.c, credit_applications.c
        applied = sa.select(a.grant_id, sa.func.sum(a.amount_micros).label("used")).group_by(a.grant_id).subquery()
        left = g.amount_micros - sa.func.coalesce(applied.c.used, 0)
        query = (
            sa.select(g.tenant_id, sa.func.sum(left))
            .select_from(credit_grants.outerjoin(applied, applied.c.grant_id == g.id))
            .where(sa.or_(g.expires_at.is_(None), g.expires_at > now))
            .group_by(g.tenant_id)
        )
        async with self._connect(ALL) as conn:
            rows = (await conn.execute(query)).all()
        return {r[0]: int(r[1]) for r in rows}

    async def finalize_invoice(self, invoice: FinalInvoice) -> None:
        values = {
            "id": invoice.id, "tenant_id": invoice.tenant_id, "month": invoice.month,
            "total_micros": invoice.total_micros, "document": invoice.document, "finalized_at": invoice.finalized_at,
        }  # fmt: skip
        applied = [
            {"invoice_id": invoice.id, "grant_id": grant, "tenant_id": invoice.tenant_id, "amount_micros": amount}
            for grant, amount in invoice.credits
        ]
        try:
            async with self._begin(ALL) as conn:
                await self._serialise(conn, f"credits:{invoice.tenant_id}")
                await conn.execute(invoices.insert().values(**values))
                if applied:
                    await conn.execute(credit_applications.insert(), applied)
        except IntegrityError as exc:
            raise Conflict(f"the invoice for {invoice.month} is final already", code="invoice_final") from exc

    async def get_invoice(self, tenant_id: str, month: str) -> FinalInvoice | None:
        found = await self._invoices((invoices.c.tenant_id == tenant_id) & (invoices.c.month == month))
        return found[0] if found else None

    async def list_invoices(self, tenant_id: str) -> list[FinalInvoice]:
        return await self._invoices(invoices.c.tenant_id == tenant_id)

    async def _invoices(self, where: sa.ColumnElement[bool]) -> list[FinalInvoice]:
        a = credit_applications.c
        async with self._connect(ALL) as conn:
            rows = (await conn.execute(invoices.select().where(where).order_by(invoices.c.month))).all()
            ids = [r.id for r in rows]
            applied = (await conn.execute(credit_applications.select().where(a.invoice_id.in_(ids)))).all()
        credits: dict[str, list[tuple[str, int]]] = {}
        for row in applied:
            credits.setdefault(row.invoice_id, []).append((row.grant_id, int(row.amount_micros)))
        return [
            FinalInvoice(r.id, r.tenant_id, r.month, int(r.total_micros), dict(r.document),
                         aware(r.finalized_at) or r.finalized_at, tuple(sorted(credits.get(r.id, []))))
            for r in rows
        ]  # fmt: skip

    async def add_credit_note(self, note: CreditNote) -> None:
        async with self._begin(ALL) as conn:
            await conn.execute(credit_notes.insert().values(**dataclasses.asdict(note)))

    async def list_credit_notes(self, invoice_id: str) -> list[CreditNote]:
        n = credit_notes.c
        query = credit_notes.select().where(n.invoice_id == invoice_id).order_by(n.created_at, n.id)
        async with self._connect(ALL) as conn:
            rows = (await conn.execute(query)).all()
        return [
            CreditNote(r.id, r.invoice_id, r.tenant_id, int(r.amount_micros), r.reason,
                       aware(r.created_at) or r.created_at)
            for r in rows
        ]  # fmt: skip

    async def set_webhook(self, webhook: Webhook | None, tenant_id: str) -> None:
        async with self._begin(tenant_id) as conn:
            await conn.execute(tenant_webhooks.delete().where(tenant_webhooks.c.tenant_id == tenant_id))
            if webhook is not None:
                await conn.execute(tenant_webhooks.insert().values(**dataclasses.asdict(webhook)))

    async def get_webhook(self, tenant_id: str) -> Webhook | None:
        query = tenant_webhooks.select().where(tenant_webhooks.c.tenant_id == tenant_id)
        async with self._connect(tenant_id) as conn:
            row = (await conn.execute(query)).first()
        return (
            None
            if row is None
            else Webhook(row.tenant_id, row.url, row.secret, aware(row.created_at) or row.created_at)
        )

    async def undelivered_notifications(self, limit: int, max_attempts: int) -> list[Notification]:
        n = notifications.c
        with_webhook = sa.select(tenant_webhooks.c.tenant_id)
        query = (
            notifications.select()
            .where(n.delivered_at.is_(None), n.attempts < max_attempts, n.tenant_id.in_(with_webhook))
            .order_by(n.created_at)
            .limit(limit)
        )
        async with self._connect(ALL) as conn:
            rows = (await conn.execute(query)).all()
        return [Notification(r.id, r.tenant_id, r.kind, r.period, r.message, aware(r.created_at) or r.created_at)
                for r in rows]  # fmt: skip

    async def mark_notification(self, notification_id: str, delivered_at: datetime | None) -> None:
        n = notifications.c
        change = {"delivered_at": delivered_at} if delivered_at else {"attempts": n.attempts + 1}
        async with self._begin(ALL) as conn:
            await conn.execute(notifications.update().where(n.id == notification_id).values(**change))

    async def unexported_usage(self, limit: int) -> list[UsageEvent]:
        u = usage_events.c
        query = EVENTS.where(u.exported_at.is_(None)).order_by(u.created_at).limit(limit)
        async with self._connect(ALL) as conn:
            rows = (await conn.execute(query)).all()
        return [event_of(r) for r in rows]

    async def mark_exported(self, request_ids: Sequence[str], at: datetime) -> None:
        u = usage_events.c
        listed = among(u.request_id, request_ids, self._engine.dialect.name)
        async with self._begin(ALL) as conn:
            await conn.execute(usage_events.update().where(listed).values(exported_at=at))

    async def set_retention(self, tenant_id: str, days: int | None) -> None:
        async with self._begin(tenant_id) as conn:
            await conn.execute(tenants.update().where(tenants.c.id == tenant_id).values(usage_retention_days=days))

    async def retention_days(self) -> dict[str, int | None]:
        async with self._connect(ALL) as conn:
            rows = (await conn.execute(sa.select(tenants.c.id, tenants.c.usage_retention_days))).all()
        return {r[0]: r[1] for r in rows}

    async def purge_usage(self, now: datetime, default_days: int) -> int:
        """One pair of deletes per distinct retention, each over the tenants that have it (not a pair
        per tenant: 10,000 tenants took seconds of CPU at every start)."""
        t, u, c = tenants.c, usage_events.c, request_contents.c
        async with self._connect(ALL) as conn:
            own = set((await conn.execute(sa.select(t.usage_retention_days).distinct())).scalars())
        removed = 0
        for days in sorted({default_days, *(d for d in own if d is not None)}):
            keeping = t.usage_retention_days == days
            if days == default_days:
                keeping = keeping | t.usage_retention_days.is_(None)
            chosen, before = sa.select(t.id).where(keeping), now - timedelta(days=days)
            async with self._begin(ALL) as conn:
                gone = await conn.execute(usage_events.delete().where(u.created_at < before, u.tenant_id.in_(chosen)))
                await conn.execute(request_contents.delete().where(c.created_at < before, c.tenant_id.in_(chosen)))
            removed += int(gone.rowcount)
        return removed
