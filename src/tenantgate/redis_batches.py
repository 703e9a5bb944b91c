"""Lua script calls sent to Redis in batches, one pipeline at a time.

The calls made while a pipeline is in flight wait for it and go together in the next: at low load
each call is sent at once, and under load N concurrent requests share one round trip, one write
and one connection instead of holding N. (One connection per call exhausted the client's pool of
100 at 64 concurrent requests, and every refusal opened the limits' breaker.)

Each script goes as EVALSHA; a Redis that lost its scripts (a restart) has them loaded again and
the batch is sent once more, which is safe because a script that answered NOSCRIPT never ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

_Call = tuple[AsyncScript, Sequence[str], Sequence[str | int], asyncio.Future[Any]]


class ScriptBatches:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._waiting: list[_Call] = []
        self._sender: asyncio.Task[None] | None = None

    async def call(self, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((script, keys, args, answer))
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_all())
        return await answer

    async def _send_all(self) -> None:
        batch: list[_Call] = []
        try:
            while self._waiting:
                batch = [call for call in self._waiting if not call[3].cancelled()]  # its caller has gone
                self._waiting = []
                if batch:
                    await self._send(batch)
        finally:  # cancelled (shutdown): no caller is left waiting for an answer that will not come
            self._sender = None
            for *_, answer in batch + self._waiting:
                answer.cancel()
            self._waiting = []

    async def _send(self, batch: list[_Call]) -> None:
        try:
            replies = await self._pipeline(batch)
            if any(isinstance(reply, NoScriptError) for reply in replies):
                for script in {id(call[0]): call[0] for call in batch}.values():
                    await self._redis.script_load(script.script)
                replies = await self._pipeline(batch)
        except Exception as exc:  # noqa: BLE001 - every caller of the batch gets what went wrong
            replies = [exc] * len(batch)
        for (_, _, _, answer), reply in zip(batch, replies, strict=True):
            if answer.done():
                continue
            if isinstance(reply, Exception):
                answer.set_exception(reply)
            else:
                answer.set_result(reply)

    async def _pipeline(self, batch: list[_Call]) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for script, keys, args, _ in batch:
            pipe.evalsha(script.sha, len(keys), *keys, *args)  # type: ignore[unused-awaitable]  # queued, not sent
        return await pipe.execute(raise_on_error=False)
