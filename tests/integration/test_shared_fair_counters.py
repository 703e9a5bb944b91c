"""The fair queue's counters shared through the real Redis: two instances' views of one deployment."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tenantgate.scheduling.shared_counters import Changes, FairCounterSync


@pytest.fixture
async def instances(redis_url: str) -> AsyncIterator[tuple[FairCounterSync, FairCounterSync, str]]:
    one, other = FairCounterSync(Redis.from_url(redis_url)), FairCounterSync(Redis.from_url(redis_url))
    deployment = f"test-{secrets.token_hex(4)}"
    yield one, other, deployment
    await one.close()
    await other.close()


async def test_service_on_one_instance_counts_on_the_other_after_a_sync(
    instances: tuple[FairCounterSync, FairCounterSync, str],
) -> None:
    one, other, deployment = instances
    here, there = one.for_deployment(deployment), other.for_deployment(deployment)
    here.add("acme", 100.0)
    there.add("acme", 50.0)
    there.add("solo", 10.0)
    assert (here.get("acme"), there.get("acme")) == (100.0, 50.0)  # each sees its own until a sync
    await one.sync()
    await other.sync()
    await one.sync()
    assert here.get("acme") == there.get("acme") == 150.0
    assert here.get("solo") == 0.0  # never dealt with here: not read back (it would be once it is)
    here.add("acme", 5.0)  # changed since the last sync: on top of what Redis gave
    assert here.get("acme") == 155.0


async def test_two_instances_lifting_one_tenant_lift_it_once(
    instances: tuple[FairCounterSync, FairCounterSync, str],
) -> None:
    one, other, deployment = instances
    here, there = one.for_deployment(deployment), other.for_deployment(deployment)
    here.raise_to("late", 500.0)  # both see it start waiting, with the same least counter
    there.raise_to("late", 500.0)
    here.add("late", 20.0)
    there.add("late", 30.0)
    await one.sync()
    await other.sync()
    await one.sync()
    assert here.get("late") == there.get("late") == 550.0  # lifted to 500 once, then both services


async def test_a_batch_sent_again_after_its_answer_was_lost_is_applied_once(
    instances: tuple[FairCounterSync, FairCounterSync, str],
) -> None:
    one, _, deployment = instances
    counters = one.for_deployment(deployment)
    counters.add("acme", 40.0)
    sent, batch = counters._pending, "lost-answer"  # what a sync sends, under its id
    counters._sending, counters._pending, counters._batch = sent, type(sent)(), batch
    await one.sync()  # applied; suppose its answer never came back: the same batch goes again
    counters._sending, counters._batch = sent, batch
    await one.sync()
    assert counters.get("acme") == 40.0


async def test_changes_kept_while_redis_fails_are_sent_later(redis_url: str) -> None:
    unreachable = FairCounterSync(Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2))
    counters = unreachable.for_deployment(f"test-{secrets.token_hex(4)}")
    counters.add("acme", 7.0)
    await unreachable.sync()  # fails: kept
    counters.raise_to("acme", 100.0)
    counters.add("acme", 1.0)
    assert counters.get("acme") == 101.0
    await unreachable.close()


def test_changes_compose_as_applied_one_after_the_other() -> None:
    first = Changes(floors={"t": 10.0}, adds={"t": 5.0})
    later = Changes(floors={"t": 30.0}, adds={"t": 2.0})
    for start in (0.0, 12.0, 40.0):
        assert first.then(later).apply("t", start) == later.apply("t", first.apply("t", start))


async def test_more_tenants_than_lua_unpacks_at_once_are_read_back(
    instances: tuple[FairCounterSync, FairCounterSync, str],
) -> None:
    """A deployment that served 9,000 tenants in the last minutes (Lua unpacks at most ~8,000 values
    in one call): every one is sent and read back, and none is left out of the shared counters."""
    one, other, deployment = instances
    here, there = one.for_deployment(deployment), other.for_deployment(deployment)
    tenants = [f"t{i}" for i in range(9_000)]
    for number, tenant in enumerate(tenants):
        here.add(tenant, float(number))
        there.add(tenant, 1.0)
    await one.sync()
    await other.sync()
    await one.sync()
    assert [here.get(t) for t in tenants] == [there.get(t) for t in tenants] == [n + 1.0 for n in range(9_000)]
