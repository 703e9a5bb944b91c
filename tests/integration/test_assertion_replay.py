"""An end-user assertion is accepted once: by any instance, when the instances share Redis."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import pytest
from joserfc import jwt
from joserfc.jwk import OKPKey

from tenantgate.access.audit import AuditLog
from tenantgate.access.callers import SYSTEM
from tenantgate.auth.assertions import EndUserAssertions
from tenantgate.auth.directory import KeyDirectory
from tenantgate.auth.redis_replay import RedisSeenOnce
from tenantgate.auth.replay import MemorySeenOnce
from tenantgate.domain import Principal
from tenantgate.errors import AuthenticationFailed, StoreUnavailable
from tenantgate.storage.memory import MemoryStore
from tenantgate.tenancy import TenancyService


async def edge_tenant(store: MemoryStore) -> tuple[Principal, Callable[[], str]]:
    """A tenant with a registered proxy key, its service key's principal, and a way to sign assertions."""
    tenant = await TenancyService(store, None, frozenset({"starter"}), AuditLog(store)).create_tenant(SYSTEM, "edge")
    signer = OKPKey.generate_key("Ed25519")
    await store.set_proxy_key(tenant.id, signer.as_dict(private=False))
    principal = Principal(tenant.id, "edge", "k1", None, "starter", None, None)

    def assertion() -> str:
        now = int(time.time())
        claims = {"iss": "tenantgate-proxy:edge", "aud": "tenantgate", "iat": now, "exp": now + 60,
                  "jti": secrets.token_hex(8), "email": "eve@edge.example"}  # fmt: skip
        return jwt.encode({"alg": "Ed25519"}, claims, signer, algorithms=["Ed25519"])

    return principal, assertion


async def test_instances_sharing_redis_accept_each_assertion_once(redis_url: str) -> None:
    store = MemoryStore()
    principal, assertion = await edge_tenant(store)
    guards = [RedisSeenOnce.from_url(redis_url) for _ in range(2)]
    first, second = (EndUserAssertions(store, KeyDirectory(store), AuditLog(store), guard) for guard in guards)
    try:
        token = assertion()
        assert (await first.end_user(principal, token)).user_id is not None
        with pytest.raises(AuthenticationFailed, match="replayed"):
            await second.end_user(principal, token)  # another instance, the same assertion
        assert (await second.end_user(principal, assertion())).user_id is not None  # a fresh one goes through
    finally:
        for guard in guards:
            await guard.close()


async def test_one_instance_without_redis_accepts_each_assertion_once() -> None:
    store = MemoryStore()
    principal, assertion = await edge_tenant(store)
    assertions = EndUserAssertions(store, KeyDirectory(store), AuditLog(store), MemorySeenOnce())
    token = assertion()
    await assertions.end_user(principal, token)
    with pytest.raises(AuthenticationFailed, match="replayed"):
        await assertions.end_user(principal, token)


async def test_the_memory_guard_forgets_only_what_expired() -> None:
    now = [1_000.0]
    guard = MemorySeenOnce(clock=lambda: now[0])
    for n in range(1000):
        assert await guard.first_time("t", f"old-{n}", until=1_010.0)
    assert await guard.first_time("t", "live", until=2_000.0)  # the table is pruned now: nothing expired yet
    assert not await guard.first_time("t", "old-0", until=1_010.0)
    now[0] = 1_500.0
    for n in range(2000):
        await guard.first_time("t", f"new-{n}", until=3_000.0)
    assert not await guard.first_time("t", "live", until=2_000.0)  # still remembered after pruning


async def test_an_unreachable_redis_refuses_rather_than_lets_a_replay_through() -> None:
    guard = RedisSeenOnce.from_url("redis://127.0.0.1:1/0", timeout_s=0.5)
    try:
        with pytest.raises(StoreUnavailable, match="unreachable"):
            await guard.first_time("t", "jti", time.time() + 60)
    finally:
        await guard.close()
