"""Store interfaces. Every method that touches tenant data takes the tenant id explicitly."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from tenantgate.billing.records import CreditGrant, CreditNote, FinalInvoice, Rollup, UsageTotals, Webhook
from tenantgate.domain import (
    ApiKey,
    AuditEvent,
    Credential,
    DeadLetter,
    Incident,
    KeyChanges,
    ManagementToken,
    Notification,
    Operator,
    Price,
    PromptTemplate,
    RequestContent,
    RequestFilter,
    SsoConfig,
    Tenant,
    UpstreamKey,
    UsageEvent,
    User,
)


class TenancyStore(Protocol):
    async def create_tenant(self, tenant: Tenant) -> None:
        """Insert; raises `tenantgate.errors.Conflict` when the slug is taken."""

    async def update_tenant(self, tenant: Tenant) -> None: ...

    async def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    async def get_tenant_by_slug(self, slug: str) -> Tenant | None: ...

    async def list_tenants(self) -> list[Tenant]:
        """Every tenant but the deleted ones, by slug."""

    async def delete_tenant(self, tenant_id: str, at: datetime) -> dict[str, int] | None:
        """Delete everything of the tenant (users, keys, tokens, usage, rollups, invoices, credits,
        webhook, sign-on) in one transaction; how many rows went, per kind. Its row stays as a tombstone
        (status deleted, slug freed) so every instance's key cache learns of it. None when there is no
        such tenant. The audit log keeps its entries."""

    async def create_user(self, user: User) -> None:
        """Insert; raises Conflict when the email exists in that tenant."""

    async def list_users(self, tenant_id: str) -> list[User]: ...

    async def get_user(self, user_id: str) -> User | None: ...

    async def update_user(self, user: User) -> None: ...

    async def delete_user(self, tenant_id: str, user_id: str, at: datetime) -> list[ApiKey] | None:
        """Delete the tenant's user; the keys bound to it are revoked at `at` and unbound (returned).
        None when the tenant has no such user. Usage already recorded keeps the user's id."""

    async def create_key(self, key: ApiKey) -> None: ...

    async def get_key(self, key_id: str) -> ApiKey | None:
        """Look a key up by its public id (the only lookup not scoped by tenant: the id names the tenant)."""

    async def list_keys(self, tenant_id: str) -> list[ApiKey]: ...

    async def key_ids(self) -> list[str]:
        """The id of every key, revoked and expired ones included (read once at start-up)."""

    async def revoke_key(self, tenant_id: str, key_id: str, at: datetime) -> ApiKey | None: ...

    async def rotate_key(
        self, tenant_id: str, key_id: str, secret_hash: str, previous_valid_until: datetime, at: datetime
    ) -> ApiKey | None:
        """Give an unrevoked key a new secret; the old one keeps working until `previous_valid_until`."""

    async def touch_keys(self, last_used: Mapping[str, datetime]) -> None: ...

    async def changes_since(self, since: datetime) -> KeyChanges: ...


class AccessStore(Protocol):
    async def create_token(self, token: ManagementToken) -> None: ...

    async def get_token(self, token_id: str) -> ManagementToken | None: ...

    async def list_tokens(self, tenant_id: str | None, user_id: str | None = None) -> list[ManagementToken]:
        """A tenant's tokens (of one user, if given), or with `tenant_id` None the platform's."""

    async def revoke_token(self, token_id: str, at: datetime) -> ManagementToken | None: ...

    async def add_audit(self, event: AuditEvent) -> None: ...

    async def create_operator(self, operator: Operator) -> None:
        """Insert; raises Conflict when the email is taken."""

    async def get_operator(self, operator_id: str) -> Operator | None: ...

    async def get_operator_by_email(self, email: str) -> Operator | None: ...

    async def list_operators(self) -> list[Operator]: ...

    async def set_credential(self, credential: Credential) -> None:
        """Insert or replace the subject's password and attempt counters."""

    async def get_credential(self, subject_id: str) -> Credential | None: ...

    async def set_sso(self, tenant_id: str, config: SsoConfig | None) -> None:
        """Set or (None) remove the tenant's single sign-on."""

    async def get_sso(self, tenant_id: str) -> SsoConfig | None: ...

    async def set_proxy_key(self, tenant_id: str, public_jwk: dict[str, object] | None) -> None:
        """Register (or, None, remove) the public key the tenant's proxy signs end-user assertions with."""

    async def proxy_keys(self) -> dict[str, dict[str, object]]:
        """Every tenant's registered proxy key, by tenant id."""

    async def set_upstream_key(self, tenant_id: str, deployment: str, sealed_key: str | None, at: datetime) -> None:
        """Keep (or, None, remove) the tenant's own API key for a deployment, already sealed."""

    async def upstream_keys(self) -> list[UpstreamKey]:
        """Every tenant's own upstream keys, sealed."""

    async def add_template(self, template: PromptTemplate) -> None:
        """Keep a new version of a tenant's prompt template; Conflict if that version exists."""

    async def templates(self) -> list[PromptTemplate]:
        """Every tenant's prompt templates, every version, the deleted ones too."""

    async def delete_template(self, tenant_id: str, name: str, version: int, at: datetime) -> bool:
        """Mark a version deleted; False if there is no such version or it was deleted already."""

    async def list_audit(self, tenant_id: str | None, since: datetime, until: datetime, limit: int) -> list[AuditEvent]:
        """Events in [since, until), newest first, of one tenant or (None) of all."""


class NotificationStore(Protocol):
    async def add_notification(self, notification: Notification) -> bool:
        """Store it unless one of the same tenant, kind and period exists; True when stored."""

    async def list_notifications(self, tenant_id: str) -> list[Notification]: ...


class UsageStore(Protocol):
    async def insert_usage(self, events: Sequence[UsageEvent]) -> None:
        """Idempotent by request id: a batch written twice counts once. StoreUnavailable when the database
        is busy behind another writer (nothing is wrong with the events: write them again later)."""

    async def insert_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Keep events the database refused, with the reason; idempotent by request id."""

    async def list_dead_letters(self, limit: int) -> list[DeadLetter]:
        """The newest first."""

    async def period_usage(self, scope: str, scope_id: str, since: datetime) -> tuple[int, int]:
        """(tokens, cost in micros) recorded since `since` for a 'tenant', 'key' or 'user' id."""

    async def period_gpu_seconds(self, scope: str, scope_id: str, since: datetime) -> float:
        """GPU-seconds recorded since `since` for a 'tenant', 'key' or 'user' id."""

    async def insert_contents(self, contents: Sequence[RequestContent]) -> None:
        """Keep prompts and answers of tenants that opted in; idempotent by request id. They go
        with the tenant's usage events (`purge_usage`, `delete_tenant`)."""

    async def request_content(self, tenant_id: str, request_id: str) -> RequestContent | None:
        """That request's prompt and answer, if it is the tenant's and was kept."""


class PriceStore(Protocol):
    async def add_price(self, price: Price) -> None:
        """Insert; raises Conflict when the model has a price from the same moment."""

    async def list_prices(self) -> list[Price]:
        """Every version, by model then effective date."""


class BillingStore(Protocol):
    async def usage_between(self, since: datetime, until: datetime, tenant_id: str | None = None) -> list[UsageEvent]:
        """Raw events in [since, until), of one tenant or all: read by the rollup job and the CloudEvents export."""

    async def replace_rollups(self, granularity: str, since: datetime, until: datetime, rows: Sequence[Rollup]) -> None:
        """Replace every row of that granularity in [since, until) by `rows`, atomically; for hours, the
        events in the range count as rolled up."""

    def unrolled_usage(self, limit: int, page: int) -> AsyncGenerator[list[UsageEvent], None]:
        """The oldest events not yet in the rollups, at most `limit`, in pages of at most `page`: made
        into events a page at a time, so requests wait between pages rather than behind the whole round."""

    async def tenant_totals(self, granularity: str, since: datetime, until: datetime) -> list[UsageTotals]:
        """Every tenant's rollups in [since, until) summed per tenant and model by the database (no
        percentiles): what an all-tenants view needs, without reading each row's sketches."""

    async def error_counts(self, granularity: str, since: datetime, until: datetime) -> dict[tuple[datetime, str], int]:
        """Every tenant's failed requests in [since, until) by bucket and error type."""

    async def request_log(
        self, tenant_id: str, since: datetime, until: datetime, matching: RequestFilter, limit: int
    ) -> list[UsageEvent]:
        """A tenant's requests in [since, until) that match, the newest first, at most `limit`."""

    async def merge_rollups(self, rows: Sequence[tuple[str, Rollup]], rolled: Sequence[str]) -> bool:
        """Add `rows` ((granularity, row)) into the stored rollups and mark the `rolled` events, in one
        transaction; False (nothing changed) when another instance rolled some of them first."""

    async def list_rollups(
        self, granularity: str, since: datetime, until: datetime, tenant_id: str | None = None,
        percentiles: bool = True,
    ) -> list[Rollup]:  # fmt: skip
        """Rows of that granularity (hour, day, month) in [since, until), oldest first; without
        `percentiles` the latency sketches may be left empty (they are most of a row's weight)."""

    async def add_credit_grant(self, grant: CreditGrant) -> None: ...

    async def list_credit_grants(self, tenant_id: str) -> list[CreditGrant]: ...

    async def credit_applied(self, tenant_id: str) -> dict[str, int]:
        """Micros of each grant already applied to finalised invoices."""

    async def credit_balances(self, now: datetime) -> dict[str, int]:
        """Per tenant, the prepaid credit left on grants unexpired at `now`."""

    async def finalize_invoice(self, invoice: FinalInvoice) -> None:
        """Store it with its credit applications; Conflict when that tenant's month is final already."""

    async def get_invoice(self, tenant_id: str, month: str) -> FinalInvoice | None: ...

    async def list_invoices(self, tenant_id: str) -> list[FinalInvoice]: ...

    async def add_credit_note(self, note: CreditNote) -> None: ...

    async def list_credit_notes(self, invoice_id: str) -> list[CreditNote]: ...

    async def set_webhook(self, webhook: Webhook | None, tenant_id: str) -> None:
        """Set or (None) remove a tenant's webhook."""

    async def get_webhook(self, tenant_id: str) -> Webhook | None: ...

    async def undelivered_notifications(self, limit: int, max_attempts: int) -> list[Notification]:
        """The oldest notifications not yet delivered, of tenants that have a webhook."""

    async def mark_notification(self, notification_id: str, delivered_at: datetime | None) -> None:
        """Delivered (with the time) or one more failed attempt (None)."""

    async def unexported_usage(self, limit: int) -> list[UsageEvent]:
        """The oldest events not yet pushed to the export sink."""

    async def mark_exported(self, request_ids: Sequence[str], at: datetime) -> None: ...

    async def set_retention(self, tenant_id: str, days: int | None) -> None:
        """Days of raw usage events kept for the tenant; None = the installation's default."""

    async def retention_days(self) -> dict[str, int | None]:
        """Every tenant's own retention (None where it uses the default)."""

    async def purge_usage(self, now: datetime, default_days: int) -> int:
        """Delete every tenant's raw events (and kept prompts) older than its retention, its own days or
        else `default_days`; returns how many events went. A few statements, however many tenants."""


class StatusStore(Protocol):
    async def save_incident(self, incident: Incident) -> None:
        """Insert it, or replace the incident with its id."""

    async def get_incident(self, incident_id: str) -> Incident | None: ...

    async def list_incidents(self, limit: int, resolved_since: datetime | None = None) -> list[Incident]:
        """The newest first; with `resolved_since`, only open ones and those resolved since then."""


class Store(StatusStore, TenancyStore, AccessStore, UsageStore, NotificationStore, PriceStore, BillingStore, Protocol):
    async def ping(self) -> None:
        """Raise if the store cannot be reached."""

    async def close(self) -> None: ...
