"""A list of ids in a statement as one parameter, whatever its length.

SQLAlchemy renders `IN` with one placeholder per value, so every list length is a new statement,
which both drivers prepare and keep (sqlite3 up to 128 per connection, asyncpg 100): the memory
grew for as long as new lengths came. Chunks of one fixed length fixed that, but cost a statement
per 200 ids, and on PostgreSQL each of them intersected the ids with the whole partial index of
unmarked events (the planner's estimate of it is stale while a round marks thousands): marking a
round of 20,000 events took 7-8 s there, 25 to 30 times what one statement takes
(bench/rollup_round.py). One parameter holds the whole list: an array on PostgreSQL, a JSON array
read by `json_each` on SQLite. Either way the rows are found by the column's index.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY


def among(column: sa.ColumnElement[str], ids: Sequence[str], dialect: str) -> sa.ColumnElement[bool]:
    """`column IN ids` for the `dialect` ('postgresql' or 'sqlite'), with the ids as one parameter."""
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam("ids", list(ids), type_=ARRAY(sa.String), unique=True))
    listed = sa.func.json_each(sa.bindparam("ids", orjson.dumps(list(ids)).decode(), type_=sa.String, unique=True))
    return column.in_(sa.select(sa.column("value", sa.String)).select_from(listed))
