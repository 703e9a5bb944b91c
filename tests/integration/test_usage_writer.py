"""The usage writer on every store: poison events go to dead letters and never stop the others;
an unreachable database keeps everything; a journal replay after a crash never double-counts."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from tenantgate.domain import Price, RequestContent, Usage
from tenantgate.errors import Conflict, StoreUnavailable
from tenantgate.metering.codec import decode
from tenantgate.metering.journal import UsageJournal
from tenantgate.metering.recorder import UsageRecorder
from tenantgate.storage.base import Store
from tenantgate.storage.sql import SqlStore
from tenantgate.storage.sql_usage import EVENT_COLUMNS, EVENTS_PER_STATEMENT, WRITE_PAGE, EventInsert
from tests.integration.test_store_suite import T0, event


def recorder(store: Store, journal: UsageJournal | None = None) -> UsageRecorder:
    return UsageRecorder(store, flush_s=60, batch_size=50, buffer_limit=1000, journal=journal)


async def test_period_usage_sums_tokens_and_cost_per_identity(store: Store) -> None:
    first = replace(event("r1", "t-a", "m", 10, 5), cost_micros=700, user_id="u1")
    second = replace(event("r2", "t-a", "m", 1, 1), cost_micros=30, created_at=T0 + timedelta(hours=1))
    await store.insert_usage([first, second, event("r3", "t-b", "m", 99, 99)])
    assert await store.period_usage("tenant", "t-a", T0) == (17, 730)
    assert await store.period_usage("tenant", "t-a", T0 + timedelta(minutes=1)) == (2, 30)
    assert await store.period_usage("user", "u1", T0) == (15, 700)
    assert await store.period_usage("key", "k1", T0) == (17 + 198, 730)
    assert await store.period_usage("tenant", "t-none", T0) == (0, 0)


async def test_prices_are_versioned_and_a_duplicate_moment_conflicts(store: Store) -> None:
    price = Price("p1", "m", T0, 1_000_000, 2_000_000, 500_000, 0, T0)
    later = replace(price, id="p2", effective_from=T0 + timedelta(days=1), output_micros_per_1m=3_000_000)
    await store.add_price(later)
    await store.add_price(price)
    assert await store.list_prices() == [price, later]
    with pytest.raises(Conflict):
        await store.add_price(replace(price, id="p3"))


class HeldStore:
    """A real store whose usage inserts each wait until the test lets them go."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.gates: list[asyncio.Event] = []
        self.open = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def insert_usage(self, events: Any) -> None:
        gate = asyncio.Event()
        self.gates.append(gate)
        if not self.open:
            await gate.wait()
        await self.store.insert_usage(events)

    def let_all_go(self) -> None:
        self.open = True
        for gate in self.gates:
            gate.set()


async def test_flushes_that_overlap_lose_no_event(store: Store) -> None:
    held = HeldStore(store)
    writer = recorder(held)  # type: ignore[arg-type]
    writer.record(event("r1", "t-a", "m", 1, 1))
    writer.record(event("r2", "t-a", "m", 1, 1))
    loop_flush = asyncio.create_task(writer.flush())  # the background loop's
    page_flush = asyncio.create_task(writer.flush())  # a report's, at the same moment
    for _ in range(5):  # each task runs up to where it waits (not a timed sleep: one loop turn each)
        await asyncio.sleep(0)
    held.gates[0].set()
    await loop_flush  # the first flush wrote its batch and is done
    writer.record(event("r3", "t-a", "m", 1, 1))  # served just then
    writer.record(event("r4", "t-a", "m", 1, 1))
    held.let_all_go()
    await page_flush
    await writer.flush()
    stored = await store.usage_between(T0 - timedelta(days=1), T0 + timedelta(days=1), "t-a")
    assert sorted(e.request_id for e in stored) == ["r1", "r2", "r3", "r4"]


def rejected_by_every_sql_store() -> Any:
    """An event no SQL store accepts (a NOT NULL column left empty)."""
    return replace(event("poison-null", "t-a", "m", 1, 1), latency_ms=None)


@pytest.fixture(params=["sqlite", "postgres"])
async def sql_store(request: pytest.FixtureRequest) -> AsyncIterator[SqlStore]:
    store = SqlStore.from_url(request.getfixturevalue(f"{request.param}_url"))
    yield store
    await store.close()


async def test_a_large_batch_is_written_a_page_at_a_time_on_postgres(postgres_url: str) -> None:
    """A batch of thousands had all its rows made ready in one turn of the event loop (requests
    waited behind it): each page of rows is sent before the next is made ready."""
    store = SqlStore.from_url(postgres_url)
    inserts: list[int] = []

    @sa.event.listens_for(store._engine.sync_engine, "before_cursor_execute")
    def counted(_conn: Any, _cursor: Any, statement: str, rows: Any, _context: Any, many: bool) -> None:
        if "INTO usage_events" in statement:
            inserts.append(len(rows) if many else 1)

    try:
        await store.insert_usage([event(f"r{i}", "t-a", "m", 1, 1) for i in range(2 * WRITE_PAGE + 1)])
        assert inserts == [WRITE_PAGE, WRITE_PAGE, 1]
        assert await store.period_usage("tenant", "t-a", T0) == (2 * (2 * WRITE_PAGE + 1), 0)
    finally:
        await store.close()


async def test_sqlite_takes_many_events_a_statement_and_makes_their_rows_in_its_own_thread(sqlite_url: str) -> None:
    """SQLite's driver gives up the interpreter's lock at every statement it runs and each call to its
    thread waits for a turn of the event loop: under load, one statement per event fell behind."""
    store = SqlStore.from_url(sqlite_url)
    total = 2 * EVENTS_PER_STATEMENT + 5
    events = [event(f"r{i}", "t-a", "m", 1, 1) for i in range(total)]
    try:
        statements = EventInsert(store._engine.dialect).statements(events)
        runs = [(sql.count("?") // len(EVENT_COLUMNS), len(list(made))) for sql, made in statements]
        assert runs == [(EVENTS_PER_STATEMENT, 2), (5, 1)]  # two full statements, then the rest in one
        await store.insert_usage(events + events[:3])  # a replayed event is counted once
        assert await store.period_usage("tenant", "t-a", T0) == (2 * total, 0)
    finally:
        await store.close()


async def test_a_refused_event_is_dead_lettered_and_the_rest_are_written(sql_store: SqlStore) -> None:
    store = sql_store
    writer = recorder(store)
    good = [event(f"ok-{i}", "t-a", "m", 1, 1) for i in range(20)]
    for item in [*good[:7], rejected_by_every_sql_store(), *good[7:]]:
        writer.record(item)
    await writer.flush()
    assert writer.pending == 0 and writer.written == 20 and writer.dead_lettered == 1
    assert await store.period_usage("tenant", "t-a", T0) == (40, 0)
    [letter] = await store.list_dead_letters(10)
    assert letter.request_id == "poison-null" and "latency_ms" in letter.reason
    assert orjson.loads(letter.payload)["request_id"] == "poison-null"
    assert "INSERT" not in letter.reason  # the driver's message, not the statement and its values


@pytest.mark.postgres
async def test_postgres_refuses_nul_and_overlong_models_and_usage_keeps_flowing(postgres_url: str) -> None:
    store = SqlStore.from_url(postgres_url)
    try:
        writer = recorder(store)
        writer.record(event("nul", "t-a", "bad\x00model", 1, 1))
        writer.record(event("long", "t-a", "m" * 300, 1, 1))
        for i in range(20):
            writer.record(event(f"after-{i}", "t-a", "m", 2, 3))
        await writer.flush()
        assert writer.pending == 0 and writer.dead_lettered == 2
        assert await store.period_usage("tenant", "t-a", T0) == (100, 0)
        letters = {d.request_id: d for d in await store.list_dead_letters(10)}
        assert set(letters) == {"nul", "long"}
        assert decode(letters["nul"].payload.encode()).model == "bad\x00model"  # kept whole, to repair by hand
    finally:
        await store.close()


async def test_an_unreachable_database_keeps_every_event_for_retry(sqlite_url: str) -> None:
    store = SqlStore.from_url(sqlite_url)
    writer = recorder(store)
    for i in range(30):
        writer.record(event(f"r{i}", "t-a", "m", 1, 1))
    await store.close()
    broken = SqlStore.from_url(sqlite_url.replace("tenantgate.db", "missing/dir/x.db"))  # cannot even connect
    writer._store = broken
    await writer.flush()
    assert writer.pending == 30 and writer.dead_lettered == 0 and writer.written == 0
    await broken.close()
    writer._store = SqlStore.from_url(sqlite_url)
    await writer.flush()
    assert writer.pending == 0 and writer.written == 30
    assert await writer._store.period_usage("tenant", "t-a", T0) == (60, 0)
    await writer._store.close()


async def test_sqlite_busy_behind_another_writer_is_unavailable_not_a_refusal(sqlite_url: str) -> None:
    """SQLite's busy timeout (5 s) runs out while another writer holds the file: the store says so,
    rather than an error the usage writer would take for events the database refuses."""
    store = SqlStore.from_url(sqlite_url)
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite+aiosqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, as a long rollup transaction holds it
    try:
        with pytest.raises(StoreUnavailable):  # a new connection: locked out as it is set up
            await store.insert_usage([event("r1", "t-a", "m", 1, 1)])
        holder.execute("ROLLBACK")
        await store.insert_usage([event("r0", "t-a", "m", 1, 1)])
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable):  # a connection in use: locked out at the insert itself
            await store.insert_usage([event("r1", "t-a", "m", 1, 1)])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await store.insert_usage([event("r1", "t-a", "m", 1, 1)])
    assert await store.period_usage("tenant", "t-a", T0) == (4, 0)
    await store.close()


async def test_a_busy_database_keeps_the_batch_whole_and_dead_letters_nothing(store: Store) -> None:
    """Split into single events while the database was busy, a batch's events were dead-lettered
    (never billed) as soon as the lock went away between an event's insert and its dead letter."""
    writer = recorder(store)
    for i in range(4):
        writer.record(event(f"r{i}", "t-a", "m", 1, 1))
    insert = store.insert_usage
    calls = 0

    async def busy_once(events):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 1:
            raise StoreUnavailable("The database is busy; the events are kept for retry.")
        return await insert(events)

    store.insert_usage = busy_once  # type: ignore[method-assign]
    await writer.flush()
    assert writer.pending == 4 and writer.written == 0 and writer.dead_lettered == 0
    await writer.flush()
    assert writer.pending == 0 and writer.written == 4 and writer.dead_lettered == 0
    assert await store.period_usage("tenant", "t-a", T0) == (8, 0)


async def test_events_the_database_never_took_stay_journaled_through_a_crash(sqlite_url: str, tmp_path: Path) -> None:
    """The database is unreachable for two flushes and the buffer overflows (the oldest events leave
    memory); then the process dies. Every event is still in the journal for the next start."""
    store = SqlStore.from_url(sqlite_url)
    live = tmp_path / "journal"
    writer = UsageRecorder(store, flush_s=60, batch_size=50, buffer_limit=10, journal=UsageJournal(live, strict=True))
    writer.start()
    broken = SqlStore.from_url(sqlite_url.replace("tenantgate.db", "missing/dir/x.db"))  # cannot even connect
    writer._store = broken
    for first, count in ((0, 5), (5, 10)):  # two segments: the second flush drops the first one's events
        for i in range(first, first + count):
            writer.record(event(f"r{i}", "t-a", "m", 1, 1))
        await writer.durable()
        await writer.flush()
    assert writer.pending == 10 and writer.dropped == 5 and writer.written == 0
    left = tmp_path / "left-behind"  # no close(): what the dead process left on disk
    left.mkdir()
    for path in live.glob("usage-*"):
        (left / path.name).write_bytes(path.read_bytes())
    again = recorder(store, UsageJournal(left, strict=True))
    again.start()
    assert sorted(e.request_id for _, e in again._events) == sorted(f"r{i}" for i in range(15))
    await again.flush()
    assert await store.period_usage("tenant", "t-a", T0) == (30, 0)
    await broken.close()
    await store.close()


async def test_prompts_and_answers_wait_for_a_database_that_is_down(sqlite_url: str) -> None:
    store = SqlStore.from_url(sqlite_url)
    writer = recorder(store)
    broken = SqlStore.from_url(sqlite_url.replace("tenantgate.db", "missing/dir/x.db"))
    writer._store = broken
    writer.record_content(RequestContent("r1", "t-a", T0, '{"messages": []}', "kept"))
    await writer.flush()
    assert writer.contents_dropped == 0
    writer._store = store
    await writer.flush()
    kept = await store.request_content("t-a", "r1")
    assert kept is not None and kept.answer == "kept"
    await broken.close()
    await store.close()


async def test_a_replayed_journal_counts_each_event_once(store: Store, tmp_path: Path) -> None:
    live = tmp_path / "journal"
    journal = UsageJournal(live, strict=True)
    writer = recorder(store, journal)
    writer.start()
    for i in range(10):
        writer.record(replace(event(f"r{i}", "t-a", "m", 1, 1), usage=Usage(1, 1, estimated=i % 2 == 0)))
    await writer.durable()
    # a crash may come after the database took a batch but before its segment was deleted
    stored_but_kept = {path.name: path.read_bytes() for path in live.glob("usage-*")}
    await writer.flush()
    assert sorted(path.name for path in live.glob("usage-*")) == [f"usage-{2:012d}.ndjson"]  # the stored one went
    for i in range(10, 15):
        writer.record(event(f"r{i}", "t-a", "m", 1, 1))
    await writer.durable()  # five more only journaled, then the process dies (no close)
    left = tmp_path / "left-behind"
    left.mkdir()
    for name, data in {**stored_but_kept, **{p.name: p.read_bytes() for p in live.glob("usage-*")}}.items():
        (left / name).write_bytes(data)
    again = recorder(store, UsageJournal(left, strict=True))
    again.start()
    assert again.pending == 15
    await again.flush()
    assert await store.period_usage("tenant", "t-a", T0) == (30, 0)
    assert list(left.glob("usage-*")) == [left / f"usage-{4:012d}.ndjson"]  # only the fresh, empty segment
    await journal.close()


async def test_a_flush_writes_what_was_recorded_before_it_began_and_leaves_the_rest(store: Store) -> None:
    held = HeldStore(store)
    writer = recorder(held)  # type: ignore[arg-type]
    writer.record(event("r1", "t-a", "m", 1, 1))
    flush = asyncio.create_task(writer.flush())
    while not held.gates:  # the flush is inside its write
        await asyncio.sleep(0)
    writer.record(event("r2", "t-a", "m", 1, 1))  # served while the write was in flight
    held.let_all_go()
    await flush
    assert len(held.gates) == 1 and writer.pending == 1  # one write: it did not chase r2 with a second
    await writer.flush()
    stored = await store.usage_between(T0 - timedelta(days=1), T0 + timedelta(days=1), "t-a")
    assert sorted(e.request_id for e in stored) == ["r1", "r2"]
