"""PostgreSQL row-level security, the second wall: acting as the gateway's role, a transaction sees
only the rows of the tenant it names, writes only that tenant's rows, and sees nothing if it names
none. (The store suite runs on PostgreSQL under the same role, so every store method is scoped.)"""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from tenantgate.domain import Role, User
from tenantgate.storage.migrate import upgrade
from tenantgate.storage.sql import SqlStore
from tests.e2e.private_postgres import private_postgres
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


async def test_the_store_names_the_tenant_so_a_query_that_forgets_to_filter_sees_only_its_rows(
    postgres_url: str,
) -> None:
    store = SqlStore.from_url(postgres_url, row_security=True)
    try:
        for slug in ("acme", "solo"):
            await store.create_tenant(tenant(slug))
            await store.create_user(User(f"u-{slug}", f"t-{slug}", f"a@{slug}.example", "A", Role.OWNER, T0))
        unfiltered = sa.text("SELECT tenant_id FROM users ORDER BY tenant_id")
        async with store._connect("t-acme") as conn:
            assert [r[0] for r in await conn.execute(unfiltered)] == ["t-acme"]
        async with store._begin("t-solo") as conn:
            assert [r[0] for r in await conn.execute(unfiltered)] == ["t-solo"]
        async with store._connect(None) as conn:  # a platform report: every tenant's
            assert [r[0] for r in await conn.execute(unfiltered)] == ["t-acme", "t-solo"]
    finally:
        await store.close()


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


WAITING_ON_A_LOCK = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
CREATE_ROLE = "CREATE ROLE tenantgate_app NOLOGIN"


WAITING_ON_A_LOCK = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
CREATE_ROLE = "CREATE ROLE tenantgate_app NOLOGIN"


@pytest.mark.parametrize(
    ("made", "making"),
    [((), CREATE_ROLE), ((CREATE_ROLE,), "GRANT tenantgate_app TO postgres")],
    ids=["the role", "the membership"],
)
async def test_databases_migrated_at_the_same_moment_make_the_servers_role_once(
    made: tuple[str, ...], making: str
) -> None:
    """The role and its grant to the database user belong to the whole server, so two gateways
    migrating new databases at once both make them: the one that loses the race hears
    unique_violation, not duplicate_object, and takes them as made. Made deterministic by holding
    the other one's work open until the migration waits on it."""
    with private_postgres() as server:  # a server without the role
        other = await asyncpg.connect(server.url, timeout=10)
        watcher = await asyncpg.connect(server.url, timeout=10)
        try:
            await other.execute("CREATE DATABASE tg_racing")
            for statement in made:
                await other.execute(statement)
            racing = other.transaction()
            await racing.start()
            await other.execute(making)
            url = server.url.replace("postgresql://", "postgresql+asyncpg://").rsplit("/", 1)[0] + "/tg_racing"
            migrating = asyncio.create_task(asyncio.to_thread(upgrade, url))
            async with asyncio.timeout(60):
                while not await watcher.fetchval(WAITING_ON_A_LOCK):
                    assert not migrating.done(), migrating.exception()
                    await asyncio.sleep(0.05)  # polling the server's own report of the wait
            await racing.commit()
            async with asyncio.timeout(60):
                await migrating
        finally:
            await other.close()
            await watcher.close()
        grants = await asyncpg.connect(server.url.rsplit("/", 1)[0] + "/tg_racing", timeout=10)
        try:
            assert await grants.fetchval("SELECT has_table_privilege('tenantgate_app', 'usage_events', 'INSERT')")
        finally:
            await grants.close()
