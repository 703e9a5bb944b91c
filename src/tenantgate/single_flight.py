"""One reading at a time per thing read, however many requests ask for it at once.

The reading is a task of its own, not the first asker's: a request that leaves (its client went, and
it was cancelled) while it waits stops waiting, and the reading goes on for the others. Its result or
its failure reaches every asker alike; once it is done, the next asker starts a new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class SingleFlight(Generic[K, T]):
    def __init__(self) -> None:
        self._running: dict[K, asyncio.Task[T]] = {}

    async def run(self, key: K, read: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """`read()`'s result, from the reading of `key` under way or from a new one."""
        running = self._running.get(key)
        if running is None:
            running = asyncio.get_running_loop().create_task(self._alone(key, read))
            running.add_done_callback(_retrieved)
            self._running[key] = running
        return await asyncio.shield(running)

    async def _alone(self, key: K, read: Callable[[], Coroutine[Any, Any, T]]) -> T:
        try:
            return await read()
        finally:
            del self._running[key]


def _retrieved(reading: asyncio.Task[Any]) -> None:
    """Every asker may have left: a failure is theirs to report, not the event loop's to log."""
    if not reading.cancelled():
        reading.exception()
