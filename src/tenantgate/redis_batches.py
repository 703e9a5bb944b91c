"""Redis commands and Lua script calls sent in batches, one pipeline at a time.

A call made while nothing is in flight is sent at once, alone; the calls made while something is
in flight wait for it and then go together in one pipeline. So at low load each call costs one
round trip as before, and under load N concurrent requests share one round trip, one write and
one connection instead of holding N. (One connection per call exhausted the client's pool of
100 at 64 concurrent requests, and every refusal opened the limits' breaker.)

A settlement is deferred: it goes along with the next call (the next request's reservation), or
within 5 ms, so a lone client's request costs one round trip, not two.

Each script goes as EVALSHA; when Redis has lost scripts (a restart), they are loaded again and
the calls that answered NOSCRIPT, which never ran, are sent once more (only those: the rest ran).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

DEFER_S = 0.005  # the longest a deferred call waits for company

_Call = tuple[tuple[Any, ...], AsyncScript | None, asyncio.Future[Any]]  # a command, its script, its answer


class RedisBatches:
    def __init__(self, redis: Redis, defer_s: float = DEFER_S) -> None:
        self._redis = redis
        self._defer_s = defer_s
        self._waiting: list[_Call] = []
        self._busy = False  # a call or a batch is in flight: what comes now waits for the next batch
        self._sender: asyncio.Task[None] | None = None  # held: the loop keeps only weak references
        self._timer: asyncio.TimerHandle | None = None  # sends deferred calls nothing else took along

    async def script(
        self, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int | bytes], defer: bool = False
    ) -> Any:
        """`defer`: nobody waits on it in a hurry (a settlement): it goes with the next call, or
        within `defer_s` if none comes, so that at low load it does not cost a round trip of its own."""
        return await self._queue(("EVALSHA", script.sha, len(keys), *keys, *args), script, defer)

    async def command(self, *command: Any) -> Any:
        """What `Redis.execute_command(*command)` answers, e.g. ("GET", key)."""
        return await self._queue(command, None, defer=False)

    async def _queue(self, command: tuple[Any, ...], script: AsyncScript | None, defer: bool) -> Any:
        if not (self._busy or self._waiting or defer):  # nothing to take along: this call goes now, alone
            self._busy = True
            try:
                return await self._alone(command, script)
            finally:
                self._busy = False
                self._send_waiting()
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((command, script, answer))
        if not defer:
            self._send_waiting()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._defer_s, self._send_waiting)
        return await answer

    async def _alone(self, command: tuple[Any, ...], script: AsyncScript | None) -> Any:
        try:
            return await self._redis.execute_command(*command)  # type: ignore[no-untyped-call]
        except NoScriptError:
            assert script is not None
            await self._redis.script_load(script.script)
            return await self._redis.execute_command(*command)  # type: ignore[no-untyped-call]

    def _send_waiting(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._waiting and not self._busy:
            self._busy = True
            self._sender = asyncio.get_running_loop().create_task(self._send_all())

    async def _send_all(self) -> None:
        batch: list[_Call] = []
        try:
            while self._waiting:
                batch = [call for call in self._waiting if not call[2].cancelled()]  # its caller has gone
                self._waiting = []
                if batch:
                    await self._send(batch)
        finally:  # cancelled (shutdown): no caller is left waiting for an answer that will not come
            self._busy = False
            for *_, answer in batch + self._waiting:
                answer.cancel()
            self._waiting = []

    async def _send(self, batch: list[_Call]) -> None:
        try:
            replies = await self._pipeline(batch)
            lost = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if lost:  # only those calls again: the others ran
                for script in {id(batch[i][1]): batch[i][1] for i in lost}.values():
                    assert script is not None
                    await self._redis.script_load(script.script)
                for i, reply in zip(lost, await self._pipeline([batch[i] for i in lost]), strict=True):
                    replies[i] = reply
        except Exception as exc:  # noqa: BLE001 - every caller of the batch gets what went wrong
            replies = [exc] * len(batch)
        for (_, _, answer), reply in zip(batch, replies, strict=True):
            if answer.done():
                continue
            if isinstance(reply, Exception):
                answer.set_exception(reply)
            else:
                answer.set_result(reply)

    async def _pipeline(self, batch: list[_Call]) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for command, _, _ in batch:
            pipe.execute_command(*command)  # queued, not sent
        return await pipe.execute(raise_on_error=False)
