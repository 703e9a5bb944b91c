"""The response cache's two stores under one suite (in process and a real Redis), and its key."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import orjson
import pytest
from openai.types.chat import ChatCompletionChunk
from redis.asyncio import Redis

from tenantgate.dataplane.redis_response_cache import RedisResponseCache
from tenantgate.dataplane.request import Endpoint, parse_request
from tenantgate.dataplane.response_cache import MemoryResponseCache, ResponseCache, as_stream, cache_key
from tenantgate.errors import StoreUnavailable


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ResponseCache]:
    cache: ResponseCache
    if request.param == "memory":
        cache = MemoryResponseCache(entries=100, max_bytes=1 << 20)
    else:
        cache = RedisResponseCache.from_url(request.getfixturevalue("redis_url"))
    yield cache
    await cache.close()


async def test_an_answer_is_kept_and_replaced(store: ResponseCache) -> None:
    key = secrets.token_bytes(32)  # the real Redis keeps other tests' entries: a fresh key each run
    assert await store.get(key) is None
    await store.put(key, b'{"answer": 1}', ttl_s=60)
    assert await store.get(key) == b'{"answer": 1}'
    await store.put(key, b'{"answer": 2}', ttl_s=60)
    assert await store.get(key) == b'{"answer": 2}'


async def test_many_concurrent_requests_are_answered_and_share_round_trips(store: ResponseCache) -> None:
    """One connection per GET ran the Redis client's pool (100) out at 64 concurrent requests:
    the cache then counted as broken and every request missed it."""
    keys = [secrets.token_bytes(32) for _ in range(60)]
    await asyncio.gather(*(store.put(key, key, ttl_s=60) for key in keys))
    found = await asyncio.gather(*(store.get(key) for key in keys * 5))
    assert found == keys * 5
    if isinstance(store, RedisResponseCache):
        pool = store._redis.connection_pool
        assert len(pool._available_connections) + len(pool._in_use_connections) <= 2


async def test_an_answer_goes_when_its_time_is_up(redis_url: str) -> None:
    now = [0.0]
    memory = MemoryResponseCache(entries=10, max_bytes=1000, clock=lambda: now[0])
    await memory.put(b"k", b"v", ttl_s=30)
    now[0] = 29.9
    assert await memory.get(b"k") == b"v"
    now[0] = 30.0
    assert await memory.get(b"k") is None
    redis, probe = RedisResponseCache.from_url(redis_url), Redis.from_url(redis_url)
    key = secrets.token_bytes(32)
    try:
        await redis.put(key, b"v", ttl_s=30)
        left = await probe.pttl(b"tg:answer:" + key)
        assert 0 < left <= 30_000  # Redis drops it when the time is up
    finally:
        await redis.close()
        await probe.aclose()


async def test_the_memory_store_drops_the_least_recent_within_its_bounds() -> None:
    cache = MemoryResponseCache(entries=2, max_bytes=10)
    await cache.put(b"a", b"1111", 60)
    await cache.put(b"b", b"2222", 60)
    assert await cache.get(b"a") == b"1111"  # now b is the least recent
    await cache.put(b"c", b"3333", 60)
    assert (await cache.get(b"a"), await cache.get(b"b"), await cache.get(b"c")) == (b"1111", None, b"3333")
    await cache.put(b"d", b"44444444", 60)  # 4 + 8 bytes > 10: the least recent go until it fits
    assert (await cache.get(b"a"), await cache.get(b"c"), await cache.get(b"d")) == (None, None, b"44444444")
    await cache.put(b"e", b"x" * 11, 60)  # larger than the whole cache: not kept
    assert await cache.get(b"e") is None and await cache.get(b"d") == b"44444444"


async def test_a_redis_that_cannot_be_reached_is_a_miss() -> None:
    cache = RedisResponseCache.from_url("redis://127.0.0.1:1/0", timeout_s=0.2)
    try:
        await cache.put(b"k", b"v", 60)
        assert await cache.get(b"k") is None
    finally:
        await cache.close()


async def test_a_purge_that_cannot_reach_redis_says_so() -> None:
    cache = RedisResponseCache.from_url("redis://127.0.0.1:1/0", timeout_s=0.2)
    try:
        with pytest.raises(StoreUnavailable, match="cannot be reached; 0 answers were purged"):
            await cache.purge("tenant")
    finally:
        await cache.close()


def test_the_key_is_the_tenants_and_ignores_what_does_not_change_the_answer() -> None:
    def key(tenant: str, body: dict[str, object], served: str = "m") -> bytes:
        return cache_key(tenant, parse_request(Endpoint.CHAT, orjson.dumps(body)), served)

    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    same = {"temperature": 0, "stream": True, "user": "u1", "messages": [{"role": "user", "content": "hi"}],
            "model": "alias", "stream_options": {"include_usage": True}}  # fmt: skip
    assert key("t1", base) == key("t1", same)
    assert key("t1", base) != key("t2", base)
    assert key("t1", base) != key("t1", {**base, "temperature": 1})
    assert key("t1", base) != key("t1", base, served="other-model")


def test_a_kept_answer_is_told_as_chunks_the_sdk_reads() -> None:
    answer = {"id": "c1", "object": "chat.completion", "created": 5, "model": "m",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris"}, "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}}  # fmt: skip
    stream = as_stream(orjson.dumps(answer), wants_usage=True)
    assert stream.endswith(b"data: [DONE]\n\n")
    chunks = [ChatCompletionChunk.model_validate_json(e[6:]) for e in stream.split(b"\n\n")[:-2]]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Paris"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 10
    assert b"usage" not in as_stream(orjson.dumps(answer), wants_usage=False)


async def test_a_purge_forgets_one_tenants_answers_only(store: ResponseCache) -> None:
    tenant, neighbour = secrets.token_hex(8), secrets.token_hex(8)  # fresh tenants: the real Redis is shared
    request = parse_request(Endpoint.CHAT, orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}))
    mine = [cache_key(tenant, request, f"model-{n}") for n in range(3)]
    theirs = cache_key(neighbour, request, "model-0")
    for key in (*mine, theirs):
        await store.put(key, b'{"answer": 1}', ttl_s=60)
    assert await store.purge(tenant) == 3
    assert [await store.get(key) for key in mine] == [None, None, None]
    assert await store.get(theirs) == b'{"answer": 1}'
    assert await store.purge(tenant) == 0
