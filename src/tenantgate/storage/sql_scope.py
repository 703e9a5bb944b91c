"""Transactions that say whose rows they may touch. On PostgreSQL, row-level security (migration
0015) shows a transaction only the rows of the tenant it names, or every tenant's when it names
`ALL`; one that names nothing sees nothing. Store methods that take a `tenant_id` name it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

APP_ROLE = "tenantgate_app"  # the role row-level security binds; the gateway acts as it on PostgreSQL
ALL = "*"  # work across tenants: platform reports, the usage writer, key lookups by id
_SCOPE = sa.text("SELECT set_config('tenantgate.scope', :scope, true)")


class Scoped:
    _engine: AsyncEngine

    @asynccontextmanager
    async def _begin(self, tenant_id: str | None) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits, limited to `tenant_id`'s rows (None: every tenant's)."""
        async with self._engine.begin() as conn:
            await self._scope(conn, tenant_id)
            yield conn

    @asynccontextmanager
    async def _connect(self, tenant_id: str | None) -> AsyncIterator[AsyncConnection]:
        """A connection for reads, limited the same way."""
        async with self._engine.connect() as conn:
            await self._scope(conn, tenant_id)
            yield conn

    async def _scope(self, conn: AsyncConnection, tenant_id: str | None) -> None:
        if self._engine.dialect.name == "postgresql":
            await conn.execute(_SCOPE, {"scope": tenant_id or ALL})
