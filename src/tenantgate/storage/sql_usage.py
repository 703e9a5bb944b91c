"""The SQL store's usage side: events, dead letters and versioned prices."""

from __future__ import annotations

import dataclasses
import itertools
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from tenantgate.domain import DeadLetter, Price, RequestContent, Usage, UsageEvent
from tenantgate.errors import Conflict, StoreUnavailable
from tenantgate.storage.sql_scope import ALL, Scoped
from tenantgate.storage.tables import prices, request_contents, usage_dead_letters, usage_events

WRITE_PAGE = 250  # events whose rows one turn of the event loop makes ready (about 7 ms on a slow machine)


def aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything we store is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


_u = usage_events.c
# An event's columns in the order event_of reads them: by position, a row costs a quarter of reading it by name.
EVENTS = sa.select(
    _u.request_id, _u.tenant_id, _u.key_id, _u.user_id, _u.model, _u.deployment, _u.endpoint, _u.status,
    _u.error_type, _u.prompt_tokens, _u.completion_tokens, _u.cached_tokens, _u.usage_estimated, _u.ttft_ms,
    _u.latency_ms, _u.created_at, _u.queue_wait_ms, _u.pool, _u.gpu_seconds, _u.cost_micros, _u.price_version,
    _u.ttft_slo_met, _u.cache_hit, _u.saved_micros,
)  # fmt: skip


def event_of(row: Any) -> UsageEvent:
    """The event of a row of EVENTS."""
    (request_id, tenant_id, key_id, user_id, model, deployment, endpoint, status, error_type, prompt_tokens,
     completion_tokens, cached_tokens, estimated, ttft_ms, latency_ms, created_at, queue_wait_ms, pool, gpu_seconds,
     cost_micros, price_version, ttft_slo_met, cache_hit, saved_micros) = row  # fmt: skip
    return UsageEvent(
        request_id, tenant_id, key_id, user_id, model, deployment, endpoint, status, error_type,
        Usage(prompt_tokens, completion_tokens, cached_tokens, bool(estimated)), ttft_ms, latency_ms,
        aware(created_at) or created_at, queue_wait_ms, pool, gpu_seconds or 0.0, cost_micros or 0, price_version,
        ttft_slo_met, bool(cache_hit), saved_micros or 0,
    )  # fmt: skip


def _price(row: Any) -> Price:
    return Price(
        id=row.id,
        model=row.model,
        effective_from=aware(row.effective_from) or row.effective_from,
        input_micros_per_1m=int(row.input_micros_per_1m),
        output_micros_per_1m=int(row.output_micros_per_1m),
        cached_micros_per_1m=int(row.cached_micros_per_1m),
        gpu_hour_micros=int(row.gpu_hour_micros),
        created_at=aware(row.created_at) or row.created_at,
    )


# The columns an event fills, in the table's order: the order of the insert's placeholders.
EVENT_COLUMNS = (
    "request_id", "tenant_id", "key_id", "user_id", "model", "deployment", "endpoint", "status", "error_type",
    "prompt_tokens", "completion_tokens", "cached_tokens", "ttft_ms", "latency_ms", "queue_wait_ms", "created_at",
    "pool", "usage_estimated", "gpu_seconds", "cost_micros", "price_version", "ttft_slo_met", "cache_hit",
    "saved_micros",
)  # fmt: skip
# SQLite: the events one statement carries, as many as the lowest parameter limit of its builds allows
EVENTS_PER_STATEMENT = 999 // len(EVENT_COLUMNS)


def event_values(e: UsageEvent) -> tuple[Any, ...]:
    """An event's values in the order of EVENT_COLUMNS."""
    u = e.usage
    return (
        e.request_id, e.tenant_id, e.key_id, e.user_id, e.model, e.deployment, e.endpoint, e.status, e.error_type,
        u.prompt_tokens, u.completion_tokens, u.cached_tokens, e.ttft_ms, e.latency_ms, e.queue_wait_ms, e.created_at,
        e.pool, u.estimated, e.gpu_seconds, e.cost_micros, e.price_version, e.ttft_slo_met, e.cache_hit,
        e.saved_micros,
    )  # fmt: skip


class EventInsert:
    """The insert of usage events as the driver's own statement and rows.

    SQLAlchemy's executemany handles each row's parameters in Python, about 30 µs of event-loop time
    an event, more than the insert itself. The statement is compiled once; the rows go to the driver
    as tuples, each value through its column's own bind processor where the dialect has one (SQLite
    keeps datetimes as text in SQLAlchemy's format, which the reads and the range queries rely on).

    On SQLite many events go in one statement. Its driver lets go of the interpreter's lock for each
    statement it runs, and while the event loop is busy, taking the lock back waits up to the
    interpreter's switch interval (5 ms): one statement per event wrote about 700 events a second
    under load, fewer than the gateway served."""

    def __init__(self, dialect: sa.Dialect) -> None:
        insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
        values: dict[str, Any] = {name: sa.bindparam(name) for name in EVENT_COLUMNS}
        statement = insert(usage_events).values(values).on_conflict_do_nothing(index_elements=["request_id"])
        compiled = statement.compile(dialect=dialect)
        if tuple(compiled.positiontup or ()) != EVENT_COLUMNS:
            raise RuntimeError(f"the usage insert's placeholders are not in column order: {compiled.positiontup}")
        self.sql = compiled.string
        types = [usage_events.c[name].type.dialect_impl(dialect) for name in EVENT_COLUMNS]
        self._processed = [(i, p) for i, t in enumerate(types) if (p := t.bind_processor(dialect)) is not None]
        self._one_row = ""  # the placeholders of one event, repeated for many in one statement (SQLite)
        if dialect.name == "sqlite":
            self._one_row = "(" + ", ".join("?" * len(EVENT_COLUMNS)) + ")"
            if self.sql.count(self._one_row) != 1:
                raise RuntimeError(f"the usage insert has not one row of placeholders: {self.sql}")

    @property
    def grouped(self) -> bool:
        """Many events to a statement (SQLite), their rows made by the driver's thread as it goes."""
        return bool(self._one_row)

    def statements(self, events: Sequence[UsageEvent]) -> list[tuple[str, Iterator[tuple[Any, ...]]]]:
        """SQLite: the events as (statement, the parameters of each run of it) for the driver's
        executemany, the parameters made as the driver asks for them."""
        whole = len(events) - len(events) % EVENTS_PER_STATEMENT
        runs: list[tuple[str, Iterator[tuple[Any, ...]]]] = []
        for chosen, size in ((events[:whole], EVENTS_PER_STATEMENT), (events[whole:], len(events) - whole)):
            if chosen:
                sql = self.sql.replace(self._one_row, ", ".join([self._one_row] * size))
                runs.append((sql, self._runs(chosen, size)))
        return runs

    def _runs(self, events: Sequence[UsageEvent], size: int) -> Iterator[tuple[Any, ...]]:
        for start in range(0, len(events), size):
            yield tuple(itertools.chain.from_iterable(self.rows(events[start : start + size])))

    def rows(self, events: Sequence[UsageEvent]) -> list[tuple[Any, ...]]:
        if not self._processed:
            return [event_values(e) for e in events]
        rows = []
        for event in events:
            row = list(event_values(event))
            for i, process in self._processed:
                row[i] = process(row[i])
            rows.append(tuple(row))
        return rows


def _owner(scope: str) -> sa.Column[str]:
    """The event column that names a 'tenant', 'key' or 'user'."""
    u = usage_events.c
    return {"tenant": u.tenant_id, "key": u.key_id, "user": u.user_id}[scope]


class SqlUsage(Scoped):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._insert_usage = EventInsert(engine.dialect)
        self._insert_letter = insert(usage_dead_letters).on_conflict_do_nothing(index_elements=["request_id"])
        self._insert_content = insert(request_contents).on_conflict_do_nothing(index_elements=["request_id"])

    async def insert_usage(self, events: Sequence[UsageEvent]) -> None:
        if not events:
            return
        # The driver's executemany over one compiled statement (EventInsert). On PostgreSQL a page at a
        # time: each page's rows are made ready in one turn of the event loop. On SQLite the driver's
        # thread makes them as it inserts, in one call there: each call waits a turn of the busy loop.
        try:
            async with self._begin(ALL) as conn:
                if self._insert_usage.grouped:
                    driver = (await conn.get_raw_connection()).driver_connection
                    for sql, runs in self._insert_usage.statements(events):
                        await driver.executemany(sql, runs)  # type: ignore[union-attr]
                else:
                    for start in range(0, len(events), WRITE_PAGE):
                        rows = self._insert_usage.rows(events[start : start + WRITE_PAGE])
                        await conn.exec_driver_sql(self._insert_usage.sql, rows)
        except (OperationalError, sqlite3.OperationalError) as exc:  # the driver's own, on SQLite
            if "database is locked" in str(getattr(exc, "orig", exc)):  # SQLite's busy timeout ran out
                raise StoreUnavailable("The database is busy; the events are kept for retry.") from exc
            raise

    async def insert_contents(self, contents: Sequence[RequestContent]) -> None:
        if not contents:
            return
        rows = [dataclasses.asdict(content) for content in contents]
        async with self._begin(ALL) as conn:
            await conn.execute(self._insert_content, rows)

    async def request_content(self, tenant_id: str, request_id: str) -> RequestContent | None:
        c = request_contents.c
        query = request_contents.select().where(c.tenant_id == tenant_id, c.request_id == request_id)
        async with self._connect(tenant_id) as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return RequestContent(row.request_id, row.tenant_id, aware(row.created_at) or row.created_at, row.request,
                              row.answer)  # fmt: skip

    async def insert_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        rows = [
            {"request_id": d.request_id, "reason": d.reason, "payload": d.payload, "created_at": d.created_at}
            for d in letters
        ]
        async with self._begin(ALL) as conn:
            await conn.execute(self._insert_letter, rows)

    async def list_dead_letters(self, limit: int) -> list[DeadLetter]:
        query = usage_dead_letters.select().order_by(usage_dead_letters.c.created_at.desc()).limit(limit)
        async with self._connect(ALL) as conn:
            rows = (await conn.execute(query)).all()
        return [DeadLetter(r.request_id, r.reason, r.payload, aware(r.created_at) or r.created_at) for r in rows]

    async def period_usage(self, scope: str, scope_id: str, since: datetime) -> tuple[int, int]:
        u = usage_events.c
        column = _owner(scope)
        query = sa.select(
            sa.func.coalesce(sa.func.sum(u.prompt_tokens + u.completion_tokens), 0),
            sa.func.coalesce(sa.func.sum(u.cost_micros), 0),
        ).where(column == scope_id, u.created_at >= since)
        async with self._connect(ALL) as conn:
            row = (await conn.execute(query)).one()
        return int(row[0]), int(row[1])

    async def period_gpu_seconds(self, scope: str, scope_id: str, since: datetime) -> float:
        u = usage_events.c
        column = _owner(scope)
        query = sa.select(sa.func.coalesce(sa.func.sum(u.gpu_seconds), 0.0)).where(
            column == scope_id, u.created_at >= since
        )
        async with self._connect(ALL) as conn:
            return float((await conn.execute(query)).scalar_one())

    async def add_price(self, price: Price) -> None:
        values = {
            "id": price.id,
            "model": price.model,
            "effective_from": price.effective_from,
            "input_micros_per_1m": price.input_micros_per_1m,
            "output_micros_per_1m": price.output_micros_per_1m,
            "cached_micros_per_1m": price.cached_micros_per_1m,
            "gpu_hour_micros": price.gpu_hour_micros,
            "created_at": price.created_at,
        }
        try:
            async with self._begin(ALL) as conn:
                await conn.execute(prices.insert().values(**values))
        except IntegrityError as exc:
            when = price.effective_from.isoformat()
            raise Conflict(f"model {price.model!r} already has a price from {when}", code="price_exists") from exc

    async def list_prices(self) -> list[Price]:
        query = prices.select().order_by(prices.c.model, prices.c.effective_from)
        async with self._connect(ALL) as conn:
            rows = (await conn.execute(query)).all()
        return [_price(r) for r in rows]
