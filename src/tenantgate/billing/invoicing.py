"""The billing service: invoices (draft while the month runs, final and immutable after), credit
notes, prepaid credit grants. The management API and the CLI call it; it owns these writes and
puts each in the audit log."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime

from tenantgate.access.audit import AuditLog
from tenantgate.access.callers import Caller
from tenantgate.billing.invoices import compose, invoice_id, parse_month
from tenantgate.billing.records import CreditGrant, CreditNote, FinalInvoice, Webhook
from tenantgate.billing.rollups import RollupJob
from tenantgate.clock import utcnow
from tenantgate.domain import Tenant
from tenantgate.errors import Conflict, InvalidRequest
from tenantgate.notifications import Notifier
from tenantgate.settings import PlanConfig
from tenantgate.storage.base import Store
from tenantgate.tenancy import find_tenant

MAX_MONEY_MICROS = 10**15  # a billion in the installation's currency: far beyond any real grant or note


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def check_money(micros: int, what: str) -> int:
    if not 0 < micros <= MAX_MONEY_MICROS:
        raise InvalidRequest(f"{what} must be more than 0 and at most 1,000,000,000.", param=what)
    return micros


class Billing:
    def __init__(
        self, store: Store, plans: Callable[[str], PlanConfig | None], rollups: RollupJob, *, currency: str,
        audit: AuditLog, clock: Callable[[], datetime] = utcnow,
        credit_changed: Callable[[], Awaitable[None]] | None = None, notifier: Notifier | None = None,
        thresholds: tuple[int, ...] = (50, 80, 100),
    ) -> None:  # fmt: skip
        self._store = store
        self._audit = audit
        self._plans = plans
        self._rollups = rollups
        self._currency = currency
        self._clock = clock
        self._credit_changed = credit_changed
        self._notifier = notifier
        self._thresholds = thresholds

    async def _credits_moved(self) -> None:
        if self._credit_changed is not None:
            await self._credit_changed()

    async def tenant(self, slug: str) -> Tenant:
        return await find_tenant(self._store, slug)

    def _plan(self, tenant: Tenant) -> PlanConfig:
        plan = self._plans(tenant.plan)
        if plan is None:
            raise Conflict(f"Tenant '{tenant.slug}' is on plan '{tenant.plan}', which is not configured.")
        return plan

    async def invoice(self, slug: str, month: str) -> dict[str, object]:
        """The final invoice with its credit notes, or the draft while the month is open."""
        tenant = await self.tenant(slug)
        _, end = parse_month(month)
        final = await self._store.get_invoice(tenant.id, month)
        if final is not None:
            return await self._with_notes(final)
        document, _ = await self._draft(tenant, month)
        document["open"] = self._clock() < end
        return document

    async def _draft(self, tenant: Tenant, month: str) -> tuple[dict[str, object], list[tuple[str, int]]]:
        start, end = parse_month(month)
        rows = await self._store.list_rollups("day", start, end, tenant.id)
        grants = await self._store.list_credit_grants(tenant.id)
        applied = await self._store.credit_applied(tenant.id)
        return compose(tenant.id, tenant.slug, month, self._plan(tenant), rows, grants, applied, self._currency)

    async def _with_notes(self, final: FinalInvoice) -> dict[str, object]:
        notes = await self._store.list_credit_notes(final.id)
        credited = sum(n.amount_micros for n in notes)
        return {
            **final.document,
            "credit_notes": [
                {
                    "id": n.id,
                    "amount_micros": n.amount_micros,
                    "reason": n.reason,
                    "created_at": n.created_at.isoformat(),
                }
                for n in notes
            ],
            "balance_micros": final.total_micros - credited,
        }

    async def invoices(self, slug: str) -> list[dict[str, object]]:
        tenant = await self.tenant(slug)
        return [await self._with_notes(i) for i in await self._store.list_invoices(tenant.id)]

    async def finalize(self, by: Caller, slug: str, month: str) -> dict[str, object]:
        """Fix a month that has ended: pending events are rolled up first, then nothing changes it."""
        tenant = await self.tenant(slug)
        _, end = parse_month(month)
        if self._clock() < end:
            raise Conflict(f"{month} has not ended yet; its invoice stays a draft until {end.isoformat()}.",
                           code="month_open")  # fmt: skip
        if await self._store.get_invoice(tenant.id, month) is not None:
            raise Conflict(f"The invoice of {month} is final already; correct it with a credit note.",
                           code="invoice_final")  # fmt: skip
        await self._rollups.roll_pending()  # what was written up to now, late events included
        applied_before = await self._store.credit_applied(tenant.id)
        document, applications = await self._draft(tenant, month)
        now = self._clock()
        document |= {"status": "final", "finalized_at": now.isoformat()}
        final = FinalInvoice(
            invoice_id(tenant.id, month), tenant.id, month, int(str(document["total_micros"])), document, now,
            tuple(applications),
        )  # fmt: skip
        await self._store.finalize_invoice(final)
        await self._audit.record(by, "invoice.finalize", f"invoice {slug} {month}", tenant_id=tenant.id,
                                 after={"id": final.id, "total_micros": final.total_micros})  # fmt: skip
        await self._credits_moved()
        await self._credit_alerts(tenant, applied_before, applications)
        return await self._with_notes(final)

    async def _credit_alerts(self, tenant: Tenant, before: dict[str, int], taken: list[tuple[str, int]]) -> None:
        """Tell the tenant once when a grant's use crosses a threshold."""
        if self._notifier is None or not taken:
            return
        grants = {g.id: g for g in await self._store.list_credit_grants(tenant.id)}
        for grant_id, amount in taken:
            grant, was = grants[grant_id], before.get(grant_id, 0)
            for percent in self._thresholds:
                if was < grant.amount_micros * percent / 100 <= was + amount:
                    label = grant.note or grant.id
                    message = f"{percent} % of prepaid credit '{label}' ({grant.amount_micros / 1e6:.2f}) is used."
                    self._notifier.notify(tenant.id, f"credit_{percent}", grant.id, message)

    async def credit_note(self, by: Caller, slug: str, month: str, amount_micros: int, reason: str) -> CreditNote:
        tenant = await self.tenant(slug)
        parse_month(month)
        final = await self._store.get_invoice(tenant.id, month)
        if final is None:
            raise Conflict(f"The invoice of {month} is not final; a draft needs no credit note.",
                           code="invoice_not_final")  # fmt: skip
        notes = await self._store.list_credit_notes(final.id)
        if sum(n.amount_micros for n in notes) + check_money(amount_micros, "amount") > final.total_micros:
            raise Conflict("Credit notes may not add up to more than the invoice's total.", code="credit_exceeds")
        note = CreditNote(secrets.token_hex(8), final.id, tenant.id, amount_micros, reason, self._clock())
        await self._store.add_credit_note(note)
        await self._audit.record(by, "invoice.credit_note", f"invoice {slug} {month}", tenant_id=tenant.id, after=note)
        return note

    async def grant(
        self, by: Caller, slug: str, amount_micros: int, expires_at: datetime | None, note: str
    ) -> CreditGrant:
        tenant = await self.tenant(slug)
        now = self._clock()
        if expires_at is not None and expires_at <= now:
            raise InvalidRequest("expires_at is in the past.", param="expires_at")
        grant = CreditGrant(
            secrets.token_hex(8), tenant.id, check_money(amount_micros, "amount"), now, expires_at, note
        )
        await self._store.add_credit_grant(grant)
        await self._audit.record(by, "credit.grant", f"credit of {slug}", tenant_id=tenant.id, after=grant)
        await self._credits_moved()
        return grant

    async def set_webhook(self, by: Caller, slug: str, url: str, secret: str) -> None:
        """Where the tenant's alerts go, signed with `secret`."""
        tenant = await self.tenant(slug)
        await self._store.set_webhook(Webhook(tenant.id, url, secret, self._clock()), tenant.id)
        await self._audit.record(by, "webhook.set", f"webhook of {slug}", tenant_id=tenant.id, after={"url": url})

    async def delete_webhook(self, by: Caller, slug: str) -> None:
        tenant = await self.tenant(slug)
        await self._store.set_webhook(None, tenant.id)
        await self._audit.record(by, "webhook.delete", f"webhook of {slug}", tenant_id=tenant.id)

    async def set_retention(self, by: Caller, slug: str, days: int | None) -> None:
        """Days of raw usage events kept for the tenant (None: the installation's default)."""
        tenant = await self.tenant(slug)
        await self._store.set_retention(tenant.id, days)
        await self._audit.record(by, "retention.set", f"retention of {slug}", tenant_id=tenant.id, after={"days": days})

    async def credits(self, slug: str) -> list[dict[str, object]]:
        """Each grant with what is left of it."""
        tenant = await self.tenant(slug)
        applied = await self._store.credit_applied(tenant.id)
        now = self._clock()
        return [
            {"id": g.id, "amount_micros": g.amount_micros, "remaining_micros": g.amount_micros - applied.get(g.id, 0),
             "granted_at": _iso(g.granted_at), "expires_at": None if g.expires_at is None else _iso(g.expires_at),
             "expired": g.expires_at is not None and g.expires_at <= now, "note": g.note}
            for g in await self._store.list_credit_grants(tenant.id)
        ]  # fmt: skip
