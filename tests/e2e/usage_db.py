"""Read a gateway's stored usage events straight from its database, SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

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


async def _postgres_rows(url: str) -> list[dict[str, object]]:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        return [dict(row) for row in await conn.fetch("SELECT * FROM usage_events")]
    finally:
        await conn.close()


def usage_rows(database_url: str) -> dict[str, dict[str, Any]]:
    """Every stored usage event as a dict, by request id."""
    if database_url.startswith("sqlite:///"):
        db = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        db.row_factory = sqlite3.Row
        try:
            rows = [dict(row) for row in db.execute("SELECT * FROM usage_events")]
        finally:
            db.close()
    else:
        rows = asyncio.run(_postgres_rows(database_url.replace("postgresql+asyncpg://", "postgresql://")))
    return {str(row["request_id"]): row for row in rows}
