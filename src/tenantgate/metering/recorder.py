"""Buffer usage events and write them in batches; never on the request path.

`record()` is a list append. A background loop flushes every `flush_s` (or sooner when a batch
fills). Writes are idempotent by request id, so a batch that failed half-way is simply retried.
When the store is down the buffer holds up to `buffer_limit` events, then drops the oldest and
counts them in `dropped`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from tenantgate.domain import UsageEvent
from tenantgate.storage.base import Store

log = logging.getLogger(__name__)


class UsageRecorder:
    def __init__(self, store: Store, *, flush_s: float, batch_size: int, buffer_limit: int) -> None:
        self._store = store
        self._flush_s = flush_s
        self._batch_size = batch_size
        self._buffer_limit = buffer_limit
        self._events: list[UsageEvent] = []
        self._last_used: dict[str, datetime] = {}
        self._wake = asyncio.Event()
        self.dropped = 0
        self.written = 0

    def record(self, event: UsageEvent) -> None:
        self._events.append(event)
        self._last_used[event.key_id] = event.created_at
        if len(self._events) >= self._batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._events)

    async def run(self) -> None:
        """Flush forever; cancelled at shutdown, after which `flush()` drains the rest."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._flush_s)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        while self._events:
            batch = self._events[: self._batch_size]
            try:
                await self._store.insert_usage(batch)
            except Exception:
                log.warning("usage write failed; %d events kept for retry", len(self._events), exc_info=True)
                self._trim()
                return
            del self._events[: len(batch)]
            self.written += len(batch)
        if self._last_used:
            last_used, self._last_used = self._last_used, {}
            try:
                await self._store.touch_keys(last_used)
            except Exception:
                log.warning("key last-used update failed", exc_info=True)

    def _trim(self) -> None:
        excess = len(self._events) - self._buffer_limit
        if excess > 0:
            del self._events[:excess]
            self.dropped += excess
