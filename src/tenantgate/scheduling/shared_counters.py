"""The fair queue's virtual counters shared by every instance, through Redis.

The disciplines read and change counters synchronously, on every dispatch; Redis cannot be on that
path. So each instance keeps a view (`SharedCounters`): the counters as Redis last gave them, plus
what this instance changed since. Every `TENANTGATE_FAIR_SYNC_S` one script per deployment adds the
changes to the shared counters and reads them all back, so a tenant served on another instance
counts here too within that interval: fairness holds across instances however the balancer spreads
tenants (a tenant pinned to one instance included).

A change is an addition (service charged, or refunded) after a lift (a tenant that starts waiting
is raised to the least counter waiting: "at least this"). Lifts are kept as floors, not added, so
two instances lifting the same tenant do not lift it twice. When Redis fails the view stays as it
was, changes accumulate, and they are sent when it answers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from redis.asyncio import Redis

log = logging.getLogger(__name__)
KEEP_MS = 86_400_000  # a deployment's counters outlive a day without traffic, then go

# KEYS[1]: the deployment's counters (hash tenant -> value); ARGV: tenant, floor ('' for none), addition, ...
SYNC = """
for i = 1, #ARGV, 3 do
  local tenant, floor, add = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local current = tonumber(redis.call('HGET', KEYS[1], tenant) or '0')
  if floor ~= '' and current < tonumber(floor) then current = tonumber(floor) end
  redis.call('HSET', KEYS[1], tenant, tostring(current + add))
end
redis.call('PEXPIRE', KEYS[1], tonumber(KEEP))
return redis.call('HGETALL', KEYS[1])
""".replace("tonumber(KEEP)", str(KEEP_MS))


@dataclass(slots=True)
class Changes:
    """Per tenant: raise to at least `floors`, then add `adds` (floors in the units before the adds)."""

    floors: dict[str, float] = field(default_factory=dict)
    adds: dict[str, float] = field(default_factory=dict)

    def apply(self, tenant: str, value: float) -> float:
        floor = self.floors.get(tenant)
        if floor is not None and value < floor:
            value = floor
        return value + self.adds.get(tenant, 0.0)

    def then(self, later: Changes) -> Changes:
        """These changes followed by `later`, as one."""
        merged = Changes(dict(self.floors), dict(self.adds))
        for tenant, floor in later.floors.items():  # max(max(v, F1) + A1, F2) = max(v, F1, F2 - A1) + A1
            shifted = floor - self.adds.get(tenant, 0.0)
            merged.floors[tenant] = max(merged.floors.get(tenant, shifted), shifted)
        for tenant, add in later.adds.items():
            merged.adds[tenant] = merged.adds.get(tenant, 0.0) + add
        return merged

    def __bool__(self) -> bool:
        return bool(self.floors or self.adds)


class SharedCounters:
    """One deployment's counters as this instance sees them (a `VirtualCounters`)."""

    def __init__(self, deployment: str) -> None:
        self.key = f"tg1:vtc:{deployment}"
        self._base: dict[str, float] = {}  # as Redis last gave them
        self._sending = Changes()  # on their way to Redis
        self._pending = Changes()  # made since

    def get(self, tenant: str) -> float:
        return self._pending.apply(tenant, self._sending.apply(tenant, self._base.get(tenant, 0.0)))

    def add(self, tenant: str, amount: float) -> None:
        adds = self._pending.adds
        adds[tenant] = adds.get(tenant, 0.0) + amount

    def raise_to(self, tenant: str, floor: float) -> None:
        if self.get(tenant) < floor:  # a floor before this instance's later additions
            self._pending.floors[tenant] = floor - self._pending.adds.get(tenant, 0.0)

    def snapshot(self) -> dict[str, float]:
        tenants = {*self._base, *self._sending.adds, *self._sending.floors, *self._pending.adds, *self._pending.floors}
        return {tenant: self.get(tenant) for tenant in tenants}

    async def sync(self, redis: Redis, script: object) -> None:
        """Send what changed here, take what every instance has (one round trip)."""
        self._sending, self._pending = self._sending.then(self._pending), Changes()
        args: list[str] = []
        for tenant in {*self._sending.floors, *self._sending.adds}:
            floor = self._sending.floors.get(tenant)
            args += [tenant, "" if floor is None else repr(floor), repr(self._sending.adds.get(tenant, 0.0))]
        try:
            values = await script(keys=[self.key], args=args)  # type: ignore[operator]
        except Exception:  # noqa: BLE001 - kept, and sent with the next sync
            log.warning("fair-queue counters of %s could not be shared; kept for the next try", self.key)
            return
        pairs = iter(values)
        self._base = {tenant.decode(): float(value) for tenant, value in zip(pairs, pairs, strict=True)}
        self._sending = Changes()


class FairCounterSync:
    """Every lane's shared counters, synced together."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._script = redis.register_script(SYNC)
        self.counters: dict[str, SharedCounters] = {}

    def for_deployment(self, deployment: str) -> SharedCounters:
        counters = self.counters[deployment] = SharedCounters(deployment)
        return counters

    async def sync(self) -> None:
        for counters in self.counters.values():
            await counters.sync(self._redis, self._script)

    async def close(self) -> None:
        await self._redis.aclose()
