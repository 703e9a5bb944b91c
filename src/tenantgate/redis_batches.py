"""Redis commands and Lua script calls sent in batches, one pipeline at a time.

A call made while nothing is in flight is sent at once, alone; the calls made while something is
in flight wait for it and then go together in one pipeline. So at low load each call costs one
round trip as before, and under load N concurrent requests share one round trip, one write and
one connection instead of holding N. (One connection per call exhausted the client's pool of
100 at 64 concurrent requests, and every refusal opened the limits' breaker.)

A settlement is deferred: it goes along with the next call (the next request's reservation), or
within 5 ms, so a lone client's request costs one round trip, not two.

An operation of a script that takes a list of them (the counters' reserve and settle) goes further:
a batch's operations of that script are one call of it, so the client packs, sends and parses one
command however many requests share the batch (redis-py's asyncio client spends about 30 µs of
CPU on each command of a pipeline besides packing its arguments).

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

# A command (and its script, if it calls one), or an operation (JSON) of a script that takes a list
# of them; and the future its answer goes to.
_Call = tuple[tuple[Any, ...] | bytes, AsyncScript | None, asyncio.Future[Any]]


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

    async def operation(self, script: AsyncScript, operation: bytes, defer: bool = False) -> Any:
        """One operation (a JSON value) of `script`, whose ARGV[1] is a JSON list of operations and whose
        answer is a list with the answer of each, or an error in the place of one that failed."""
        return await self._queue(operation, script, defer)

    async def command(self, *command: Any) -> Any:
        """What `Redis.execute_command(*command)` answers, e.g. ("GET", key)."""
        return await self._queue(command, None, defer=False)

    async def _queue(self, command: tuple[Any, ...] | bytes, script: AsyncScript | None, defer: bool) -> Any:
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

    async def _alone(self, command: tuple[Any, ...] | bytes, script: AsyncScript | None) -> Any:
        sent = command
        if isinstance(command, bytes):
            assert script is not None
            sent = ("EVALSHA", script.sha, 0, b"[" + command + b"]")
        try:
            reply = await self._redis.execute_command(*sent)  # type: ignore[no-untyped-call]
        except NoScriptError:
            assert script is not None
            await self._redis.script_load(script.script)
            reply = await self._redis.execute_command(*sent)  # type: ignore[no-untyped-call]
        if not isinstance(command, bytes):
            return reply
        if isinstance(reply[0], Exception):
            raise reply[0]
        return reply[0]

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
        """Each call's reply, or the exception that is its answer."""
        pipe = self._redis.pipeline(transaction=False)
        answering: list[list[int]] = []  # per command in the pipeline, the calls its reply answers
        operations: dict[str, list[int]] = {}  # per script, the calls that are operations of it
        for i, (command, script, _) in enumerate(batch):
            if isinstance(command, bytes):
                assert script is not None
                operations.setdefault(script.sha, []).append(i)
            else:
                pipe.execute_command(*command)  # queued, not sent
                answering.append([i])
        for sha, calls in operations.items():
            listed = b"[" + b",".join(batch[i][0] for i in calls) + b"]"  # type: ignore[misc]
            pipe.execute_command("EVALSHA", sha, 0, listed)
            answering.append(calls)
        replies: list[Any] = [None] * len(batch)
        for calls, reply in zip(answering, await pipe.execute(raise_on_error=False), strict=True):
            if not isinstance(batch[calls[0]][0], bytes) or isinstance(reply, Exception):
                for i in calls:
                    replies[i] = reply  # NOSCRIPT included: each of them is sent again
            else:
                for i, answer in zip(calls, reply, strict=True):
                    replies[i] = answer
        return replies
