"""Velocity alerts: a jump far above a tenant's or key's own baseline is told once, to the tenant and
the operator; a new tenant's first burst, a steady tenant and a small jump are not."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from tenantgate.metering.velocity import VelocityWatch
from tenantgate.notifications import Notifier
from tenantgate.storage.memory import MemoryStore


class Minutes:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # on a minute boundary

    def __call__(self) -> float:
        return self.now

    def next_minute(self) -> None:
        self.now += 60


async def traffic(watch: VelocityWatch, clock: Minutes, per_minute: list[int], key: str = "k1") -> None:
    for count in per_minute:
        for _ in range(count):
            watch.seen("t1", "acme", key)
        clock.next_minute()


async def test_a_jump_far_above_the_baseline_alerts_the_tenant_and_the_operator_once() -> None:
    store, clock, registry = MemoryStore(), Minutes(), CollectorRegistry()
    notifier = Notifier(store)
    watch = VelocityWatch(notifier, registry, factor=10, min_per_minute=50, horizon_min=20, clock=clock)
    await traffic(watch, clock, [20] * 30)  # a steady 20 a minute
    await traffic(watch, clock, [250, 250])  # a leaked key: 250 a minute, twice in the same hour
    await notifier.drain()
    kinds = sorted(n.kind for n in await store.list_notifications("t1"))
    assert kinds == ["traffic_spike", "traffic_spike_key_k1"]  # the tenant's and the key's, once each
    message = next(n.message for n in await store.list_notifications("t1") if n.kind == "traffic_spike_key_k1")
    assert "API key k1 sent 200 requests" in message and "usual 20 a minute" in message  # crossed 10 x 20
    assert registry.get_sample_value("tenantgate_traffic_spikes_total", {"scope": "key"}) == 1


async def test_no_alert_for_steady_traffic_a_small_jump_or_a_new_tenants_first_burst() -> None:
    store, clock = MemoryStore(), Minutes()
    notifier = Notifier(store)
    watch = VelocityWatch(notifier, None, factor=10, min_per_minute=50, horizon_min=20, clock=clock)
    await traffic(watch, clock, [400], key="new")  # no history yet: not a jump
    await traffic(watch, clock, [20] * 30)
    await traffic(watch, clock, [150])  # 7.5 x: not far enough above
    await notifier.drain()
    assert await store.list_notifications("t1") == []


async def test_a_quiet_subject_needs_the_minimum_to_alert() -> None:
    store, clock = MemoryStore(), Minutes()
    notifier = Notifier(store)
    watch = VelocityWatch(notifier, None, factor=10, min_per_minute=50, horizon_min=20, clock=clock)
    await traffic(watch, clock, [1] * 30)  # one a minute: 10 x would be 10
    await traffic(watch, clock, [30])
    await notifier.drain()
    assert await store.list_notifications("t1") == []
    await traffic(watch, clock, [50])
    await notifier.drain()
    assert len(await store.list_notifications("t1")) == 2
