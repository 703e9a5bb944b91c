"""Store interfaces. Every method that touches tenant data takes the tenant id explicitly."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from tenantgate.domain import (
    ApiKey,
    DeadLetter,
    KeyChanges,
    Notification,
    Price,
    Tenant,
    UsageEvent,
    UsageTotals,
    User,
)


class TenancyStore(Protocol):
    async def create_tenant(self, tenant: Tenant) -> None:
        """Insert; raises `tenantgate.errors.Conflict` when the slug is taken."""

    async def update_tenant(self, tenant: Tenant) -> None: ...

    async def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    async def get_tenant_by_slug(self, slug: str) -> Tenant | None: ...

    async def list_tenants(self) -> list[Tenant]: ...

    async def create_user(self, user: User) -> None:
        """Insert; raises Conflict when the email exists in that tenant."""

    async def list_users(self, tenant_id: str) -> list[User]: ...

    async def get_user(self, user_id: str) -> User | None: ...

    async def update_user(self, user: User) -> None: ...

    async def create_key(self, key: ApiKey) -> None: ...

    async def get_key(self, key_id: str) -> ApiKey | None:
        """Look a key up by its public id (the only lookup not scoped by tenant: the id names the tenant)."""

    async def list_keys(self, tenant_id: str) -> list[ApiKey]: ...

    async def revoke_key(self, tenant_id: str, key_id: str, at: datetime) -> ApiKey | None: ...

    async def touch_keys(self, last_used: Mapping[str, datetime]) -> None: ...

    async def changes_since(self, since: datetime) -> KeyChanges: ...


class NotificationStore(Protocol):
    async def add_notification(self, notification: Notification) -> bool:
        """Store it unless one of the same tenant, kind and period exists; True when stored."""

    async def list_notifications(self, tenant_id: str) -> list[Notification]: ...


class UsageStore(Protocol):
    async def insert_usage(self, events: Sequence[UsageEvent]) -> None:
        """Idempotent by request id: a batch written twice counts once."""

    async def usage_totals(self, tenant_id: str, since: datetime, until: datetime) -> list[UsageTotals]: ...

    async def insert_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Keep events the database refused, with the reason; idempotent by request id."""

    async def list_dead_letters(self, limit: int) -> list[DeadLetter]:
        """The newest first."""

    async def period_usage(self, scope: str, scope_id: str, since: datetime) -> tuple[int, int]:
        """(tokens, cost in micros) recorded since `since` for a 'tenant', 'key' or 'user' id."""


class PriceStore(Protocol):
    async def add_price(self, price: Price) -> None:
        """Insert; raises Conflict when the model has a price from the same moment."""

    async def list_prices(self) -> list[Price]:
        """Every version, by model then effective date."""


class Store(TenancyStore, UsageStore, NotificationStore, PriceStore, Protocol):
    async def ping(self) -> None:
        """Raise if the store cannot be reached."""

    async def close(self) -> None: ...


def totals_by_model(events: Iterable[UsageEvent]) -> list[UsageTotals]:
    """Sum events per model, sorted by model name."""
    sums: dict[str, list[int]] = {}
    for event in events:
        row = sums.setdefault(event.model, [0, 0, 0, 0])
        row[0] += 1
        row[1] += event.usage.prompt_tokens
        row[2] += event.usage.completion_tokens
        row[3] += event.status >= 400
    return [UsageTotals(m, r[0], r[1], r[2], r[3]) for m, r in sorted(sums.items())]
