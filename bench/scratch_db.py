"""A PostgreSQL database of a bench's own, made at the current schema and dropped afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
from sqlalchemy.engine import make_url

from tenantgate.storage.migrate import ensure_schema


@contextmanager
def scratch_database(server_url: str, name: str) -> Iterator[str]:
    """Database `name` on the server of `server_url` (any database there), migrated; yields its
    SQLAlchemy URL for tenantgate's store and drops it on the way out."""
    server = make_url(server_url).set(drivername="postgresql")
    admin = server.render_as_string(hide_password=False)
    asyncio.run(_recreate(admin, name, create=True))
    try:
        url = server.set(drivername="postgresql+asyncpg", database=name).render_as_string(hide_password=False)
        ensure_schema(url)
        yield url
    finally:
        asyncio.run(_recreate(admin, name, create=False))


async def _recreate(admin_url: str, name: str, create: bool) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {name}")
        if create:
            await connection.execute(f"CREATE DATABASE {name}")
    finally:
        await connection.close()
