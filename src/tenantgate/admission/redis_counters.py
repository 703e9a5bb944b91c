"""Counters shared by every instance, in Redis: reservations and settlements are operations of one
Lua script, and the operations of concurrent requests go to Redis as one call of it (redis_batches.py).

Keys (version `tg1`, never reuse a layout under the same prefix):
  window  <counter> ZSET request→time(ms), <counter>:amt HASH request→amount, <counter>:sum STRING
  lease   <counter> ZSET request→expiry(ms)
  total   <counter> STRING, expires a day after its period ends (set when it is seeded)
Time comes from Redis (`TIME`), so instances with skewed clocks still share one window.
A window's or lease set's keys live twice its TTL, pushed forward only when less than one TTL is
left: an entry made now always ends before its key does, and a busy counter's expiry is written
once a TTL rather than at every request (a fifth of a reservation's calls were PEXPIREs).
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from redis.asyncio import Redis

from tenantgate.admission.counters import Denied, Granted, Outcome, Unseeded
from tenantgate.admission.limits import Check
from tenantgate.redis_batches import RedisBatches

_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function purge_window(key, ttl)
  -- in slices: Lua unpacks at most ~8,000 values, and a window that was quiet for a while can hold
  -- more than that which has ended
  local freed = 0
  repeat
    local old = redis.call('ZRANGEBYSCORE', key, '-inf', now - ttl, 'LIMIT', 0, 1000)
    if #old > 0 then
      for _, a in ipairs(redis.call('HMGET', key .. ':amt', unpack(old))) do freed = freed + (tonumber(a) or 0) end
      redis.call('HDEL', key .. ':amt', unpack(old))
      redis.call('ZREMRANGEBYRANK', key, 0, #old - 1)  -- the oldest, the ones just read
    end
  until #old < 1000
  if freed > 0 then redis.call('DECRBY', key .. ':sum', freed) end
  return tonumber(redis.call('GET', key .. ':sum') or '0')
end
local function outlive(key, ttl, also)
  if redis.call('PTTL', key) < ttl then
    redis.call('PEXPIRE', key, ttl * 2)
    for _, k in ipairs(also) do redis.call('PEXPIRE', k, ttl * 2) end
  end
end
"""

# ARGV[1]: a JSON list of operations, each answered in the list the script returns (an error in
# its place if it failed: the others still ran):
#   ["reserve", request id, [[key, shape, limit, amount, ttl_ms], ...]]  all of them or none
#   ["settle", request id, [[key, shape, reserved, actual or "renew", ttl_ms], ...]]
# The keys travel in the argument rather than as KEYS: a batch's operations are one call, however
# many requests share it (see redis_batches.py), and one Redis holds every counter.
COUNTERS = (
    _PRELUDE
    + """
local function window_retry(key, current, limit, amount, ttl)
  -- when enough of the oldest entries end: read oldest first, a slice at a time
  if amount > limit then return ttl end
  local freed, first = 0, 0
  repeat
    local entries = redis.call('ZRANGE', key, first, first + 99, 'WITHSCORES')
    local members = {}
    for j = 1, #entries, 2 do members[#members + 1] = entries[j] end
    local amounts = #members > 0 and redis.call('HMGET', key .. ':amt', unpack(members)) or {}
    for j, a in ipairs(amounts) do
      freed = freed + (tonumber(a) or 0)
      if current - freed + amount <= limit then return tonumber(entries[2 * j]) + ttl - now end
    end
    first = first + 100
  until #members < 100
  return ttl
end
local function reserve(id, checks)
  local missing = {}
  for i, check in ipairs(checks) do
    if check[2] == 'total' and redis.call('EXISTS', check[1]) == 0 then missing[#missing + 1] = i - 1 end
  end
  if #missing > 0 then return {-1, unpack(missing)} end
  local used = {}
  for i, check in ipairs(checks) do
    local key, shape, limit, amount, ttl = unpack(check)
    local current
    if shape == 'window' then
      current = purge_window(key, ttl)
    elseif shape == 'lease' then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
      current = redis.call('ZCARD', key)
    else
      current = tonumber(redis.call('GET', key) or '0')
    end
    if current + amount > limit then
      local retry = 0
      if shape == 'window' then
        retry = window_retry(key, current, limit, amount, ttl)
      elseif shape == 'lease' then
        retry = 1000
      end
      return {0, i - 1, retry}
    end
    used[i] = current
  end
  local remaining = {1}
  for i, check in ipairs(checks) do
    local key, shape, limit, amount, ttl = unpack(check)
    if shape == 'window' then
      redis.call('ZADD', key, now, id)
      redis.call('HSET', key .. ':amt', id, amount)
      redis.call('INCRBY', key .. ':sum', amount)
      outlive(key, ttl, {key .. ':amt', key .. ':sum'})
    elseif shape == 'lease' then
      redis.call('ZADD', key, now + ttl, id)
      outlive(key, ttl, {})
    else
      redis.call('INCRBY', key, amount)  -- it exists (checked above), with the expiry its seeding gave it
    end
    remaining[#remaining + 1] = limit - used[i] - amount
  end
  return remaining
end
local function settle(id, checks)
  for _, check in ipairs(checks) do
    local key, shape, reserved, actual, ttl = unpack(check)
    if shape == 'window' then
      local held = redis.call('HGET', key .. ':amt', id)
      if held then
        redis.call('HSET', key .. ':amt', id, actual)
        redis.call('INCRBY', key .. ':sum', actual - tonumber(held))
      end
    elseif shape == 'lease' then
      if actual == 'renew' then
        if redis.call('ZSCORE', key, id) then
          redis.call('ZADD', key, now + ttl, id)
          redis.call('PEXPIRE', key, ttl * 2)  -- the set outlives its newest lease, not its first
        end
      else
        redis.call('ZREM', key, id)
      end
    else
      if redis.call('EXISTS', key) == 1 then redis.call('INCRBY', key, actual - reserved) end
    end
  end
  return 1
end
local operations = {reserve = reserve, settle = settle}
local answers = {}
for i, op in ipairs(cjson.decode(ARGV[1])) do
  local ok, answer = pcall(operations[op[1]], op[2], op[3])
  if ok then
    answers[i] = answer
  else
    answers[i] = {err = type(answer) == 'table' and answer.err or tostring(answer)}
  end
end
return answers
"""
)

# ARGV: per check: shape, ttl_ms
PEEK = (
    _PRELUDE
    + """
local used = {}
for i, key in ipairs(KEYS) do
  local shape, ttl = ARGV[2 * i - 1], tonumber(ARGV[2 * i])
  if shape == 'window' then
    used[i] = purge_window(key, ttl)
  elseif shape == 'lease' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    used[i] = redis.call('ZCARD', key)
  else
    used[i] = tonumber(redis.call('GET', key) or '0')
  end
end
return used
"""
)

# ARGV: per check: value, expire_at_ms
SEED = """
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, ARGV[2 * i - 1], 'NX') then redis.call('PEXPIREAT', key, tonumber(ARGV[2 * i])) end
end
return 1
"""


# KEYS: the instances set; ARGV: this instance's id, how long it counts as alive (ms)
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZCARD', KEYS[1])
"""
INSTANCES = "tg1:instances"


def _expire_at(check: Check) -> int:
    """A period total outlives its period by a day (ms since the epoch); other shapes use their TTL."""
    return int(check.reset_at.timestamp() * 1000) + 86_400_000 if check.reset_at else 0


class RedisCounterStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._counters = redis.register_script(COUNTERS)
        self._peek = redis.register_script(PEEK)
        self._seed = redis.register_script(SEED)
        self._heartbeat = redis.register_script(HEARTBEAT)
        self._batches = RedisBatches(redis)

    @classmethod
    def from_url(cls, url: str, timeout_s: float = 2.0) -> RedisCounterStore:
        return cls(Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s))

    async def reserve(self, request_id: str, checks: Sequence[Check]) -> Outcome:
        # One JSON argument, packed by orjson: redis-py's asyncio client packs every argument of a
        # command in Python (a reservation's 14 took 60 µs of the gateway's CPU in a pipeline).
        given = [[c.counter, c.shape, c.limit, c.amount, int(c.ttl_s * 1000)] for c in checks]
        result = await self._batches.operation(self._counters, orjson.dumps(["reserve", request_id, given]))
        if int(result[0]) == 0:
            return Denied(int(result[1]), int(result[2]) / 1000)
        if int(result[0]) == -1:
            return Unseeded(tuple(int(r) for r in result[1:]))
        return Granted(tuple(int(r) for r in result[1:]))

    async def seed(self, checks: Sequence[Check], values: Sequence[int]) -> None:
        args: list[int] = []
        for check, value in zip(checks, values, strict=True):
            args += [value, _expire_at(check)]
        await self._batches.script(self._seed, [c.counter for c in checks], args)

    async def settle(self, request_id: str, checks: Sequence[Check], actual: Sequence[int]) -> None:
        await self._run_settle(request_id, checks, actual, defer=True)

    async def renew(self, request_id: str, checks: Sequence[Check]) -> None:
        leases = [c for c in checks if c.shape == "lease"]
        if leases:
            await self._run_settle(request_id, leases, ["renew"] * len(leases))

    async def _run_settle(
        self, request_id: str, checks: Sequence[Check], actual: Sequence[int | str], defer: bool = False
    ) -> None:
        given = [
            [c.counter, c.shape, c.amount, value, int(c.ttl_s * 1000)] for c, value in zip(checks, actual, strict=True)
        ]
        await self._batches.operation(self._counters, orjson.dumps(["settle", request_id, given]), defer)

    async def peek(self, checks: Sequence[Check]) -> tuple[int, ...]:
        if not checks:
            return ()
        args: list[str | int] = []
        for check in checks:
            args += [check.shape, int(check.ttl_s * 1000)]
        result = await self._batches.script(self._peek, [c.counter for c in checks], args)
        return tuple(int(value) for value in result)

    async def heartbeat(self, instance_id: str, alive_s: float) -> int:
        return int(await self._heartbeat(keys=[INSTANCES], args=[instance_id, int(alive_s * 1000)]))

    async def leave(self, instance_id: str) -> None:
        await self._redis.zrem(INSTANCES, instance_id)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
