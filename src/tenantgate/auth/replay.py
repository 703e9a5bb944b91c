"""Each end-user assertion is accepted once: by this instance (in memory) or by every instance (Redis,
redis_replay.py).

A tenant proxy's assertion names itself (`jti`); whoever sees it first takes it, and a second
request carrying it is a replay. With several instances behind one address the record must be
shared, or each instance would accept the same assertion once."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

PRUNE_FROM = 1000


class SeenOnce(Protocol):
    async def first_time(self, tenant_id: str, jti: str, until: float) -> bool:
        """True the first time (`tenant_id`, `jti`) is offered; remembered until `until` (Unix time)."""
        ...

    async def close(self) -> None: ...


class MemorySeenOnce:
    """Remembers every assertion until it expires (at most MAX_LIFETIME_S): its size is bounded by the
    rate of assertions times their lifetime. Expired entries go whenever the table has doubled."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._seen: dict[tuple[str, str], float] = {}
        self._prune_at = PRUNE_FROM

    async def first_time(self, tenant_id: str, jti: str, until: float) -> bool:
        key = (tenant_id, jti)
        if key in self._seen:
            return False
        if len(self._seen) >= self._prune_at:
            now = self._clock()
            self._seen = {seen: expiry for seen, expiry in self._seen.items() if expiry > now}
            self._prune_at = max(PRUNE_FROM, 2 * len(self._seen))
        self._seen[key] = until
        return True

    async def close(self) -> None:
        return None
