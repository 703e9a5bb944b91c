"""Lists of ids in a statement, in chunks of one fixed length.

SQLAlchemy renders `IN` with one placeholder per value, so every list length is a new statement,
which both drivers prepare and keep (sqlite3 up to 128 per connection, asyncpg 100): the usage
rollup's 1-1,000 request ids a turn filled those caches with statements of up to 1,000
parameters, and the gateway's memory grew for as long as new lengths came. Chunks of `CHUNK`,
the last padded by repeating an id (a row matches once however often it is listed), are one
statement, and each still finds its rows by the column's index.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

CHUNK = 200


def fixed_chunks(values: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), CHUNK):
        chunk = list(values[start : start + CHUNK])
        yield chunk + [chunk[0]] * (CHUNK - len(chunk))
