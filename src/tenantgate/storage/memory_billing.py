"""The in-memory store's billing side: the reference the SQL store is tested against."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime, timedelta

from tenantgate.billing.records import CreditGrant, CreditNote, FinalInvoice, Rollup, RollupKey, UsageTotals, Webhook
from tenantgate.domain import Notification, RequestContent, RequestFilter, Tenant, UsageEvent
from tenantgate.errors import Conflict


class MemoryBilling:
    _usage: dict[str, UsageEvent]
    _contents: dict[str, RequestContent]
    _notifications: dict[tuple[str, str, str], Notification]
    _tenants: dict[str, Tenant]

    def _init_billing(self) -> None:
        self._rollups: dict[str, list[Rollup]] = {"hour": [], "day": [], "month": []}
        self._grants: dict[str, CreditGrant] = {}
        self._invoices: dict[tuple[str, str], FinalInvoice] = {}
        self._notes: list[CreditNote] = []
        self._webhooks: dict[str, Webhook] = {}
        self._delivery: dict[str, tuple[datetime | None, int]] = {}  # notification id -> (delivered, attempts)
        self._exported: set[str] = set()
        self._rolled: set[str] = set()
        self._retention: dict[str, int | None] = {}

    def _delete_billing(self, tenant_id: str) -> dict[str, int]:
        rollups = 0
        for granularity, rows in self._rollups.items():
            kept = [r for r in rows if r.key.tenant_id != tenant_id]
            rollups += len(rows) - len(kept)
            self._rollups[granularity] = kept
        invoices = [key for key, invoice in self._invoices.items() if invoice.tenant_id == tenant_id]
        for key in invoices:
            del self._invoices[key]
        notes = len(self._notes)
        self._notes = [n for n in self._notes if n.tenant_id != tenant_id]
        grants = [g for g, grant in self._grants.items() if grant.tenant_id == tenant_id]
        for g in grants:
            del self._grants[g]
        webhooks = 1 if self._webhooks.pop(tenant_id, None) else 0
        self._retention.pop(tenant_id, None)
        return {"usage_rollups": rollups, "invoices": len(invoices), "credit_notes": notes - len(self._notes),
                "credit_grants": len(grants), "tenant_webhooks": webhooks}  # fmt: skip

    async def usage_between(self, since: datetime, until: datetime, tenant_id: str | None = None) -> list[UsageEvent]:
        found = [
            e
            for e in self._usage.values()
            if since <= e.created_at < until and (tenant_id is None or e.tenant_id == tenant_id)
        ]
        return sorted(found, key=lambda e: (e.created_at, e.request_id))

    async def replace_rollups(self, granularity: str, since: datetime, until: datetime, rows: Sequence[Rollup]) -> None:
        kept = [r for r in self._rollups[granularity] if not since <= r.key.bucket < until]
        self._rollups[granularity] = kept + [copy.deepcopy(r) for r in rows]
        if granularity == "hour":
            self._rolled.update(e.request_id for e in self._usage.values() if since <= e.created_at < until)

    async def tenant_totals(self, granularity: str, since: datetime, until: datetime) -> list[UsageTotals]:
        merged: dict[tuple[str, str], Rollup] = {}
        for row in await self.list_rollups(granularity, since, until):
            key = RollupKey(since, row.key.tenant_id, "", "", "", row.key.model, "", "")
            merged.setdefault((key.tenant_id, key.model), Rollup(key)).merge(row)
        return [row.totals() for row in merged.values()]

    async def error_counts(self, granularity: str, since: datetime, until: datetime) -> dict[tuple[datetime, str], int]:
        counts: dict[tuple[datetime, str], int] = {}
        for row in await self.list_rollups(granularity, since, until):
            for kind, count in row.errors.items():
                counts[(row.key.bucket, kind)] = counts.get((row.key.bucket, kind), 0) + count
        return counts

    async def request_log(
        self, tenant_id: str, since: datetime, until: datetime, matching: RequestFilter, limit: int
    ) -> list[UsageEvent]:
        found = [e for e in await self.usage_between(since, until, tenant_id) if matching.matches(e)]
        return sorted(found, key=lambda e: (e.created_at, e.request_id), reverse=True)[:limit]

    async def unrolled_usage(self, limit: int, page: int) -> AsyncGenerator[list[UsageEvent], None]:
        waiting = [e for e in self._usage.values() if e.request_id not in self._rolled]
        oldest = sorted(waiting, key=lambda e: e.created_at)[:limit]
        for start in range(0, len(oldest), page):
            yield oldest[start : start + page]

    async def merge_rollups(self, rows: Sequence[tuple[str, Rollup]], rolled: Sequence[str]) -> bool:
        if any(request_id in self._rolled for request_id in rolled):
            return False
        self._rolled.update(rolled)
        for granularity, row in rows:
            table = self._rollups[granularity]
            existing = next((r for r in table if r.key == row.key), None)
            if existing is None:
                table.append(copy.deepcopy(row))
            else:
                existing.merge(row)
        return True

    async def list_rollups(
        self, granularity: str, since: datetime, until: datetime, tenant_id: str | None = None,
        percentiles: bool = True,
    ) -> list[Rollup]:  # fmt: skip
        return [
            copy.deepcopy(r)
            for r in sorted(self._rollups[granularity], key=lambda r: r.key.bucket)
            if since <= r.key.bucket < until and (tenant_id is None or r.key.tenant_id == tenant_id)
        ]

    async def add_credit_grant(self, grant: CreditGrant) -> None:
        self._grants[grant.id] = grant

    async def list_credit_grants(self, tenant_id: str) -> list[CreditGrant]:
        mine = [g for g in self._grants.values() if g.tenant_id == tenant_id]
        return sorted(mine, key=lambda g: (g.granted_at, g.id))

    async def credit_applied(self, tenant_id: str) -> dict[str, int]:
        applied: dict[str, int] = {}
        for invoice in self._invoices.values():
            if invoice.tenant_id == tenant_id:
                for grant, amount in invoice.credits:
                    applied[grant] = applied.get(grant, 0) + amount
        return applied

    async def credit_balances(self, now: datetime) -> dict[str, int]:
        balances: dict[str, int] = {}
        for grant in self._grants.values():
            if grant.expires_at is None or grant.expires_at > now:
                used = (await self.credit_applied(grant.tenant_id)).get(grant.id, 0)
                balances[grant.tenant_id] = balances.get(grant.tenant_id, 0) + grant.amount_micros - used
        return balances

    async def finalize_invoice(self, invoice: FinalInvoice) -> None:
        once = (invoice.tenant_id, invoice.month)
        if once in self._invoices:
            raise Conflict(f"the invoice for {invoice.month} is final already", code="invoice_final")
        self._invoices[once] = dataclasses.replace(invoice, credits=tuple(sorted(invoice.credits)))

    async def get_invoice(self, tenant_id: str, month: str) -> FinalInvoice | None:
        return self._invoices.get((tenant_id, month))

    async def list_invoices(self, tenant_id: str) -> list[FinalInvoice]:
        return sorted((i for i in self._invoices.values() if i.tenant_id == tenant_id), key=lambda i: i.month)

    async def add_credit_note(self, note: CreditNote) -> None:
        self._notes.append(note)

    async def list_credit_notes(self, invoice_id: str) -> list[CreditNote]:
        return sorted((n for n in self._notes if n.invoice_id == invoice_id), key=lambda n: (n.created_at, n.id))

    async def set_webhook(self, webhook: Webhook | None, tenant_id: str) -> None:
        self._webhooks.pop(tenant_id, None)
        if webhook is not None:
            self._webhooks[tenant_id] = webhook

    async def get_webhook(self, tenant_id: str) -> Webhook | None:
        return self._webhooks.get(tenant_id)

    async def undelivered_notifications(self, limit: int, max_attempts: int) -> list[Notification]:
        waiting = [
            n
            for n in self._notifications.values()
            if n.tenant_id in self._webhooks
            and self._delivery.get(n.id, (None, 0))[0] is None
            and self._delivery.get(n.id, (None, 0))[1] < max_attempts
        ]
        return sorted(waiting, key=lambda n: n.created_at)[:limit]

    async def mark_notification(self, notification_id: str, delivered_at: datetime | None) -> None:
        done, attempts = self._delivery.get(notification_id, (None, 0))
        self._delivery[notification_id] = (delivered_at, attempts) if delivered_at else (done, attempts + 1)

    async def unexported_usage(self, limit: int) -> list[UsageEvent]:
        waiting = [e for e in self._usage.values() if e.request_id not in self._exported]
        return sorted(waiting, key=lambda e: e.created_at)[:limit]

    async def mark_exported(self, request_ids: Sequence[str], at: datetime) -> None:
        self._exported.update(request_ids)

    async def set_retention(self, tenant_id: str, days: int | None) -> None:
        self._retention[tenant_id] = days

    async def retention_days(self) -> dict[str, int | None]:
        return {tenant_id: self._retention.get(tenant_id) for tenant_id in self._tenants}

    async def purge_usage(self, now: datetime, default_days: int) -> int:
        before = {t: now - timedelta(days=days or default_days) for t, days in (await self.retention_days()).items()}

        def expired(tenant_id: str, created_at: datetime) -> bool:
            return tenant_id in before and created_at < before[tenant_id]

        doomed = [r for r, e in self._usage.items() if expired(e.tenant_id, e.created_at)]
        for request_id in doomed:
            del self._usage[request_id]
        for request_id in [r for r, c in self._contents.items() if expired(c.tenant_id, c.created_at)]:
            del self._contents[request_id]
        return len(doomed)
