"""Read a gateway's stored usage events straight from its database, SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3

import asyncpg


async def _postgres_ids(url: str) -> set[str]:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        return {row[0] for row in await conn.fetch("SELECT request_id FROM usage_events")}
    finally:
        await conn.close()


def request_ids(database_url: str) -> set[str]:
    """The request ids of every stored usage event."""
    if database_url.startswith("sqlite:///"):
        db = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        try:
            return {row[0] for row in db.execute("SELECT request_id FROM usage_events")}
        finally:
            db.close()
    return asyncio.run(_postgres_ids(database_url.replace("postgresql+asyncpg://", "postgresql://")))
