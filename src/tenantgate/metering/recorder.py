"""Buffer usage events and write them in batches; never on the request path.

`record()` appends to the journal (when there is one) and to the buffer. A background loop writes
a batch every `flush_s` (sooner when a batch fills). Writes are idempotent by request id, so a
batch that failed half-way is simply retried. When a batch fails while the database answers, the
batch is split until the events it refuses are found: those go to the dead-letter table with the
database's reason and the rest are written, so one bad event never stops the others. When the
database does not answer, everything is kept (the journal has it too) and retried; past
`buffer_limit` the oldest events leave memory, counted in `dropped`, and stay in the journal to be
replayed at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime

from tenantgate.clock import utcnow
from tenantgate.domain import DeadLetter, RequestContent, UsageEvent
from tenantgate.errors import StoreUnavailable
from tenantgate.metering.codec import encode
from tenantgate.metering.journal import UsageJournal
from tenantgate.storage.base import Store

log = logging.getLogger(__name__)
_REASON_CHARS = 500


class UsageRecorder:
    def __init__(
        self, store: Store, *, flush_s: float, batch_size: int, buffer_limit: int, journal: UsageJournal | None = None
    ) -> None:
        self._store = store
        self._flush_s = flush_s
        self._batch_size = batch_size
        self._buffer_limit = buffer_limit
        self._journal = journal
        self._events: list[tuple[int, UsageEvent]] = []  # (journal segment, event)
        self._contents: list[RequestContent] = []  # prompts and answers of tenants that opted in
        self._last_used: dict[str, datetime] = {}
        self._wake = asyncio.Event()
        # one flush at a time: two would each drop their batch's length from the buffer's head, and the
        # second would drop events that arrived meanwhile, unwritten (reports flush too, not only the loop)
        self._flushing = asyncio.Lock()
        self.strict = journal is not None and journal.strict
        self.dropped = 0
        self.written = 0
        self.dead_lettered = 0
        self.contents_dropped = 0
        self._dropped_from: int | None = None  # oldest journal segment holding events dropped from memory

    def start(self) -> None:
        """Open the journal and queue what an earlier run left in it (written again, idempotently)."""
        if self._journal is not None:
            self._events[:0] = self._journal.open()

    def record(self, event: UsageEvent) -> None:
        segment = 0 if self._journal is None else self._journal.append(event)
        self._events.append((segment, event))
        self._last_used[event.key_id] = event.created_at
        if len(self._events) >= self._batch_size:
            self._wake.set()

    def record_content(self, content: RequestContent) -> None:
        """Keep a prompt and answer. Not journaled: a crash loses the last seconds of them, never
        usage; past the buffer's limit the oldest go."""
        self._contents.append(content)
        if len(self._contents) > self._buffer_limit:
            del self._contents[0]
            self.contents_dropped += 1

    async def durable(self) -> None:
        """Strict mode: wait until every recorded event is fsynced in the journal."""
        if self._journal is not None:
            await self._journal.commit()

    @property
    def pending(self) -> int:
        return len(self._events)

    @property
    def oldest_pending(self) -> datetime | None:
        """When the oldest event not yet written was made (the writer's lag)."""
        return self._events[0][1].created_at if self._events else None

    async def run(self) -> None:
        """Flush forever; cancelled at shutdown, after which `flush()` drains the rest."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_s):
                    await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def run_journal(self, every_s: float) -> None:
        """Fast mode: hand the journal's lines to the OS every `every_s`."""
        assert self._journal is not None
        while True:
            await asyncio.sleep(every_s)
            await self._journal.commit()

    async def flush(self) -> None:
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        if self._journal is not None and self._events:
            await self._journal.rotate()  # what follows goes to a fresh segment, so this one can go
        # Only what was there when the flush began: chasing what arrives during the writes would turn
        # a steady load into one small transaction after another, each a round trip to the database.
        left = len(self._events)
        while left > 0:
            batch = self._events[: min(left, self._batch_size)]
            if not await self._write([event for _, event in batch]):
                log.warning("usage write failed; %d events kept for retry", len(self._events))
                self._trim()
                break
            del self._events[: len(batch)]
            left -= len(batch)
        if self._journal is not None:
            oldest = self._events[0][0] if self._events else self._journal.segment
            if self._dropped_from is not None:  # dropped events stay in the journal for the next start
                oldest = min(oldest, self._dropped_from)
            self._journal.forget_before(oldest)
        if self._contents:
            await self._write_contents()
        if self._last_used:
            last_used, self._last_used = self._last_used, {}
            try:
                await self._store.touch_keys(last_used)
            except Exception:
                log.warning("key last-used update failed", exc_info=True)

    async def close(self) -> None:
        await self.flush()
        if self._journal is not None:
            await self._journal.close()

    async def _write(self, events: Sequence[UsageEvent]) -> bool:
        """Store the events, dead-lettering any the database refuses; False when it is unreachable."""
        try:
            await self._store.insert_usage(events)
        except StoreUnavailable:  # busy behind another writer: nothing is wrong with these events
            return False
        except Exception as exc:  # noqa: BLE001 - told apart below: unreachable, or this data refused
            if not await self._answers():
                return False
            if len(events) == 1:
                return await self._dead_letter(events[0], exc)
            half = len(events) // 2
            return await self._write(events[:half]) and await self._write(events[half:])
        self.written += len(events)
        return True

    async def _write_contents(self) -> None:
        contents, self._contents = self._contents, []
        try:
            await self._store.insert_contents(contents)
        except Exception:
            if await self._answers():  # the database refused them: retrying would not help
                log.error("%d prompts and answers refused by the database and dropped", len(contents), exc_info=True)
                self.contents_dropped += len(contents)
            else:
                log.warning("prompt and answer write failed; %d kept for retry", len(contents))
                self._contents[:0] = contents[-self._buffer_limit :]

    async def _answers(self) -> bool:
        try:
            await self._store.ping()
        except Exception:  # noqa: BLE001 - any failure to answer means: keep everything and retry
            return False
        return True

    async def _dead_letter(self, event: UsageEvent, exc: Exception) -> bool:
        cause = getattr(exc, "orig", None) or exc  # the driver's own words, without the statement's parameters
        reason = f"{type(cause).__name__}: {cause}"[:_REASON_CHARS]
        letter = DeadLetter(event.request_id, reason, encode(event).decode(), utcnow())
        try:
            await self._store.insert_dead_letters([letter])
        except Exception:
            log.warning("dead-letter write failed for %s; kept for retry", event.request_id, exc_info=True)
            return False
        log.error("usage event %s refused by the database and dead-lettered: %s", event.request_id, reason)
        self.dead_lettered += 1
        return True

    def _trim(self) -> None:
        excess = len(self._events) - self._buffer_limit
        if excess > 0:
            first = self._events[0][0]
            self._dropped_from = first if self._dropped_from is None else min(first, self._dropped_from)
            del self._events[:excess]
            self.dropped += excess
