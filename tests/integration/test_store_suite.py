"""One behavioural suite for every store: in-memory, SQLite and real PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tenantgate.billing.records import Rollup, RollupKey, UsageTotals
from tenantgate.domain import (
    ApiKey,
    Incident,
    IncidentState,
    RequestFilter,
    Role,
    Tenant,
    TenantMode,
    TenantStatus,
    Usage,
    UsageEvent,
    User,
)
from tenantgate.errors import Conflict
from tenantgate.storage.base import Store

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
EVERY_REQUEST = RequestFilter()


def tenant(slug: str, at: datetime = T0) -> Tenant:
    return Tenant(
        id="t-" + slug, slug=slug, name=slug.title(), mode=TenantMode.ENTERPRISE, plan="growth", region=None,
        status=TenantStatus.ACTIVE, allowed_models=("sim-small",), created_at=at, updated_at=at,
    )  # fmt: skip


def key(key_id: str, tenant_id: str, at: datetime = T0) -> ApiKey:
    return ApiKey(
        id=key_id, tenant_id=tenant_id, name="k", secret_hash="0" * 64, user_id=None, models=None,
        expires_at=None, revoked_at=None, last_used_at=None, created_at=at, updated_at=at,
    )  # fmt: skip


def event(request_id: str, tenant_id: str, model: str, prompt: int, completion: int, status: int = 200) -> UsageEvent:
    return UsageEvent(
        request_id=request_id, tenant_id=tenant_id, key_id="k1", user_id=None, model=model, deployment="d",
        endpoint="chat/completions", status=status, error_type=None if status < 400 else "upstream_error",
        usage=Usage(prompt, completion), ttft_ms=1.0, latency_ms=2.0, created_at=T0,
    )  # fmt: skip


async def test_tenants_round_trip_and_unique_slug(store: Store) -> None:
    await store.create_tenant(tenant("acme"))
    await store.create_tenant(tenant("solo"))
    assert [t.slug for t in await store.list_tenants()] == ["acme", "solo"]
    loaded = await store.get_tenant_by_slug("acme")
    assert loaded == tenant("acme")
    assert await store.get_tenant("t-solo") == tenant("solo")
    assert await store.get_tenant_by_slug("nope") is None
    with pytest.raises(Conflict):
        await store.create_tenant(replace(tenant("acme"), id="t-other"))


async def test_update_tenant(store: Store) -> None:
    await store.create_tenant(tenant("acme"))
    later = T0 + timedelta(minutes=5)
    changed = replace(tenant("acme"), status=TenantStatus.SUSPENDED, updated_at=later, log_content=True)
    await store.update_tenant(changed)
    loaded = await store.get_tenant("t-acme")
    assert loaded is not None and loaded.status is TenantStatus.SUSPENDED and loaded.updated_at == later
    assert loaded.log_content


async def test_users_scoped_by_tenant(store: Store) -> None:
    await store.create_tenant(tenant("acme"))
    await store.create_tenant(tenant("solo"))
    alice = User("u1", "t-acme", "alice@acme.test", "Alice", Role.OWNER, T0)
    await store.create_user(alice)
    await store.create_user(User("u2", "t-solo", "alice@acme.test", "Alice", Role.DEVELOPER, T0))
    assert await store.list_users("t-acme") == [alice]
    with pytest.raises(Conflict):
        await store.create_user(User("u3", "t-acme", "alice@acme.test", "Again", Role.ANALYST, T0))


async def test_deleting_a_user_revokes_and_unbinds_its_keys_within_its_tenant_only(store: Store) -> None:
    await store.create_tenant(tenant("acme"))
    await store.create_tenant(tenant("solo"))
    await store.create_user(User("u1", "t-acme", "bob@acme.test", "Bob", Role.DEVELOPER, T0))
    await store.create_key(replace(key("aaaaaaaaaaaa", "t-acme"), user_id="u1"))
    await store.create_key(key("bbbbbbbbbbbb", "t-acme"))
    at = T0 + timedelta(hours=1)
    assert await store.delete_user("t-solo", "u1", at) is None  # another tenant's user
    revoked = await store.delete_user("t-acme", "u1", at)
    assert revoked is not None and [(k.id, k.revoked_at, k.user_id) for k in revoked] == [("aaaaaaaaaaaa", at, None)]
    assert await store.get_user("u1") is None and await store.list_users("t-acme") == []
    assert (await store.get_key("bbbbbbbbbbbb")) == key("bbbbbbbbbbbb", "t-acme")  # not the user's: untouched
    assert await store.delete_user("t-acme", "u1", at) is None


async def test_keys_lookup_list_and_revoke_is_tenant_scoped(store: Store) -> None:
    await store.create_tenant(tenant("acme"))
    await store.create_tenant(tenant("solo"))
    await store.create_key(key("aaaaaaaaaaaa", "t-acme"))
    await store.create_key(key("bbbbbbbbbbbb", "t-solo"))
    assert (await store.get_key("aaaaaaaaaaaa")) == key("aaaaaaaaaaaa", "t-acme")
    assert [k.id for k in await store.list_keys("t-acme")] == ["aaaaaaaaaaaa"]
    revoke_at = T0 + timedelta(hours=1)
    assert await store.revoke_key("t-solo", "aaaaaaaaaaaa", revoke_at) is None  # another tenant's key
    revoked = await store.revoke_key("t-acme", "aaaaaaaaaaaa", revoke_at)
    assert revoked is not None and revoked.revoked_at == revoke_at and revoked.updated_at == revoke_at
    again = await store.revoke_key("t-acme", "aaaaaaaaaaaa", revoke_at + timedelta(hours=1))
    assert again is not None and again.revoked_at == revoke_at  # first revocation time is kept
    assert sorted(await store.key_ids()) == ["aaaaaaaaaaaa", "bbbbbbbbbbbb"]  # every tenant's, revoked included


async def test_a_rotation_keeps_the_old_secret_until_its_grace_ends_and_is_tenant_scoped(store: Store) -> None:
    await store.create_tenant(tenant("acme"))
    await store.create_key(key("aaaaaaaaaaaa", "t-acme"))
    old = key("aaaaaaaaaaaa", "t-acme").secret_hash
    at, until = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    assert await store.rotate_key("t-solo", "aaaaaaaaaaaa", "f" * 64, until, at) is None  # another tenant's key
    rotated = await store.rotate_key("t-acme", "aaaaaaaaaaaa", "f" * 64, until, at)
    assert rotated is not None and (rotated.secret_hash, rotated.previous_secret_hash) == ("f" * 64, old)
    assert rotated.previous_valid_until == until and rotated.updated_at == at
    assert await store.get_key("aaaaaaaaaaaa") == rotated
    assert rotated.accepts(lambda stored: stored == old, at) and not rotated.accepts(
        lambda stored: stored == old, until
    )
    await store.revoke_key("t-acme", "aaaaaaaaaaaa", at)
    after = await store.rotate_key("t-acme", "aaaaaaaaaaaa", "e" * 64, until, at)
    assert after is not None and after.secret_hash == "f" * 64  # a revoked key gets no new secret


async def test_changes_since_returns_only_newer_rows(store: Store) -> None:
    await store.create_tenant(tenant("acme"))
    await store.create_key(key("aaaaaaaaaaaa", "t-acme"))
    later = T0 + timedelta(minutes=10)
    await store.create_key(key("cccccccccccc", "t-acme", at=later))
    changes = await store.changes_since(T0 + timedelta(minutes=1))
    assert [k.id for k in changes.keys] == ["cccccccccccc"]
    assert changes.tenants == ()


async def test_touch_keys_keeps_latest(store: Store) -> None:
    await store.create_tenant(tenant("acme"))
    await store.create_key(key("aaaaaaaaaaaa", "t-acme"))
    await store.touch_keys({"aaaaaaaaaaaa": T0 + timedelta(minutes=2)})
    await store.touch_keys({"aaaaaaaaaaaa": T0 + timedelta(minutes=1)})
    loaded = await store.get_key("aaaaaaaaaaaa")
    assert loaded is not None and loaded.last_used_at == T0 + timedelta(minutes=2)


async def test_usage_is_idempotent_and_kept_per_tenant(store: Store) -> None:
    batch = [
        replace(event("r1", "t-acme", "sim-small", 10, 5), ttft_slo_met=True),
        replace(event("r2", "t-acme", "sim-large", 7, 3), ttft_slo_met=False),
        event("r3", "t-acme", "sim-small", 1, 1, status=502),
        event("r4", "t-solo", "sim-small", 100, 100),
    ]
    await store.insert_usage(batch)
    await store.insert_usage(batch[:2])  # a retried batch counts once
    kept = await store.usage_between(T0 - timedelta(days=1), T0 + timedelta(days=1), "t-acme")
    assert sorted((e.request_id, e.model, e.status, e.ttft_slo_met) for e in kept) == [
        ("r1", "sim-small", 200, True), ("r2", "sim-large", 200, False), ("r3", "sim-small", 502, None)
    ]  # fmt: skip
    assert await store.period_usage("tenant", "t-acme", T0 - timedelta(days=1)) == (10 + 5 + 7 + 3 + 1 + 1, 0)
    assert await store.usage_between(T0 + timedelta(seconds=1), T0 + timedelta(days=1), "t-acme") == []


async def test_the_request_log_is_one_tenants_newest_first_filtered_and_bounded(store: Store) -> None:
    def at(request_id: str, tenant_id: str, minute: int, **changes: object) -> UsageEvent:
        made = replace(event(request_id, tenant_id, "sim-small", 1, 1), created_at=T0 + timedelta(minutes=minute))
        return replace(made, **changes)  # type: ignore[arg-type]

    await store.insert_usage([
        at("r1", "t-acme", 1), at("r2", "t-acme", 2, model="sim-large"), at("r3", "t-acme", 3, status=502),
        at("r4", "t-acme", 4, key_id="k2", user_id="u1"), at("r5", "t-solo", 5),
    ])  # fmt: skip
    since, until = T0, T0 + timedelta(hours=1)

    async def ids(matching: RequestFilter = EVERY_REQUEST, limit: int = 10, end: datetime = until) -> list[str]:
        return [e.request_id for e in await store.request_log("t-acme", since, end, matching, limit)]

    assert await ids() == ["r4", "r3", "r2", "r1"]
    assert await ids(limit=2) == ["r4", "r3"]
    assert await ids(end=T0 + timedelta(minutes=3)) == ["r2", "r1"]  # until is exclusive
    await store.insert_usage([at("r2b", "t-acme", 2)])  # the same moment as r2
    page = await ids(limit=3)
    assert page == ["r4", "r3", "r2b"]
    after = RequestFilter(older_than=(T0 + timedelta(minutes=2), "r2b"))  # the next page starts after its last line
    assert await ids(after) == ["r2", "r1"]
    assert await ids(RequestFilter(model="sim-large")) == ["r2"]
    assert await ids(RequestFilter(key_id="k2")) == ["r4"]
    assert await ids(RequestFilter(user_id="u1")) == ["r4"]
    assert await ids(RequestFilter(failed_only=True)) == ["r3"]
    assert await ids(RequestFilter(model="sim-small", older_than=(T0 + timedelta(minutes=4), "r4"))) == [
        "r3",
        "r2b",
        "r1",
    ]
    assert await ids(RequestFilter(request_id="r5")) == []  # another tenant's request is not in this log


async def test_incidents_are_saved_replaced_by_id_and_listed_newest_first(store: Store) -> None:
    first = Incident("i1", "Slow answers", "", IncidentState.INVESTIGATING, T0, T0)
    second = Incident("i2", "Pool eu down", "Failing over", IncidentState.IDENTIFIED, T0 + timedelta(hours=1),
                      T0 + timedelta(hours=1))  # fmt: skip
    await store.save_incident(first)
    await store.save_incident(second)
    resolved = replace(first, state=IncidentState.RESOLVED, resolved_at=T0 + timedelta(hours=2))
    await store.save_incident(resolved)
    assert await store.list_incidents(10) == [second, resolved]
    assert await store.list_incidents(1) == [second]
    assert await store.list_incidents(10, resolved_since=T0 + timedelta(hours=3)) == [second]  # open ones stay
    assert await store.get_incident("i1") == resolved and await store.get_incident("nope") is None


async def test_tenant_totals_sum_each_tenant_and_model_in_the_range(store: Store) -> None:
    def rollup(day: int, tenant_id: str, key_id: str, model: str, requests: int, **more: Any) -> Rollup:
        key = RollupKey(T0 + timedelta(days=day), tenant_id, key_id, "", "chat/completions", model, "d", "p")
        return Rollup(key, requests, prompt_tokens=10 * requests, charged_micros=7 * requests, **more)

    rows = [
        rollup(0, "t-acme", "k1", "small", 2, errors={"upstream_error": 1}),
        rollup(1, "t-acme", "k2", "small", 3, rejected={"rpm": 4}),
        rollup(1, "t-acme", "k1", "large", 5, slo_requests=4, slo_met=3, queue_waits=5, queue_wait_ms_sum=12.5),
        rollup(2, "t-solo", "k3", "small", 1),
        rollup(40, "t-solo", "k3", "small", 100),  # outside the range
    ]
    await store.replace_rollups("day", T0 - timedelta(days=1), T0 + timedelta(days=60), rows)
    totals = await store.tenant_totals("day", T0, T0 + timedelta(days=30))
    assert await store.error_counts("day", T0, T0 + timedelta(days=30)) == {(T0, "upstream_error"): 1}
    assert sorted(totals, key=lambda t: (t.tenant_id, t.model)) == [
        UsageTotals(
            "t-acme",
            "large",
            5,
            0,
            0,
            50,
            0,
            0.0,
            35,
            0,
            slo_requests=4,
            slo_met=3,
            queue_waits=5,
            queue_wait_ms_sum=12.5,
        ),
        UsageTotals("t-acme", "small", 5, 1, 4, 50, 0, 0.0, 35, 0),
        UsageTotals("t-solo", "small", 1, 0, 0, 10, 0, 0.0, 7, 0),
    ]


def test_head_revision_constant_matches_the_migrations() -> None:
    from alembic.script import ScriptDirectory

    from tenantgate.storage.migrate import HEAD_REVISION, alembic_config

    assert ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() == HEAD_REVISION


def test_ensure_schema_creates_then_leaves_a_current_database(tmp_path: Path) -> None:
    from tenantgate.storage.migrate import ensure_schema

    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    ensure_schema(url)  # creates
    ensure_schema(url)  # already at head: nothing to do
    import sqlite3

    tables = {r[0] for r in sqlite3.connect(tmp_path / "fresh.db").execute("SELECT name FROM sqlite_master")}
    assert {"tenants", "api_keys", "users", "usage_events", "alembic_version"} <= tables


async def test_limits_round_trip(store: Store) -> None:
    from tenantgate.domain import Limits

    limited = Limits(rpm=50, concurrency=4, budget_micros=5_000_000)
    await store.create_tenant(replace(tenant("acme"), limits=limited))
    await store.create_key(replace(key("aaaaaaaaaaaa", "t-acme"), limits=Limits(tpm=1000)))
    loaded_tenant = await store.get_tenant("t-acme")
    loaded_key = await store.get_key("aaaaaaaaaaaa")
    assert loaded_tenant is not None and loaded_tenant.limits == limited
    assert loaded_key is not None and loaded_key.limits == Limits(tpm=1000)


async def test_user_limits_update_and_changes(store: Store) -> None:
    from tenantgate.domain import Limits

    await store.create_tenant(tenant("acme"))
    alice = User("u1", "t-acme", "alice@acme.test", "Alice", Role.DEVELOPER, T0, limits=Limits(rpm=5), updated_at=T0)
    await store.create_user(alice)
    assert await store.get_user("u1") == alice
    assert await store.get_user("nobody") is None
    later = T0 + timedelta(minutes=3)
    await store.update_user(replace(alice, role=Role.OWNER, limits=Limits(rpm=9), updated_at=later))
    loaded = await store.get_user("u1")
    assert loaded is not None and loaded.role is Role.OWNER and loaded.limits == Limits(rpm=9)
    changes = await store.changes_since(T0 + timedelta(minutes=1))
    assert [u.id for u in changes.users] == ["u1"]


async def test_notifications_are_stored_once_per_tenant_kind_and_period(store: Store) -> None:
    from tenantgate.domain import Notification

    first = Notification("n1", "t-acme", "included_tokens_reached", "2026-11", "used", T0)
    assert await store.add_notification(first) is True
    assert await store.add_notification(replace(first, id="n2")) is False  # same month: once
    assert await store.add_notification(replace(first, id="n3", period="2026-12")) is True
    assert [n.id for n in await store.list_notifications("t-acme")] == ["n1", "n3"]
    assert await store.list_notifications("t-other") == []
