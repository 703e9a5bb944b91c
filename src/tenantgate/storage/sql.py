"""SQLAlchemy Core store for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tenantgate.domain import (
    ApiKey,
    KeyChanges,
    Limits,
    Notification,
    Role,
    Tenant,
    TenantMode,
    TenantStatus,
    User,
)
from tenantgate.errors import Conflict
from tenantgate.storage.sql_access import SqlAccess
from tenantgate.storage.sql_billing import SqlBilling
from tenantgate.storage.sql_scope import ALL, APP_ROLE
from tenantgate.storage.sql_status import SqlStatus
from tenantgate.storage.sql_usage import SqlUsage, aware
from tenantgate.storage.tables import (
    TENANT_OWNED,
    api_keys,
    credentials,
    management_tokens,
    notifications,
    tenants,
    tombstone,
    users,
)


def _tuple(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


def _tenant(row: Any) -> Tenant:
    return Tenant(
        id=row.id,
        slug=row.slug,
        name=row.name,
        mode=TenantMode(row.mode),
        plan=row.plan,
        region=row.region,
        status=TenantStatus(row.status),
        allowed_models=_tuple(row.allowed_models),
        created_at=aware(row.created_at) or row.created_at,
        updated_at=aware(row.updated_at) or row.updated_at,
        limits=limits_from_json(row.limits),
        log_content=bool(row.log_content),
        pins=_tuple(row.pins),
        response_cache_ttl_s=row.response_cache_ttl_s,
    )


def _key(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        secret_hash=row.secret_hash,
        user_id=row.user_id,
        models=_tuple(row.models),
        expires_at=aware(row.expires_at),
        revoked_at=aware(row.revoked_at),
        last_used_at=aware(row.last_used_at),
        created_at=aware(row.created_at) or row.created_at,
        updated_at=aware(row.updated_at) or row.updated_at,
        limits=limits_from_json(row.limits),
        previous_secret_hash=row.previous_secret_hash,
        previous_valid_until=aware(row.previous_valid_until),
        allowed_ips=_tuple(row.allowed_ips),
    )


def _user(row: Any) -> User:
    return User(
        id=row.id,
        tenant_id=row.tenant_id,
        email=row.email,
        name=row.name,
        role=Role(row.role),
        created_at=aware(row.created_at) or row.created_at,
        limits=limits_from_json(row.limits),
        updated_at=aware(row.updated_at),
        deactivated_at=aware(row.deactivated_at),
    )


def limits_from_json(raw: Any) -> Limits:
    return Limits(**raw) if isinstance(raw, dict) else Limits()


def limits_to_json(limits: Limits) -> dict[str, int] | None:
    values = {k: v for k, v in dataclasses.asdict(limits).items() if v is not None}
    return values or None


def _tenant_values(t: Tenant) -> dict[str, Any]:
    return {
        "id": t.id,
        "slug": t.slug,
        "name": t.name,
        "mode": t.mode.value,
        "plan": t.plan,
        "region": t.region,
        "status": t.status.value,
        "allowed_models": None if t.allowed_models is None else list(t.allowed_models),
        "created_at": t.created_at,
        "updated_at": t.updated_at,
        "limits": limits_to_json(t.limits),
        "log_content": t.log_content,
        "pins": None if t.pins is None else list(t.pins),
        "response_cache_ttl_s": t.response_cache_ttl_s,
    }


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers run beside the usage writer; NORMAL sync is durable across process crashes.
    The busy timeout comes first, and WAL is asked for only if the file is not in it yet (it stays so):
    switching needs the file to itself, and workers starting together would find it locked."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() != "wal":
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _act_as_app_role(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"SET ROLE {APP_ROLE}")
    cursor.close()


class SqlStore(SqlUsage, SqlBilling, SqlAccess, SqlStatus):
    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)

    @classmethod
    def from_url(cls, url: str, row_security: bool = False) -> SqlStore:
        """With `row_security`, PostgreSQL connections act as the role `tenantgate_app`, which
        row-level security binds (migration 0015); the owner and superusers are not bound by it."""
        # A server's connections can drop while pooled; a file's cannot, and the ping would cost each
        # transaction on SQLite three more calls to its driver's thread.
        engine = create_async_engine(url, pool_pre_ping=sa.make_url(url).get_backend_name() != "sqlite")
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        elif row_security:
            sa.event.listen(engine.sync_engine, "connect", _act_as_app_role)
        return cls(engine)

    async def create_tenant(self, tenant: Tenant) -> None:
        try:
            async with self._begin(ALL) as conn:
                await conn.execute(tenants.insert().values(**_tenant_values(tenant)))
        except IntegrityError as exc:
            raise Conflict(f"tenant {tenant.slug!r} already exists", code="tenant_exists") from exc

    async def update_tenant(self, tenant: Tenant) -> None:
        async with self._begin(ALL) as conn:
            await conn.execute(tenants.update().where(tenants.c.id == tenant.id).values(**_tenant_values(tenant)))

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        return await self._one_tenant(tenants.c.id == tenant_id)

    async def get_tenant_by_slug(self, slug: str) -> Tenant | None:
        return await self._one_tenant(tenants.c.slug == slug)

    async def _one_tenant(self, where: sa.ColumnElement[bool]) -> Tenant | None:
        async with self._connect(ALL) as conn:
            row = (await conn.execute(tenants.select().where(where))).first()
        return None if row is None else _tenant(row)

    async def list_tenants(self) -> list[Tenant]:
        async with self._connect(ALL) as conn:
            live = tenants.c.status != TenantStatus.DELETED.value
            rows = (await conn.execute(tenants.select().where(live).order_by(tenants.c.slug))).all()
        return [_tenant(r) for r in rows]

    async def delete_tenant(self, tenant_id: str, at: datetime) -> dict[str, int] | None:
        async with self._begin(tenant_id) as conn:
            found = (await conn.execute(tenants.select().where(tenants.c.id == tenant_id))).first()
            if found is None or found.status == TenantStatus.DELETED.value:
                return None
            people = sa.select(users.c.id).where(users.c.tenant_id == tenant_id)
            await conn.execute(credentials.delete().where(credentials.c.subject_id.in_(people)))
            deleted = {}
            for table in TENANT_OWNED:
                deleted[table.name] = (
                    await conn.execute(table.delete().where(table.c.tenant_id == tenant_id))
                ).rowcount
            await conn.execute(tenants.update().where(tenants.c.id == tenant_id).values(**tombstone(tenant_id, at)))
        return deleted

    async def create_user(self, user: User) -> None:
        values = {
            "id": user.id,
            "tenant_id": user.tenant_id,
            "email": user.email,
            "name": user.name,
            "role": user.role.value,
            "created_at": user.created_at,
            "limits": limits_to_json(user.limits),
            "updated_at": user.updated_at,
            "deactivated_at": user.deactivated_at,
        }
        try:
            async with self._begin(ALL) as conn:
                await conn.execute(users.insert().values(**values))
        except IntegrityError as exc:
            raise Conflict(f"user {user.email!r} already exists in this tenant", code="user_exists") from exc

    async def list_users(self, tenant_id: str) -> list[User]:
        query = users.select().where(users.c.tenant_id == tenant_id).order_by(users.c.email)
        async with self._connect(tenant_id) as conn:
            rows = (await conn.execute(query)).all()
        return [_user(r) for r in rows]

    async def get_user(self, user_id: str) -> User | None:
        async with self._connect(ALL) as conn:
            row = (await conn.execute(users.select().where(users.c.id == user_id))).first()
        return None if row is None else _user(row)

    async def delete_user(self, tenant_id: str, user_id: str, at: datetime) -> list[ApiKey] | None:
        c = api_keys.c
        async with self._begin(tenant_id) as conn:
            mine = (users.c.id == user_id) & (users.c.tenant_id == tenant_id)
            if (await conn.execute(users.select().where(mine))).first() is None:
                return None
            ids = list((await conn.execute(sa.select(c.id).where(c.user_id == user_id))).scalars())
            if ids:
                revoked_at = sa.func.coalesce(c.revoked_at, at)
                await conn.execute(
                    api_keys.update().where(c.id.in_(ids)).values(revoked_at=revoked_at, user_id=None, updated_at=at)
                )
            await conn.execute(management_tokens.delete().where(management_tokens.c.user_id == user_id))
            await conn.execute(credentials.delete().where(credentials.c.subject_id == user_id))
            await conn.execute(users.delete().where(mine))
            rows = (await conn.execute(api_keys.select().where(c.id.in_(ids)))).all() if ids else []
        return [_key(r) for r in rows]

    async def update_user(self, user: User) -> None:
        values = {"name": user.name, "role": user.role.value, "limits": limits_to_json(user.limits),
                  "deactivated_at": user.deactivated_at}  # fmt: skip
        async with self._begin(ALL) as conn:
            await conn.execute(users.update().where(users.c.id == user.id).values(**values, updated_at=user.updated_at))

    async def create_key(self, key: ApiKey) -> None:
        values = {
            "id": key.id,
            "tenant_id": key.tenant_id,
            "name": key.name,
            "secret_hash": key.secret_hash,
            "user_id": key.user_id,
            "models": None if key.models is None else list(key.models),
            "expires_at": key.expires_at,
            "revoked_at": key.revoked_at,
            "last_used_at": key.last_used_at,
            "created_at": key.created_at,
            "updated_at": key.updated_at,
            "limits": limits_to_json(key.limits),
            "previous_secret_hash": key.previous_secret_hash,
            "previous_valid_until": key.previous_valid_until,
            "allowed_ips": None if key.allowed_ips is None else list(key.allowed_ips),
        }
        async with self._begin(ALL) as conn:
            await conn.execute(api_keys.insert().values(**values))

    async def get_key(self, key_id: str) -> ApiKey | None:
        async with self._connect(ALL) as conn:
            row = (await conn.execute(api_keys.select().where(api_keys.c.id == key_id))).first()
        return None if row is None else _key(row)

    async def key_ids(self) -> list[str]:
        async with self._connect(ALL) as conn:
            return list((await conn.execute(sa.select(api_keys.c.id))).scalars())

    async def list_keys(self, tenant_id: str) -> list[ApiKey]:
        query = api_keys.select().where(api_keys.c.tenant_id == tenant_id).order_by(api_keys.c.created_at)
        async with self._connect(tenant_id) as conn:
            rows = (await conn.execute(query)).all()
        return [_key(r) for r in rows]

    async def revoke_key(self, tenant_id: str, key_id: str, at: datetime) -> ApiKey | None:
        scope = (api_keys.c.id == key_id) & (api_keys.c.tenant_id == tenant_id)
        async with self._begin(tenant_id) as conn:
            await conn.execute(
                api_keys.update().where(scope & api_keys.c.revoked_at.is_(None)).values(revoked_at=at, updated_at=at)
            )
            row = (await conn.execute(api_keys.select().where(scope))).first()
        return None if row is None else _key(row)

    async def rotate_key(
        self, tenant_id: str, key_id: str, secret_hash: str, previous_valid_until: datetime, at: datetime
    ) -> ApiKey | None:
        scope = (api_keys.c.id == key_id) & (api_keys.c.tenant_id == tenant_id)
        c = api_keys.c
        async with self._begin(tenant_id) as conn:
            await conn.execute(
                api_keys.update().where(scope & c.revoked_at.is_(None)).values(
                    previous_secret_hash=c.secret_hash, secret_hash=secret_hash,
                    previous_valid_until=previous_valid_until, updated_at=at,
                )
            )  # fmt: skip
            row = (await conn.execute(api_keys.select().where(scope))).first()
        return None if row is None else _key(row)

    async def touch_keys(self, last_used: Mapping[str, datetime]) -> None:
        if not last_used:
            return
        async with self._begin(ALL) as conn:
            for key_id, at in last_used.items():
                await conn.execute(
                    api_keys.update()
                    .where(api_keys.c.id == key_id)
                    .where(sa.or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < at))
                    .values(last_used_at=at)
                )

    async def changes_since(self, since: datetime) -> KeyChanges:
        async with self._connect(ALL) as conn:
            keys = (await conn.execute(api_keys.select().where(api_keys.c.updated_at >= since))).all()
            ts = (await conn.execute(tenants.select().where(tenants.c.updated_at >= since))).all()
            us = (await conn.execute(users.select().where(users.c.updated_at >= since))).all()
        return KeyChanges(
            keys=tuple(_key(r) for r in keys), tenants=tuple(_tenant(r) for r in ts), users=tuple(_user(r) for r in us)
        )

    async def add_notification(self, notification: Notification) -> bool:
        values = dataclasses.asdict(notification)
        try:
            async with self._begin(ALL) as conn:
                await conn.execute(notifications.insert().values(**values))
        except IntegrityError:
            return False
        return True

    async def list_notifications(self, tenant_id: str) -> list[Notification]:
        query = (
            notifications.select().where(notifications.c.tenant_id == tenant_id).order_by(notifications.c.created_at)
        )
        async with self._connect(tenant_id) as conn:
            rows = (await conn.execute(query)).all()
        return [
            Notification(r.id, r.tenant_id, r.kind, r.period, r.message, aware(r.created_at) or r.created_at)
            for r in rows
        ]

    async def ping(self) -> None:
        async with self._connect(ALL) as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def close(self) -> None:
        await self._engine.dispose()
