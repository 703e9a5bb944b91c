"""A new SQLite file is made at the head revision from the table definitions, without replaying the
migrations: it must be the very schema the migrations build."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tenantgate.storage.migrate import HEAD_REVISION, ensure_schema, upgrade
from tenantgate.storage.tables import metadata


def schema(path: Path) -> dict[str, object]:
    """Each table's columns, indexes (with their columns, uniqueness and partial clause) and foreign
    keys, in a form that does not depend on the order they were added in."""
    with closing(sqlite3.connect(path)) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        described: dict[str, object] = {}
        for table in tables:
            columns = sorted(tuple(row[1:]) for row in db.execute(f"PRAGMA table_info('{table}')"))
            indexes = []
            for _, name, unique, origin, partial in db.execute(f"PRAGMA index_list('{table}')"):
                on = tuple(row[2] for row in db.execute(f"PRAGMA index_info('{name}')"))
                sql = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchone()
                where = sql[0].split(" WHERE ", 1)[1] if sql and sql[0] and partial else None
                indexes.append((on, unique, origin, where, None if origin == "pk" else name))
            keys = sorted(tuple(row[2:]) for row in db.execute(f"PRAGMA foreign_key_list('{table}')"))
            described[table] = (columns, sorted(indexes, key=repr), keys)
        described["version"] = db.execute("SELECT version_num FROM alembic_version").fetchall()
    return described


def test_a_new_file_gets_the_schema_the_migrations_build(tmp_path: Path) -> None:
    migrated, made = tmp_path / "migrated.db", tmp_path / "made.db"
    upgrade(f"sqlite+aiosqlite:///{migrated}")
    ensure_schema(f"sqlite+aiosqlite:///{made}")
    assert schema(made) == schema(migrated)
    assert schema(made)["version"] == [(HEAD_REVISION,)]


def test_the_table_definitions_match_the_migrations_as_alembic_compares_them(tmp_path: Path) -> None:
    migrated = tmp_path / "migrated.db"
    upgrade(f"sqlite+aiosqlite:///{migrated}")
    engine = sa.create_engine(f"sqlite:///{migrated}")
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()
