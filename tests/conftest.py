"""Shared fixtures: real PostgreSQL databases, migrated SQLite files, and the store implementations."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest

from tenantgate.admission.counters import CounterStore, MemoryCounterStore
from tenantgate.admission.redis_counters import RedisCounterStore
from tenantgate.storage.memory import MemoryStore
from tenantgate.storage.migrate import upgrade
from tenantgate.storage.sql import SqlStore


def _redis_url() -> str:
    """A Redis database of this test process's own (`make test` runs several, pytest-xdist's gw0,
    gw1, ...): the instances of one installation count each other and share counters in Redis under
    fixed names, so two tests' installations running at once must not meet in one database (as
    docs/operations.md asks of installations). Databases 1-15; 0 for a run in one process."""
    base = os.environ.get("TENANTGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return base
    return f"{base.rsplit('/', 1)[0]}/{int(worker.removeprefix('gw')) % 15 + 1}"


REDIS_URL = _redis_url()
POSTGRES_ADMIN_URL = os.environ.get("TENANTGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    """Without CI a missing server skips; in CI it fails, because CI must test the real thing."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: tests that need it must not be skipped)")
    pytest.skip(reason)


async def _admin_async(sql: str) -> None:
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _admin(sql: str) -> None:
    """Run one statement on the server's admin database, from sync or async test code alike."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _admin_async(sql)).result()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test, dropped afterwards."""
    yield from postgres_database()


def postgres_database() -> Iterator[str]:
    """Create and migrate a PostgreSQL database, yield its URL, drop it (for fixtures of any scope)."""
    name = "tg_test_" + secrets.token_hex(4)
    try:
        _admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as exc:
        _unavailable(f"PostgreSQL unreachable at {POSTGRES_ADMIN_URL}: {exc}")
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    url = f"{base}/{name}"
    upgrade(url)
    yield url
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'tenantgate.db'}"
    upgrade(url)
    return url


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[MemoryStore | SqlStore]:
    """The same suite runs against every store implementation."""
    if request.param == "memory":
        yield MemoryStore()
        return
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    sql = SqlStore.from_url(url, row_security=True)  # on PostgreSQL, bound by row-level security as the gateway is
    yield sql
    await sql.close()


@pytest.fixture
def redis_url() -> str:
    """The real Redis server; tests use their own key names, so nothing is flushed."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        _unavailable(f"Redis unreachable at {REDIS_URL}: {exc}")
    return REDIS_URL


@pytest.fixture(params=["memory", "redis"])
async def counter_store(request: pytest.FixtureRequest) -> AsyncIterator[CounterStore]:
    """The same suite runs against the in-process counters and a real Redis."""
    if request.param == "memory":
        yield MemoryCounterStore()
        return
    redis = RedisCounterStore.from_url(request.getfixturevalue("redis_url"))
    yield redis
    await redis.close()
