"""The fair queue's virtual counters shared by every instance, through Redis.

The disciplines read and change counters synchronously, on every dispatch; Redis cannot be on that
path. So each instance keeps a view (`SharedCounters`): the counters as Redis last gave them, plus
what this instance changed since. Every `TENANTGATE_FAIR_SYNC_S` one script per deployment adds the
changes to the shared counters and reads them all back, so a tenant served on another instance
counts here too within that interval: fairness holds across instances however the balancer spreads
tenants (a tenant pinned to one instance included).

A change is an addition (service charged, or refunded) after a lift (a tenant that starts waiting
is raised to the least counter waiting: "at least this"). Lifts are kept as floors, not added, so
two instances lifting the same tenant do not lift it twice. A batch of changes carries an id that
Redis remembers for a minute, so a batch whose answer was lost (a timeout) and is sent again is
applied once. When Redis fails the view stays as it was, changes accumulate, and they are sent when
it answers. Only the counters of tenants this instance dealt with in the last `INTEREST_S` are read
back, so a sync costs what this instance serves, not every tenant there is.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)
KEEP_MS = 86_400_000  # a deployment's counters outlive a day without traffic, then go
INTEREST_S = 300.0  # tenants not dealt with here for this long are no longer read back

# KEYS[1]: the deployment's counters (hash tenant -> value), KEYS[2]: the batch's marker.
# ARGV[1]: n changes, then n x (tenant, floor or '', addition), then the tenants to read back.
SYNC = """
local n = tonumber(ARGV[1])
if n > 0 and redis.call('SET', KEYS[2], '1', 'NX', 'PX', 60000) then
  for i = 0, n - 1 do
    local tenant, floor, add = ARGV[2 + i * 3], ARGV[3 + i * 3], tonumber(ARGV[4 + i * 3])
    local current = tonumber(redis.call('HGET', KEYS[1], tenant) or '0')
    if floor ~= '' and current < tonumber(floor) then current = tonumber(floor) end
    redis.call('HSET', KEYS[1], tenant, tostring(current + add))
  end
  redis.call('PEXPIRE', KEYS[1], KEEP)
end
local values = {}
for first = 2 + n * 3, #ARGV, 1000 do  -- in slices: Lua unpacks at most ~8,000 values in one call
  local read = redis.call('HMGET', KEYS[1], unpack(ARGV, first, math.min(first + 999, #ARGV)))
  for _, value in ipairs(read) do values[#values + 1] = value end
end
return values
""".replace("KEEP", str(KEEP_MS))


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

    def __init__(self, deployment: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.key = f"tg1:vtc:{deployment}"
        self._clock = clock
        self._base: dict[str, float] = {}  # as Redis last gave them
        self._sending = Changes()  # on their way to Redis (again, after a failure: the same batch)
        self._batch = ""
        self._pending = Changes()  # made since
        self._touched: dict[str, float] = {}  # tenant -> when it last changed here

    def get(self, tenant: str) -> float:
        return self._pending.apply(tenant, self._sending.apply(tenant, self._base.get(tenant, 0.0)))

    def add(self, tenant: str, amount: float) -> None:
        adds = self._pending.adds
        adds[tenant] = adds.get(tenant, 0.0) + amount
        self._touched[tenant] = self._clock()

    def raise_to(self, tenant: str, floor: float) -> None:
        if self.get(tenant) < floor:  # a floor before this instance's later additions
            self._pending.floors[tenant] = floor - self._pending.adds.get(tenant, 0.0)
            self._touched[tenant] = self._clock()

    def snapshot(self) -> dict[str, float]:
        tenants = {*self._base, *self._sending.adds, *self._sending.floors, *self._pending.adds, *self._pending.floors}
        return {tenant: self.get(tenant) for tenant in tenants}

    async def sync(self, redis: Redis, script: object) -> None:
        """Send what changed here, take what every instance has for the tenants dealt with here (one
        round trip). A batch not acknowledged is sent again as it was, under its id, before any other."""
        if not self._sending and self._pending:
            self._sending, self._pending, self._batch = self._pending, Changes(), secrets.token_hex(8)
        sending = self._sending
        changed = [*{*sending.floors, *sending.adds}]
        args: list[str] = [str(len(changed))]
        for tenant in changed:
            floor = sending.floors.get(tenant)
            args += [tenant, "" if floor is None else repr(floor), repr(sending.adds.get(tenant, 0.0))]
        since = self._clock() - INTEREST_S
        self._touched = {tenant: at for tenant, at in self._touched.items() if at >= since}
        wanted = [*self._touched]
        try:
            keys = [self.key, f"{self.key}:batch:{self._batch}"]
            values = await script(keys=keys, args=[*args, *wanted])  # type: ignore[operator]
        except Exception as exc:  # noqa: BLE001 - kept, and sent again with the next sync
            reason = type(exc).__name__
            log.warning("fair-queue counters of %s could not be shared (%s); kept for the next try", self.key, reason)
            return
        self._base = {tenant: float(value) for tenant, value in zip(wanted, values, strict=True) if value is not None}
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
