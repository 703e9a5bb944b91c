"""Answers to repeated identical requests, kept per tenant for tenants whose plan opts in.

The key is a hash of the tenant, the endpoint, the model served and the request as sent, with its
keys sorted and without what does not change the answer (`stream`, `stream_options`, `user`), so
tenants never share an entry: identical prompts of two tenants are two entries. Whole answers
(status 200) are kept; a streaming request is served from a kept answer as a stream. Kept in
process (least recently used go first, bounded by entries and bytes) or, when the gateway has
Redis, in Redis (redis_response_cache.py), so every instance answers from one cache; a Redis that
fails is a miss, never an error.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from tenantgate.dataplane.request import Endpoint, InferenceRequest

log = logging.getLogger(__name__)

CACHEABLE = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS})
IGNORED = ("stream", "stream_options", "user", "model")  # what does not change the answer


class ResponseCache(Protocol):
    async def get(self, key: bytes) -> bytes | None: ...

    async def put(self, key: bytes, answer: bytes, ttl_s: float) -> None: ...

    async def purge(self, tenant_id: str) -> int:
        """Forget every answer kept for the tenant; how many were forgotten. StoreUnavailable if the
        place they are kept in cannot be reached."""

    async def close(self) -> None: ...


def cache_key(tenant_id: str, request: InferenceRequest, served_model: str) -> bytes:
    """The tenant's id (so its entries can be found to purge them), then a hash of the rest."""
    payload = {k: v for k, v in request.payload.items() if k not in IGNORED}
    digest = hashlib.sha256()
    for part in (tenant_id.encode(), request.endpoint.value.encode(), served_model.encode()):
        digest.update(part + b"\0")
    digest.update(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS))
    return tenant_prefix(tenant_id) + digest.digest()


def tenant_prefix(tenant_id: str) -> bytes:
    return tenant_id.encode() + b":"


class MemoryResponseCache:
    def __init__(self, entries: int, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries = entries
        self._max_bytes = max_bytes
        self._clock = clock
        self._kept: OrderedDict[bytes, tuple[float, bytes]] = OrderedDict()  # key -> (expires at, answer)
        self._bytes = 0

    async def get(self, key: bytes) -> bytes | None:
        found = self._kept.get(key)
        if found is None:
            return None
        expires, answer = found
        if expires <= self._clock():
            self._drop(key)
            return None
        self._kept.move_to_end(key)
        return answer

    async def put(self, key: bytes, answer: bytes, ttl_s: float) -> None:
        if len(answer) > self._max_bytes:
            return
        if key in self._kept:
            self._drop(key)
        self._kept[key] = (self._clock() + ttl_s, answer)
        self._bytes += len(answer)
        while len(self._kept) > self._entries or self._bytes > self._max_bytes:
            self._drop(next(iter(self._kept)))

    def _drop(self, key: bytes) -> None:
        _, answer = self._kept.pop(key)
        self._bytes -= len(answer)

    async def purge(self, tenant_id: str) -> int:
        prefix = tenant_prefix(tenant_id)
        keys = [key for key in self._kept if key.startswith(prefix)]
        for key in keys:
            self._drop(key)
        return len(keys)

    async def close(self) -> None:
        self._kept.clear()
        self._bytes = 0


def answer_usage(answer: bytes) -> dict[str, Any]:
    try:
        usage = orjson.loads(answer).get("usage")
    except (orjson.JSONDecodeError, AttributeError):
        return {}
    return usage if isinstance(usage, dict) else {}


def as_stream(answer: bytes, wants_usage: bool) -> bytes:
    """A kept chat completion told as the stream of chunks an engine would have sent."""
    completion = orjson.loads(answer)
    head = {"id": completion.get("id", ""), "object": "chat.completion.chunk", "created": completion.get("created", 0),
            "model": completion.get("model", "")}  # fmt: skip
    events = []
    for choice in completion.get("choices") or []:
        message = choice.get("message") or {}
        delta: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
        if message.get("tool_calls"):
            delta["tool_calls"] = [{"index": n, **call} for n, call in enumerate(message["tool_calls"])]
        index = choice.get("index", 0)
        events.append({**head, "choices": [{"index": index, "delta": delta, "finish_reason": None}]})
        events.append(
            {**head, "choices": [{"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}]}
        )
    if wants_usage:
        events.append({**head, "choices": [], "usage": completion.get("usage")})
    return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"
