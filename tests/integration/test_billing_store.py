"""The billing side of every store (memory, SQLite, PostgreSQL): rollups, credits, invoices, credit
notes, webhooks and delivery state, export marks, retention."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tenantgate.billing.records import CreditGrant, CreditNote, FinalInvoice, Rollup, RollupKey, Webhook
from tenantgate.billing.rollups import RollupJob
from tenantgate.domain import Notification, RequestContent, RequestFilter, Usage, UsageEvent
from tenantgate.errors import Conflict
from tenantgate.storage.base import Store
from tenantgate.storage.sql import SqlStore
from tenantgate.storage.sql_billing import MERGE_PAGE
from tests.integration.test_store_suite import T0, event, tenant


async def unrolled(store: Store, limit: int, page: int = 1000) -> list[str]:
    return [e.request_id async for events in store.unrolled_usage(limit, page) for e in events]


def rollup(bucket_hours: int, model: str, requests: int) -> Rollup:
    row = Rollup(RollupKey(T0 + timedelta(hours=bucket_hours), "t-a", "k1", "", "chat/completions", model, "d", "p"))
    row.requests = requests
    row.errors = {"upstream_error": 1}
    row.rejected = {"concurrency_limit_exceeded": 7}
    row.prompt_tokens, row.completion_tokens, row.gpu_seconds, row.charged_micros = 10, 20, 1.5, 300
    for value in (5.0, 10.0, 400.0):
        row.latency_ms.add(value)
    return row


async def test_rollups_are_replaced_by_range_and_keep_their_sketches(store: Store) -> None:
    await store.replace_rollups("hour", T0, T0 + timedelta(hours=2), [rollup(0, "m", 3), rollup(1, "m", 4)])
    await store.replace_rollups("hour", T0 + timedelta(hours=1), T0 + timedelta(hours=2), [rollup(1, "n", 9)])
    rows = await store.list_rollups("hour", T0, T0 + timedelta(days=1), "t-a")
    assert [(r.key.model, r.requests) for r in rows] == [("m", 3), ("n", 9)]
    assert rows[0].errors == {"upstream_error": 1} and rows[0].gpu_seconds == 1.5
    assert rows[0].rejected == {"concurrency_limit_exceeded": 7}
    assert rows[0].latency_ms.count == 3 and rows[0].latency_ms.get_quantile_value(1.0) == pytest.approx(400, rel=0.02)
    assert await store.list_rollups("hour", T0, T0 + timedelta(days=1), "t-other") == []
    assert await store.list_rollups("day", T0, T0 + timedelta(days=1)) == []


async def test_credits_invoices_and_credit_notes(store: Store) -> None:
    grant = CreditGrant("g1", "t-a", 5_000_000, T0, None, "welcome")
    await store.add_credit_grant(grant)
    assert await store.list_credit_grants("t-a") == [grant] and await store.list_credit_grants("t-b") == []
    invoice = FinalInvoice("inv-t-a-202611", "t-a", "2026-11", 1_000_000, {"lines": []}, T0, (("g1", 2_000_000),))
    await store.finalize_invoice(invoice)
    with pytest.raises(Conflict):
        await store.finalize_invoice(replace(invoice, id="other"))
    assert await store.get_invoice("t-a", "2026-11") == invoice
    assert await store.get_invoice("t-b", "2026-11") is None
    assert await store.credit_applied("t-a") == {"g1": 2_000_000}
    note = CreditNote("n1", invoice.id, "t-a", 250_000, "outage", T0)
    await store.add_credit_note(note)
    assert await store.list_credit_notes(invoice.id) == [note]
    assert [i.month for i in await store.list_invoices("t-a")] == ["2026-11"]


async def test_notifications_wait_for_a_webhook_and_count_attempts(store: Store) -> None:
    await store.create_tenant(tenant("acme"))
    first = Notification("n1", "t-acme", "budget_50", "2026-11", "half", T0)
    await store.add_notification(first)
    assert await store.undelivered_notifications(10, 3) == []  # no webhook: nothing to deliver yet
    await store.set_webhook(Webhook("t-acme", "http://hook.example/x", "s" * 16, T0), "t-acme")
    assert await store.get_webhook("t-acme") == Webhook("t-acme", "http://hook.example/x", "s" * 16, T0)
    assert [n.id for n in await store.undelivered_notifications(10, 3)] == ["n1"]
    for _ in range(3):
        await store.mark_notification("n1", None)
    assert await store.undelivered_notifications(10, 3) == []  # gave up after three attempts
    await store.add_notification(replace(first, id="n2", kind="budget_80"))
    await store.mark_notification("n2", T0)
    assert await store.undelivered_notifications(10, 5) == [first]  # n2 delivered; n1 has attempts left under 5
    await store.set_webhook(None, "t-acme")
    assert await store.get_webhook("t-acme") is None


async def test_export_marks_and_a_purge_that_really_deletes(store: Store) -> None:
    await store.create_tenant(tenant("acme"))
    old = replace(event("old", "t-acme", "m", 1, 1), created_at=T0 - timedelta(days=40))
    new = event("new", "t-acme", "m", 2, 2)
    other = replace(event("other", "t-b", "m", 3, 3), created_at=T0 - timedelta(days=40))
    await store.insert_usage([old, new, other])
    assert [e.request_id for e in await store.unexported_usage(10)] == ["old", "other", "new"]
    await store.mark_exported(["old", "other"], T0)
    assert [e.request_id for e in await store.unexported_usage(10)] == ["new"]
    await store.set_retention("t-acme", 7)
    assert (await store.retention_days())["t-acme"] == 7
    assert await store.purge_usage(T0, default_days=30) == 1
    assert await store.usage_between(T0 - timedelta(days=60), T0 + timedelta(days=1), "t-acme") == [new]
    assert await store.period_usage("tenant", "t-b", T0 - timedelta(days=60)) == (6, 0)  # no tenant row: not its


async def test_each_tenant_keeps_its_own_retention_in_a_few_statements(store: Store) -> None:
    """Tenants with 7 days, 90 days and the default 30: each loses what is older than its own, and the
    purge's statements do not grow with the tenants."""
    retention = {"a": 7, "b": 90, "c": None, "d": None, "e": 7}
    for slug, days in retention.items():
        await store.create_tenant(tenant(slug))
        if days is not None:
            await store.set_retention(f"t-{slug}", days)
    ages = (3, 10, 40, 100)  # days
    await store.insert_usage([
        replace(event(f"{slug}-{age}", f"t-{slug}", "m", 1, 1), created_at=T0 - timedelta(days=age))
        for slug in retention for age in ages
    ])  # fmt: skip
    statements: list[str] = []
    if isinstance(store, SqlStore):
        listen = sa.event.listens_for(store._engine.sync_engine, "before_cursor_execute")
        listen(lambda _c, _k, statement, *_: statements.append(statement) if "DELETE" in statement else None)
    assert await store.purge_usage(T0, default_days=30) == 2 * 3 + 1 + 2 * 2
    kept = await store.usage_between(T0 - timedelta(days=365), T0 + timedelta(days=1))
    assert sorted(e.request_id for e in kept) == sorted([
        "a-3", "e-3", "b-3", "b-10", "b-40", "c-3", "c-10", "d-3", "d-10",
    ])  # fmt: skip
    assert len(statements) == (2 * 3 if isinstance(store, SqlStore) else 0)  # 3 retentions, not 5 tenants


async def test_merging_adds_into_stored_rows_and_counts_each_event_once(store: Store) -> None:
    await store.insert_usage([event("r1", "t-a", "m", 1, 1), event("r2", "t-a", "m", 1, 1)])
    assert await unrolled(store, 10) == ["r1", "r2"]
    assert await store.merge_rollups([("hour", rollup(0, "m", 3)), ("day", rollup(0, "m", 3))], ["r1"])
    assert not await store.merge_rollups([("hour", rollup(0, "m", 100))], ["r1", "r2"])  # r1 is taken: nothing changes
    assert await store.merge_rollups([("hour", rollup(0, "m", 4))], ["r2"])
    [hour] = await store.list_rollups("hour", T0, T0 + timedelta(hours=1))
    assert hour.requests == 7 and hour.errors == {"upstream_error": 2} and hour.latency_ms.count == 6
    assert [r.requests for r in await store.list_rollups("day", T0, T0 + timedelta(days=1))] == [3]
    assert await unrolled(store, 10) == []


async def test_every_field_of_an_event_reads_back_as_written_by_every_read(store: Store) -> None:
    full = UsageEvent(
        "r-full", "t-a", "k-9", "u-3", "sim-large", "dep-2", "embeddings", 429, "rate_limited", Usage(11, 22, 5, True),
        33.5, 44.25, T0 + timedelta(minutes=7), 6.5, "pool-x", 0.75, 1234, "v7", True, True, 567,
    )  # fmt: skip
    bare = replace(event("r-bare", "t-a", "m", 1, 1), user_id=None, deployment=None, ttft_ms=None, queue_wait_ms=None)
    await store.insert_usage([full, bare])
    around = (T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert sorted(await store.usage_between(*around), key=lambda e: e.request_id) == [bare, full]
    assert await store.request_log("t-a", *around, RequestFilter(), 10) == [full, bare]
    assert [e async for events in store.unrolled_usage(10, 1) for e in events] == [bare, full]
    assert await store.unexported_usage(10) == [bare, full]


async def test_unrolled_events_come_oldest_first_a_page_at_a_time(store: Store) -> None:
    """A round of thousands is made into events a page at a time: requests run between the pages."""
    ids = [f"r{i}" for i in range(7)]
    await store.insert_usage([replace(event(i, "t-a", "m", 1, 1), created_at=T0 + timedelta(seconds=n))
                              for n, i in reversed(list(enumerate(ids)))])  # fmt: skip
    pages = [[e.request_id for e in events] async for events in store.unrolled_usage(5, 2)]
    assert pages == [["r0", "r1"], ["r2", "r3"], ["r4"]]
    assert await unrolled(store, 100, 3) == ids


async def test_marking_any_number_of_events_is_one_statement_whatever_the_count(store: Store) -> None:
    """A statement per list length would fill the drivers' statement caches (the memory grew); a
    statement per chunk of ids cost PostgreSQL a pass over the unmarked events each."""
    ids = [f"r{i:04}" for i in range(1 + 3 + 450 + 7)]
    await store.insert_usage([event(i, "t-a", "m", 1, 1) for i in ids])
    statements: list[str] = []
    if isinstance(store, SqlStore):
        listen = sa.event.listens_for(store._engine.sync_engine, "before_cursor_execute")
        listen(lambda _c, _k, statement, *_: statements.append(statement) if "usage_events SET" in statement else None)
    taken = [ids[:1], ids[1:4], ids[4:454]]
    for batch in taken:
        assert await store.merge_rollups([("hour", rollup(0, "m", len(batch)))], batch)
    await store.mark_exported(ids[:1], T0)
    await store.mark_exported(ids[1:454], T0)
    assert not await store.merge_rollups([("hour", rollup(0, "m", 1))], ids[450:])  # 450-453 are taken
    assert await unrolled(store, 100) == ids[454:]
    assert [e.request_id for e in await store.unexported_usage(100)] == ids[454:]
    if isinstance(store, SqlStore):  # one text marks rolled, one exported; one execution per call
        assert len(set(statements)) == 2 and len(statements) == len(taken) + 3


async def test_merging_rows_of_any_number_of_tenants_reads_them_with_one_statement(store: Store) -> None:
    """The stored rows a round adds into are read with the tenants as one parameter: a statement per
    number of tenants would fill the drivers' statement caches."""
    statements: set[str] = set()
    if isinstance(store, SqlStore):
        listen = sa.event.listens_for(store._engine.sync_engine, "before_cursor_execute")
        reads = ("SELECT", "FROM usage_rollups")
        listen(lambda _c, _k, statement, *_: statements.add(statement) if all(w in statement for w in reads) else None)
    for count in (1, 3, 7, 3):
        one = rollup(0, "m", 1)
        rows = [replace(one, key=replace(one.key, tenant_id=f"t-{n}")) for n in range(count)]
        assert await store.merge_rollups([("hour", row) for row in rows], [])
    merging = len(statements)
    tenants = {row.key.tenant_id: row.requests for row in await store.list_rollups("hour", T0, T0 + timedelta(hours=1))}
    assert tenants == {"t-0": 4, "t-1": 3, "t-2": 3, "t-3": 1, "t-4": 1, "t-5": 1, "t-6": 1}
    assert merging == (1 if isinstance(store, SqlStore) else 0)


async def test_a_round_of_many_keys_merges_into_stored_rows_a_page_at_a_time(store: Store) -> None:
    """Thousands of keys' rows were decoded, merged and encoded in one turn of the event loop; a page
    of rows at a time, each page adding into its own stored rows, counts the same."""
    one = rollup(0, "m", 1)
    rows = [
        replace(one, key=replace(one.key, tenant_id=f"t-{n % 3}", key_id=f"k-{n}")) for n in range(2 * MERGE_PAGE + 1)
    ]
    reads: list[str] = []
    if isinstance(store, SqlStore):
        listen = sa.event.listens_for(store._engine.sync_engine, "before_cursor_execute")
        reading = ("SELECT", "FROM usage_rollups")
        listen(lambda _c, _k, statement, *_: reads.append(statement) if all(w in statement for w in reading) else None)
    for _ in range(2):
        assert await store.merge_rollups([("hour", row) for row in rows], [])
    merging = len(reads)
    stored = await store.list_rollups("hour", T0, T0 + timedelta(hours=1))
    assert len(stored) == len(rows) and {row.requests for row in stored} == {2}
    assert {row.latency_ms.count for row in stored} == {6}
    assert merging == (2 * 3 if isinstance(store, SqlStore) else 0)  # 3 pages a merge


async def test_month_rows_sum_the_days_incrementally_and_when_rebuilt(store: Store) -> None:
    november, december = T0.replace(day=1, hour=0), T0.replace(month=12, day=1, hour=0)
    events = [
        replace(event("r1", "t-a", "m", 10, 5), created_at=T0, ttft_slo_met=True),
        replace(event("r2", "t-a", "m", 1, 1, status=502), created_at=T0 + timedelta(days=20)),
        replace(event("r3", "t-a", "m", 7, 0), created_at=december, ttft_slo_met=False),
    ]
    job = RollupJob(store, lambda _: 0, {})
    await store.insert_usage(events[:2])
    await job.roll_pending()
    await store.insert_usage(events[2:])
    await job.roll_pending()

    async def months() -> list[tuple[object, ...]]:
        rows = await store.list_rollups("month", november, december + timedelta(days=31))
        return [(r.key.bucket, r.requests, r.prompt_tokens, r.errors, r.slo_requests, r.slo_met) for r in rows]

    expected = [(november, 2, 11, {"upstream_error": 1}, 1, 1), (december, 1, 7, {}, 1, 0)]
    assert await months() == expected
    [total] = await store.tenant_totals("month", november, december)
    assert (total.requests, total.errors, total.prompt_tokens, total.slo_requests, total.slo_met) == (2, 1, 11, 1, 1)
    await store.replace_rollups("month", november, december, [])  # lost, as if written before month rows existed
    await job.rebuild(T0, T0 + timedelta(hours=1))  # one hour of November: its whole month is summed again
    assert await months() == expected


async def test_prompts_and_answers_are_one_tenants_and_go_with_its_usage(store: Store) -> None:
    old = RequestContent("r-old", "t-acme", T0 - timedelta(days=40), '{"messages": []}', "an old answer")
    new = RequestContent("r-new", "t-acme", T0, '{"messages": [{"content": "hi"}]}', "hello ✓")
    await store.insert_contents([old, new])
    await store.insert_contents([new])  # written twice, kept once
    assert await store.request_content("t-acme", "r-new") == new
    assert await store.request_content("t-other", "r-new") is None  # another tenant's request is not there
    await store.create_tenant(tenant("acme"))
    await store.purge_usage(T0, default_days=30)
    assert await store.request_content("t-acme", "r-old") is None and await store.request_content("t-acme", "r-new")
    deleted = await store.delete_tenant("t-acme", T0)
    assert deleted is not None and deleted["request_contents"] == 1
    assert await store.request_content("t-acme", "r-new") is None


async def test_credit_balances_count_unexpired_grants_less_what_invoices_took(store: Store) -> None:
    await store.add_credit_grant(CreditGrant("g1", "t-a", 5_000_000, T0, None, ""))
    await store.add_credit_grant(CreditGrant("g2", "t-a", 1_000_000, T0, T0 + timedelta(days=1), ""))
    await store.add_credit_grant(CreditGrant("g3", "t-b", 7, T0, None, ""))
    await store.finalize_invoice(FinalInvoice("i1", "t-a", "2026-11", 0, {}, T0, (("g1", 2_000_000),)))
    assert await store.credit_balances(T0) == {"t-a": 4_000_000, "t-b": 7}
    assert await store.credit_balances(T0 + timedelta(days=2)) == {"t-a": 3_000_000, "t-b": 7}  # g2 expired
