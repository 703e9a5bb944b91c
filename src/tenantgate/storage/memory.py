"""In-memory store: the reference implementation the SQL store is tested against."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from tenantgate.domain import (
    ApiKey,
    DeadLetter,
    KeyChanges,
    Limits,
    Notification,
    Price,
    RequestContent,
    Tenant,
    TenantStatus,
    UsageEvent,
    User,
)
from tenantgate.errors import Conflict
from tenantgate.storage.memory_access import MemoryAccess
from tenantgate.storage.memory_billing import MemoryBilling
from tenantgate.storage.memory_status import MemoryStatus


def _drop(table: dict[Any, Any], doomed: Callable[[Any], bool]) -> int:
    """Remove the values `doomed` picks; how many went."""
    gone = [k for k, v in table.items() if doomed(v)]
    for k in gone:
        del table[k]
    return len(gone)


_OWNER = {"tenant": "tenant_id", "key": "key_id", "user": "user_id"}  # the event field naming each scope


class MemoryStore(MemoryBilling, MemoryAccess, MemoryStatus):
    def __init__(self) -> None:
        self._tenants: dict[str, Tenant] = {}
        self._users: dict[str, User] = {}
        self._keys: dict[str, ApiKey] = {}
        self._usage: dict[str, UsageEvent] = {}
        self._contents: dict[str, RequestContent] = {}
        self._notifications: dict[tuple[str, str, str], Notification] = {}
        self._dead_letters: dict[str, DeadLetter] = {}
        self._prices: dict[tuple[str, datetime], Price] = {}
        self._init_billing()
        self._init_access()
        self._init_status()

    async def create_tenant(self, tenant: Tenant) -> None:
        if any(t.slug == tenant.slug for t in self._tenants.values()):
            raise Conflict(f"tenant {tenant.slug!r} already exists", code="tenant_exists")
        self._tenants[tenant.id] = tenant

    async def update_tenant(self, tenant: Tenant) -> None:
        self._tenants[tenant.id] = tenant

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        return self._tenants.get(tenant_id)

    async def get_tenant_by_slug(self, slug: str) -> Tenant | None:
        return next((t for t in self._tenants.values() if t.slug == slug), None)

    async def list_tenants(self) -> list[Tenant]:
        live = (t for t in self._tenants.values() if t.status is not TenantStatus.DELETED)
        return sorted(live, key=lambda t: t.slug)

    async def delete_tenant(self, tenant_id: str, at: datetime) -> dict[str, int] | None:
        tenant = self._tenants.get(tenant_id)
        if tenant is None or tenant.status is TenantStatus.DELETED:
            return None
        people = {u.id for u in self._users.values() if u.tenant_id == tenant_id}
        for subject in people:
            self._credentials.pop(subject, None)
        deleted = {
            "usage_events": _drop(self._usage, lambda e: e.tenant_id == tenant_id),
            "request_contents": _drop(self._contents, lambda c: c.tenant_id == tenant_id),
            "notifications": _drop(self._notifications, lambda n: n.tenant_id == tenant_id),
            "management_tokens": _drop(self._tokens, lambda t: t.tenant_id == tenant_id),
            "api_keys": _drop(self._keys, lambda k: k.tenant_id == tenant_id),
            "users": _drop(self._users, lambda u: u.tenant_id == tenant_id),
            **self._delete_billing(tenant_id),
        }
        self._sso.pop(tenant_id, None)
        self._proxy_keys.pop(tenant_id, None)
        held = [k for k in self._upstream_keys if k[0] == tenant_id]
        for own in held:
            del self._upstream_keys[own]
        deleted["tenant_upstream_keys"] = len(held)
        versions = [k for k in self._templates if k[0] == tenant_id]
        for version in versions:
            del self._templates[version]
        deleted["prompt_templates"] = len(versions)
        self._tenants[tenant_id] = dataclasses.replace(
            tenant, slug=f"deleted-{tenant_id}", name="(deleted)", status=TenantStatus.DELETED, allowed_models=None,
            limits=Limits(), region=None, updated_at=at, log_content=False, pins=None, response_cache_ttl_s=None,
        )  # fmt: skip
        return deleted

    async def create_user(self, user: User) -> None:
        if any(u.tenant_id == user.tenant_id and u.email == user.email for u in self._users.values()):
            raise Conflict(f"user {user.email!r} already exists in this tenant", code="user_exists")
        self._users[user.id] = user

    async def list_users(self, tenant_id: str) -> list[User]:
        return sorted((u for u in self._users.values() if u.tenant_id == tenant_id), key=lambda u: u.email)

    async def get_user(self, user_id: str) -> User | None:
        return self._users.get(user_id)

    async def delete_user(self, tenant_id: str, user_id: str, at: datetime) -> list[ApiKey] | None:
        user = self._users.get(user_id)
        if user is None or user.tenant_id != tenant_id:
            return None
        del self._users[user_id]
        self._tokens = {i: t for i, t in self._tokens.items() if t.user_id != user_id}
        self._credentials.pop(user_id, None)
        unbound = []
        for key in [k for k in self._keys.values() if k.user_id == user_id]:
            key = dataclasses.replace(key, revoked_at=key.revoked_at or at, user_id=None, updated_at=at)
            self._keys[key.id] = key
            unbound.append(key)
        return unbound

    async def update_user(self, user: User) -> None:
        self._users[user.id] = user

    async def create_key(self, key: ApiKey) -> None:
        self._keys[key.id] = key

    async def get_key(self, key_id: str) -> ApiKey | None:
        return self._keys.get(key_id)

    async def key_ids(self) -> list[str]:
        return list(self._keys)

    async def list_keys(self, tenant_id: str) -> list[ApiKey]:
        return sorted((k for k in self._keys.values() if k.tenant_id == tenant_id), key=lambda k: k.created_at)

    async def revoke_key(self, tenant_id: str, key_id: str, at: datetime) -> ApiKey | None:
        key = self._keys.get(key_id)
        if key is None or key.tenant_id != tenant_id:
            return None
        if key.revoked_at is None:
            key = dataclasses.replace(key, revoked_at=at, updated_at=at)
            self._keys[key_id] = key
        return key

    async def rotate_key(
        self, tenant_id: str, key_id: str, secret_hash: str, previous_valid_until: datetime, at: datetime
    ) -> ApiKey | None:
        key = self._keys.get(key_id)
        if key is None or key.tenant_id != tenant_id:
            return None
        if key.revoked_at is None:
            key = dataclasses.replace(
                key, previous_secret_hash=key.secret_hash, secret_hash=secret_hash,
                previous_valid_until=previous_valid_until, updated_at=at,
            )  # fmt: skip
            self._keys[key_id] = key
        return key

    async def touch_keys(self, last_used: Mapping[str, datetime]) -> None:
        for key_id, at in last_used.items():
            key = self._keys.get(key_id)
            if key is not None and (key.last_used_at is None or key.last_used_at < at):
                self._keys[key_id] = dataclasses.replace(key, last_used_at=at)

    async def changes_since(self, since: datetime) -> KeyChanges:
        return KeyChanges(
            keys=tuple(k for k in self._keys.values() if k.updated_at >= since),
            tenants=tuple(t for t in self._tenants.values() if t.updated_at >= since),
            users=tuple(u for u in self._users.values() if u.updated_at is not None and u.updated_at >= since),
        )

    async def insert_usage(self, events: Sequence[UsageEvent]) -> None:
        for event in events:
            self._usage.setdefault(event.request_id, event)

    async def insert_contents(self, contents: Sequence[RequestContent]) -> None:
        for content in contents:
            self._contents.setdefault(content.request_id, content)

    async def request_content(self, tenant_id: str, request_id: str) -> RequestContent | None:
        content = self._contents.get(request_id)
        return content if content is not None and content.tenant_id == tenant_id else None

    async def insert_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            self._dead_letters.setdefault(letter.request_id, letter)

    async def list_dead_letters(self, limit: int) -> list[DeadLetter]:
        return sorted(self._dead_letters.values(), key=lambda d: d.created_at, reverse=True)[:limit]

    async def period_usage(self, scope: str, scope_id: str, since: datetime) -> tuple[int, int]:
        owner = _OWNER[scope]
        tokens = cost = 0
        for event in self._usage.values():
            if getattr(event, owner) == scope_id and event.created_at >= since:
                tokens += event.usage.total_tokens
                cost += event.cost_micros
        return tokens, cost

    async def period_gpu_seconds(self, scope: str, scope_id: str, since: datetime) -> float:
        owner = _OWNER[scope]
        return sum(
            e.gpu_seconds for e in self._usage.values() if getattr(e, owner) == scope_id and e.created_at >= since
        )

    async def add_price(self, price: Price) -> None:
        once = (price.model, price.effective_from)
        if once in self._prices:
            when = price.effective_from.isoformat()
            raise Conflict(f"model {price.model!r} already has a price from {when}", code="price_exists")
        self._prices[once] = price

    async def list_prices(self) -> list[Price]:
        return [self._prices[k] for k in sorted(self._prices)]

    async def add_notification(self, notification: Notification) -> bool:
        once = (notification.tenant_id, notification.kind, notification.period)
        if once in self._notifications:
            return False
        self._notifications[once] = notification
        return True

    async def list_notifications(self, tenant_id: str) -> list[Notification]:
        found = [n for n in self._notifications.values() if n.tenant_id == tenant_id]
        return sorted(found, key=lambda n: n.created_at)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
