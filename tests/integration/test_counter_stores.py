"""One suite for the in-memory and the Redis counter store: exact windows, leases, totals, settlement."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from redis.exceptions import ResponseError

from tenantgate.admission.counters import CounterStore, Denied, Granted, MemoryCounterStore, Unseeded
from tenantgate.admission.limits import Check, LimitKind
from tenantgate.admission.redis_counters import COUNTERS, PEEK, RedisCounterStore


@dataclass
class Clocked:
    store: CounterStore
    fake_now: list[float] | None  # None: real time (Redis)

    async def advance(self, seconds: float) -> None:
        if self.fake_now is not None:
            self.fake_now[0] += seconds
        else:
            await asyncio.sleep(seconds)  # Redis keeps its own clock: real time has to pass


@pytest.fixture(params=["memory", "redis"])
async def counters(request: pytest.FixtureRequest) -> AsyncIterator[Clocked]:
    if request.param == "memory":
        now = [1000.0]
        yield Clocked(MemoryCounterStore(clock=lambda: now[0]), now)
        return
    store = RedisCounterStore.from_url(request.getfixturevalue("redis_url"))
    yield Clocked(store, None)
    await store.close()


def name(kind: str) -> str:
    return f"tg1:test:{kind}:{secrets.token_hex(6)}"


def window(counter: str, limit: int, amount: int = 1, ttl: float = 60.0) -> Check:
    return Check(LimitKind.REQUESTS, counter, limit, amount, "window", ttl_s=ttl)


async def test_window_admits_exactly_the_limit(counters: Clocked) -> None:
    counter = name("rpm")
    results = [await counters.store.reserve(f"r{i}", [window(counter, 5)]) for i in range(8)]
    assert [isinstance(r, Granted) for r in results] == [True] * 5 + [False] * 3
    assert [r.remaining for r in results[:5] if isinstance(r, Granted)] == [(4,), (3,), (2,), (1,), (0,)]
    denied = results[5]
    assert isinstance(denied, Denied) and denied.index == 0 and 0 < denied.retry_after_s <= 60


async def test_window_slides(counters: Clocked) -> None:
    counter = name("rpm")
    check = window(counter, 2, ttl=0.4)
    assert isinstance(await counters.store.reserve("a", [check]), Granted)
    await counters.advance(0.2)
    assert isinstance(await counters.store.reserve("b", [check]), Granted)
    assert isinstance(await counters.store.reserve("c", [check]), Denied)
    await counters.advance(0.25)  # "a" has left the window, "b" has not
    slid = await counters.store.reserve("d", [check])
    assert isinstance(slid, Granted) and slid.remaining == (0,)  # "b" still counts where "a" left
    assert isinstance(await counters.store.reserve("e", [check]), Denied)


async def test_tokens_settle_refunds_and_charges_overrun(counters: Clocked) -> None:
    counter = name("tpm")
    tokens = Check(LimitKind.TOKENS, counter, 100, 60, "window")
    assert isinstance(await counters.store.reserve("a", [tokens]), Granted)
    assert isinstance(await counters.store.reserve("b", [tokens]), Denied)  # 60 + 60 > 100
    await counters.store.settle("a", [tokens], [10])  # used far less than reserved
    assert isinstance(await counters.store.reserve("b", [tokens]), Granted)  # 10 + 60
    await counters.store.settle("b", [tokens], [85])  # overran its reservation: 10 + 85
    small = Check(LimitKind.TOKENS, counter, 100, 6, "window")
    assert isinstance(await counters.store.reserve("c", [small]), Denied)
    assert isinstance(await counters.store.reserve("c", [Check(LimitKind.TOKENS, counter, 100, 5, "window")]), Granted)


async def test_all_or_nothing(counters: Clocked) -> None:
    roomy, tight = name("a"), name("b")
    assert isinstance(await counters.store.reserve("x", [window(tight, 1)]), Granted)
    denied = await counters.store.reserve("y", [window(roomy, 10), window(tight, 1)])
    assert isinstance(denied, Denied) and denied.index == 1
    granted = await counters.store.reserve("z", [window(roomy, 10)])
    assert isinstance(granted, Granted) and granted.remaining == (9,)  # "y" reserved nothing


async def test_leases_release_on_settle_and_expire_on_their_own(counters: Clocked) -> None:
    counter = name("conc")
    lease = Check(LimitKind.CONCURRENCY, counter, 2, 1, "lease", ttl_s=0.3)
    assert isinstance(await counters.store.reserve("a", [lease]), Granted)
    assert isinstance(await counters.store.reserve("b", [lease]), Granted)
    assert isinstance(await counters.store.reserve("c", [lease]), Denied)
    await counters.store.settle("a", [lease], [0])
    assert isinstance(await counters.store.reserve("c", [lease]), Granted)
    await counters.advance(0.15)
    await counters.store.renew("c", [lease])
    await counters.advance(0.2)  # "b" was never renewed: expired (a crashed holder); "c" was
    assert isinstance(await counters.store.reserve("d", [lease]), Granted)
    assert isinstance(await counters.store.reserve("e", [lease]), Denied)


async def test_period_totals(counters: Clocked) -> None:
    counter = name("day")
    reset = datetime(2030, 1, 1, tzinfo=UTC)
    quota = Check(LimitKind.QUOTA, counter, 1000, 400, "total", reset_at=reset)
    assert await counters.store.reserve("a", [quota]) == Unseeded((0,))  # a total is seeded before use
    await counters.store.seed([quota], [100])
    await counters.store.seed([quota], [999])  # seeding never overwrites
    assert isinstance(await counters.store.reserve("a", [quota]), Granted)
    assert isinstance(await counters.store.reserve("b", [quota]), Granted)
    assert isinstance(await counters.store.reserve("c", [quota]), Denied)
    await counters.store.settle("a", [quota], [100])  # refund 300
    granted = await counters.store.reserve("c", [quota])
    assert isinstance(granted, Granted) and granted.remaining == (0,)


async def test_peek_reports_without_reserving(counters: Clocked) -> None:
    counter, total = name("rpm"), name("month")
    checks = [
        window(counter, 5),
        Check(LimitKind.QUOTA, total, 100, 30, "total", reset_at=datetime(2030, 1, 1, tzinfo=UTC)),
    ]
    await counters.store.seed(checks[1:], [0])
    await counters.store.reserve("a", checks)
    assert await counters.store.peek(checks) == (1, 30)
    assert await counters.store.peek(checks) == (1, 30)


async def test_many_concurrent_requests_are_exact_and_share_round_trips(counters: Clocked) -> None:
    """300 reservations at once against a limit of 100: exactly 100 pass. In Redis they go in
    batches: a connection per call ran the client's pool (100) out at 64 concurrent requests."""
    counter, held = name("rpm"), name("conc")
    checks = [window(counter, 100), Check(LimitKind.CONCURRENCY, held, 1000, 1, "lease", ttl_s=30)]
    results = await asyncio.gather(*(counters.store.reserve(f"r{i}", checks) for i in range(300)))
    assert sum(isinstance(r, Granted) for r in results) == 100
    assert sorted(r.remaining[0] for r in results if isinstance(r, Granted)) == list(range(100))
    granted = [f"r{i}" for i, r in enumerate(results) if isinstance(r, Granted)]
    await asyncio.gather(*(counters.store.settle(request_id, checks, [1, 0]) for request_id in granted))
    assert await counters.store.peek(checks) == (100, 0)  # every lease came back
    if isinstance(counters.store, RedisCounterStore):
        pool = counters.store._redis.connection_pool
        assert len(pool._available_connections) + len(pool._in_use_connections) <= 2


async def test_scripts_lost_by_a_restarted_redis_are_loaded_again(redis_url: str) -> None:
    store, counter = RedisCounterStore.from_url(redis_url), name("rpm")
    try:
        assert isinstance(await store.reserve("a", [window(counter, 5)]), Granted)
        await store._redis.script_flush()  # what a restart without persistence leaves
        results = await asyncio.gather(*(store.reserve(f"b{i}", [window(counter, 5)]) for i in range(6)))
        assert [isinstance(r, Granted) for r in results].count(True) == 4  # each ran once, not twice
        # Redis holds one script and not the other (another instance loaded it): a batch of both
        # sends again only the call that did not run.
        check = window(name("rpm"), 5)
        assert isinstance(await store.reserve("c", [check]), Granted)
        await store._redis.script_flush()
        await store._redis.script_load(PEEK)
        # The first call goes alone; the others, made while it is in flight, go in one batch: the
        # reservation and the settlement as one call of the counters' script, which Redis lost.
        first = store.peek([check])
        answers = await asyncio.gather(first, store.reserve("d", [check]), store.settle("c", [check], [1]))
        assert isinstance(answers[1], Granted) and await store.peek([check]) == (2,)  # "d" reserved once
        await store._redis.script_flush()
        await store._redis.script_load(COUNTERS)  # now the peek's script is the lost one
        first = store.reserve("f", [check])
        answers = await asyncio.gather(first, store.peek([check]), store.reserve("g", [check]))
        assert answers[1][0] in (3, 4) and await store.peek([check]) == (4,)  # each reservation once
    finally:
        await store.close()


async def test_a_reservation_that_fails_in_redis_fails_alone_in_its_batch(redis_url: str) -> None:
    """Reservations made together go to Redis as one call of the counters' script: one that fails
    there (its key holds something else) gets the error, the others their answers."""
    store = RedisCounterStore.from_url(redis_url)
    broken, fine = name("rpm"), name("rpm")
    try:
        await store._redis.set(broken, "not a window")
        first = store.peek([window(fine, 5)])  # goes alone; the two below, made meanwhile, together
        answers = await asyncio.gather(
            first, store.reserve("a", [window(broken, 5)]), store.reserve("b", [window(fine, 5)]),
            return_exceptions=True,
        )  # fmt: skip
        assert isinstance(answers[1], ResponseError) and "WRONGTYPE" in str(answers[1])
        assert isinstance(answers[2], Granted) and await store.peek([window(fine, 5)]) == (1,)
    finally:
        await store.close()


async def test_a_window_that_ended_more_entries_than_lua_unpacks_at_once_is_purged(redis_url: str) -> None:
    """A window that was quiet for a while: 20,000 entries have ended since its last request (Lua
    unpacks at most ~8,000 values in one call), two still count."""
    store = RedisCounterStore.from_url(redis_url)
    rpm = name("tpm")
    try:
        seconds, micros = await store._redis.time()
        now_ms = seconds * 1000 + micros // 1000
        ended = {f"old-{i}": now_ms - 120_000 + i // 1000 for i in range(20_000)}
        async with store._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(rpm, {**ended, "live-1": now_ms, "live-2": now_ms})
            pipe.hset(rpm + ":amt", mapping={**dict.fromkeys(ended, 3), "live-1": 5, "live-2": 7})
            pipe.set(rpm + ":sum", 3 * len(ended) + 12)
            await pipe.execute()
        assert isinstance(await store.reserve("new", [window(rpm, 100, amount=10)]), Granted)
        assert await store.peek([window(rpm, 100)]) == (22,)  # 5 + 7 + 10: every ended entry freed
        assert (await store._redis.zcard(rpm), await store._redis.hlen(rpm + ":amt")) == (3, 3)
    finally:
        await store.close()


async def test_a_refusal_says_when_enough_of_the_oldest_entries_end(redis_url: str) -> None:
    """The wait a refused request is told: until enough of the window's oldest entries have ended,
    found reading the window a slice of 100 at a time (not all of it, for every refused request)."""
    store = RedisCounterStore.from_url(redis_url)
    tpm = name("tpm")
    try:
        seconds, micros = await store._redis.time()
        now_ms = seconds * 1000 + micros // 1000
        entries = {f"r{i}": now_ms - 50_000 + 10 * i for i in range(250)}  # one every 10 ms, 50 s ago on
        async with store._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(tpm, entries)
            pipe.hset(tpm + ":amt", mapping=dict.fromkeys(entries, 1))
            pipe.set(tpm + ":sum", len(entries))
            await pipe.execute()
        one = await store.reserve("one", [window(tpm, 250, amount=1)])
        many = await store.reserve("many", [window(tpm, 250, amount=150)])
        # the oldest ends 10 s from now; 150 have ended when the 150th does, 1.49 s after it
        assert isinstance(one, Denied) and 9.9 < one.retry_after_s <= 10.0, one
        assert isinstance(many, Denied) and 11.39 < many.retry_after_s <= 11.49, many
    finally:
        await store.close()


async def test_every_key_a_reservation_makes_expires_after_its_entries(redis_url: str) -> None:
    """No counter key stays in Redis for ever, and none goes while an entry in it still counts: a
    window's three keys and a lease set live twice their TTL, pushed forward when a reservation
    finds less than one TTL left; a period total expires a day after its period, from its seeding."""
    store = RedisCounterStore.from_url(redis_url)
    rpm, held, day = name("rpm"), name("conc"), name("day")
    quota = Check(LimitKind.QUOTA, day, 1000, 5, "total", reset_at=datetime(2030, 1, 1, tzinfo=UTC))
    lease = Check(LimitKind.CONCURRENCY, held, 10, 1, "lease", ttl_s=0.4)
    checks = [window(rpm, 100, ttl=0.4), lease, quota]
    expiring = [rpm, rpm + ":amt", rpm + ":sum", held]

    async def expiries_ms() -> dict[str, int]:
        return {key: int(await store._redis.pttl(key)) for key in [*expiring, day]}

    try:
        await store.seed([quota], [0])
        assert isinstance(await store.reserve("a", checks), Granted)
        first = await expiries_ms()
        assert all(700 < first[key] <= 800 for key in expiring), first
        assert first[day] > 86_400_000, first
        # Redis keeps its own clock: real time has to pass. 200 ms on, more than a TTL is left.
        await asyncio.sleep(0.2)
        assert isinstance(await store.reserve("b", checks), Granted)
        kept = await expiries_ms()
        assert all(400 < kept[key] <= 800 for key in expiring), (first, kept)
        # 500 ms on, "a" has ended and "b" still counts, in keys with less than a TTL left
        await asyncio.sleep(0.3)
        assert isinstance(await store.reserve("c", checks), Granted)
        renewed = await expiries_ms()
        # pushed forward for "c", which counts 400 ms from now (not pushed, they would have < 300 ms)
        assert all(400 < renewed[key] <= 800 for key in expiring), (kept, renewed)
    finally:
        await store.close()
