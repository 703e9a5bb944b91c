"""Management tokens and the audit log, the same in every store: in-memory, SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from tenantgate.domain import (
    AuditEvent,
    Credential,
    ManagementToken,
    Operator,
    PromptTemplate,
    Role,
    TenantStatus,
    User,
)
from tenantgate.errors import Conflict
from tenantgate.storage.base import Store
from tests.integration.test_store_suite import T0, event, key, tenant


def token(token_id: str, tenant_id: str | None, user_id: str | None = None, role: str | None = None) -> ManagementToken:
    return ManagementToken(token_id, "ci", "0" * 64, T0, tenant_id, user_id, role)


async def test_tokens_are_listed_by_realm_revoked_once_and_go_with_their_user(store: Store) -> None:
    await store.create_tenant(tenant("acme"))
    await store.create_tenant(tenant("solo"))
    await store.create_user(User("u1", "t-acme", "a@acme.example", "A", Role.OWNER, T0))
    await store.create_token(token("p1", None, role="platform-viewer"))
    await store.create_token(token("a1", "t-acme", "u1"))
    await store.create_token(token("s1", "t-solo"))
    assert [t.id for t in await store.list_tokens(None)] == ["p1"]
    assert [t.id for t in await store.list_tokens("t-acme")] == ["a1"]
    assert [t.id for t in await store.list_tokens("t-acme", "u1")] == ["a1"]
    assert await store.list_tokens("t-solo", "u1") == []
    revoked = await store.revoke_token("p1", T0 + timedelta(hours=1))
    again = await store.revoke_token("p1", T0 + timedelta(hours=2))
    assert revoked is not None and again is not None and again.revoked_at == T0 + timedelta(hours=1)
    assert (await store.get_token("p1")) == revoked and await store.revoke_token("nope", T0) is None
    await store.delete_user("t-acme", "u1", T0)
    assert await store.get_token("a1") is None


async def test_the_audit_log_reads_newest_first_per_tenant_within_a_range(store: Store) -> None:
    def audit(event_id: str, minutes: int, tenant_id: str | None) -> AuditEvent:
        return AuditEvent(event_id, T0 + timedelta(minutes=minutes), "admin token", "platform-admin", "key.create",
                          "key k", tenant_id, None, {"name": "ci", "limits": {"rpm": 5}}, "127.0.0.1")  # fmt: skip

    for entry in (audit("e1", 1, "t-acme"), audit("e2", 2, None), audit("e3", 3, "t-acme"), audit("e4", 9, "t-acme")):
        await store.add_audit(entry)
    window = (T0, T0 + timedelta(minutes=5))
    assert [e.id for e in await store.list_audit("t-acme", *window, limit=10)] == ["e3", "e1"]
    assert [e.id for e in await store.list_audit(None, *window, limit=2)] == ["e3", "e2"]
    [first] = await store.list_audit("t-acme", T0, T0 + timedelta(minutes=2), limit=10)
    assert first == audit("e1", 1, "t-acme")  # every field round-trips, JSON included


async def test_operators_are_unique_by_email_and_credentials_replace_each_other(store: Store) -> None:
    await store.create_operator(Operator("o1", "ops@platform.example", "Ops", "platform-admin", T0))
    with pytest.raises(Conflict):
        await store.create_operator(Operator("o2", "ops@platform.example", "Other", "platform-viewer", T0))
    assert await store.get_operator_by_email("ops@platform.example") == await store.get_operator("o1")
    assert [o.id for o in await store.list_operators()] == ["o1"]
    await store.set_credential(Credential("o1", "$argon2id$first", 0, None, T0))
    locked = Credential("o1", "$argon2id$first", 3, T0 + timedelta(minutes=15), T0)
    await store.set_credential(locked)
    assert await store.get_credential("o1") == locked and await store.get_credential("o2") is None


async def test_deleting_a_tenant_takes_all_its_data_and_leaves_a_tombstone(store: Store) -> None:
    await store.create_tenant(tenant("acme"))
    await store.create_tenant(tenant("solo"))
    await store.create_user(User("u1", "t-acme", "a@acme.example", "A", Role.OWNER, T0))
    await store.create_user(User("u2", "t-solo", "b@solo.example", "B", Role.OWNER, T0))
    await store.set_credential(Credential("u1", "$argon2id$x", 0, None, T0))
    await store.create_token(token("a1", "t-acme", "u1"))
    await store.create_key(key("aaaaaaaaaaaa", "t-acme"))
    await store.create_key(key("bbbbbbbbbbbb", "t-solo"))
    await store.insert_usage([event("r1", "t-acme", "m", 1, 1), event("r2", "t-solo", "m", 1, 1)])
    await store.set_upstream_key("t-acme", "openai", "sealed-a", T0)
    await store.set_upstream_key("t-solo", "openai", "sealed-s", T0)
    at = T0 + timedelta(days=1)
    deleted = await store.delete_tenant("t-acme", at)
    assert deleted is not None
    assert {k: v for k, v in deleted.items() if v} == {"usage_events": 1, "management_tokens": 1, "api_keys": 1,
                                                        "users": 1, "tenant_upstream_keys": 1}  # fmt: skip
    assert [(k.tenant_id, k.sealed_key) for k in await store.upstream_keys()] == [("t-solo", "sealed-s")]
    assert await store.get_key("aaaaaaaaaaaa") is None and await store.get_credential("u1") is None
    assert await store.get_token("a1") is None and await store.list_users("t-acme") == []
    assert [e.request_id for e in await store.usage_between(T0 - timedelta(days=1), at)] == ["r2"]
    assert [t.slug for t in await store.list_tenants()] == ["solo"]
    gone = await store.get_tenant("t-acme")
    assert gone is not None and gone.status is TenantStatus.DELETED and gone.updated_at == at
    assert gone in (await store.changes_since(at)).tenants  # other instances' caches learn of it
    await store.create_tenant(replace(tenant("acme"), id="t-acme-2"))  # the name is free again
    assert await store.delete_tenant("t-acme", at) is None
    assert await store.get_key("bbbbbbbbbbbb") is not None  # the other tenant is whole


async def test_a_tenants_own_upstream_keys_are_kept_replaced_and_removed(store: Store) -> None:
    await store.create_tenant(tenant("acme"))
    await store.set_upstream_key("t-acme", "openai", "sealed-1", T0)
    await store.set_upstream_key("t-acme", "claude", "sealed-2", T0)
    await store.set_upstream_key("t-acme", "openai", "sealed-3", T0 + timedelta(minutes=1))
    held = sorted((k.deployment, k.sealed_key, k.updated_at) for k in await store.upstream_keys())
    assert held == [("claude", "sealed-2", T0), ("openai", "sealed-3", T0 + timedelta(minutes=1))]
    await store.set_upstream_key("t-acme", "claude", None, T0)
    assert [k.deployment for k in await store.upstream_keys()] == ["openai"]


async def test_prompt_templates_are_kept_per_version_and_go_with_their_tenant(store: Store) -> None:
    await store.create_tenant(tenant("acme"))
    system = ({"role": "system", "content": "You support {{product}}."},)
    await store.add_template(PromptTemplate("t-acme", "support", 1, system, T0, "owner@acme"))
    await store.add_template(PromptTemplate("t-acme", "support", 2, system * 2, T0, "owner@acme"))
    with pytest.raises(Conflict):
        await store.add_template(PromptTemplate("t-acme", "support", 2, system, T0, "someone"))
    held = sorted((t.name, t.version, len(t.messages), t.created_at) for t in await store.templates())
    assert held == [("support", 1, 1, T0), ("support", 2, 2, T0)]
    later = T0 + timedelta(hours=1)
    assert await store.delete_template("t-acme", "support", 2, later)
    assert not await store.delete_template("t-acme", "support", 2, later)  # once
    assert not await store.delete_template("t-acme", "support", 7, later)
    marked = sorted((t.version, t.deleted_at) for t in await store.templates())
    assert marked == [(1, None), (2, later)]  # kept, marked: other instances learn of the deletion
    deleted = await store.delete_tenant("t-acme", T0 + timedelta(days=1))
    assert deleted is not None and deleted["prompt_templates"] == 2 and await store.templates() == []
