"""PostgreSQL row-level security, the second wall: acting as the gateway's role, a transaction sees
only the rows of the tenant it names, writes only that tenant's rows, and sees nothing if it names
none. (The store suite runs on PostgreSQL under the same role, so every store method is scoped.)"""

from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from tenantgate.domain import Role, User
from tenantgate.storage.sql import SqlStore
from tests.integration.test_store_suite import T0, key, tenant


async def test_a_query_that_names_no_tenant_sees_nothing(postgres_url: str) -> None:
    store = SqlStore.from_url(postgres_url, row_security=True)
    try:
        for slug in ("acme", "solo"):
            await store.create_tenant(tenant(slug))
            await store.create_user(User(f"u-{slug}", f"t-{slug}", f"a@{slug}.example", "A", Role.OWNER, T0))
            await store.create_key(key(("a" if slug == "acme" else "b") * 12, f"t-{slug}"))
        assert [u.id for u in await store.list_users("t-acme")] == ["u-acme"]  # through the store: scoped
    finally:
        await store.close()

    engine = create_async_engine(postgres_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SET ROLE tenantgate_app"))

            async def rows(table: str, scope: str | None) -> list[str]:
                if scope is not None:
                    await conn.execute(sa.text("SELECT set_config('tenantgate.scope', :s, true)"), {"s": scope})
                found = await conn.execute(sa.text(f"SELECT tenant_id FROM {table} ORDER BY tenant_id"))
                return [r[0] for r in found]

            assert await rows("users", None) == [] and await rows("api_keys", None) == []
            assert await rows("users", "t-acme") == ["t-acme"]
            assert await rows("api_keys", "t-solo") == ["t-solo"]
            assert await rows("users", "*") == ["t-acme", "t-solo"]
            await conn.execute(sa.text("SELECT set_config('tenantgate.scope', 't-acme', true)"))
            with pytest.raises(DBAPIError, match="row-level security"):
                await conn.execute(sa.text(
                    "INSERT INTO users (id, tenant_id, email, name, role, created_at) "
                    "VALUES ('u-x', 't-solo', 'x@solo.example', 'X', 'owner', now())"
                ))  # fmt: skip
    finally:
        await engine.dispose()


async def test_a_database_user_that_may_not_act_as_the_role_is_one_clear_line(postgres_url: str) -> None:
    from tenantgate.startup import row_security_problem
    from tests.conftest import _admin_async

    user = "tg_plain_" + secrets.token_hex(3)
    await _admin_async(f"CREATE ROLE {user} LOGIN")
    try:
        url = postgres_url.replace("postgres@", f"{user}@", 1)
        assert url != postgres_url
        problem = await row_security_problem(url)
        assert problem is not None and "tenantgate_app" in problem and "TENANTGATE_ROW_SECURITY=false" in problem
        assert await row_security_problem(postgres_url) is None  # the owner may
    finally:
        await _admin_async(f"DROP ROLE {user}")
