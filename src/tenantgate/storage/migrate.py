"""Run Alembic migrations programmatically (`tenantgate migrate`, and at `serve` start-up).

`serve` first asks the database for its revision and imports Alembic only when the schema is
behind: Alembic costs ~11 MiB of resident memory for the life of the process otherwise. A new
SQLite file is made at the head revision straight from the table definitions (a test holds them
equal to what the migrations build), without Alembic: replaying every migration took ~0.3 s of the
first start.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tenantgate.storage.tables import metadata

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
HEAD_REVISION = "0025"  # the newest file in migrations/versions; a test keeps the two in step


async def _current_revision(database_url: str) -> str | None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar()
    except sa.exc.DBAPIError:
        return None  # no version table yet: a new database
    finally:
        await engine.dispose()


def ensure_schema(database_url: str) -> None:
    """Upgrade to head unless the database is already there; a SQLite file is left in WAL mode."""
    if _is_sqlite_file_missing(database_url):
        _create_at_head(database_url)
    elif asyncio.run(_current_revision(database_url)) != HEAD_REVISION:
        upgrade(database_url)
    _write_ahead_log(database_url)


def _create_at_head(database_url: str) -> None:
    """A new SQLite file with every table, stamped with the head revision as Alembic stamps it."""
    url = make_url(database_url)
    Path(str(url.database)).parent.mkdir(parents=True, exist_ok=True)
    version = sa.Table(
        "alembic_version", sa.MetaData(),
        sa.Column("version_num", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
    )  # fmt: skip
    engine = sa.create_engine(url.set(drivername="sqlite"))  # blocking: there is no event loop yet
    try:
        with engine.begin() as conn:
            metadata.create_all(conn)
            version.create(conn)
            conn.execute(version.insert().values(version_num=HEAD_REVISION))
    finally:
        engine.dispose()


def _write_ahead_log(database_url: str) -> None:
    """Switch a SQLite file to WAL once, before any gateway process opens it: switching needs the file
    to itself, and several workers opening it together would find it locked."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        try:
            with closing(sqlite3.connect(url.database, timeout=5)) as connection:
                connection.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error:
            pass  # e.g. a read-only file: the gateway's own connections try again, and report what fails


def _is_sqlite_file_missing(database_url: str) -> bool:
    url = make_url(database_url)
    return url.get_backend_name() == "sqlite" and bool(url.database) and not Path(str(url.database)).exists()


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would choke on '%' in passwords.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`. Blocking; safe to call with or without a running event loop."""
    from alembic import command

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    config = alembic_config(database_url)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(config, revision)
        return
    # env.py drives its own event loop, which cannot nest inside a running one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(command.upgrade, config, revision).result()
