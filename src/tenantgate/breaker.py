"""A breaker for a shared store (Redis): once a call to it fails, callers stop asking it and take
their fallback at once; a background probe closes the breaker when the store answers again. So a
hung store costs each request in flight at that moment one short timeout, not every request after.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class StoreBreaker:
    def __init__(self, what: str, fallback: str) -> None:
        self._what = what  # e.g. "the counter store (Redis)"
        self._fallback = fallback  # what callers do meanwhile, for the log
        self.open = False

    def failed(self, exc: BaseException) -> None:
        if not self.open:
            what, why = self._what, type(exc).__name__
            log.warning("%s cannot be reached (%s); %s until it answers", what, why, self._fallback)
        self.open = True

    def succeeded(self) -> bool:
        """Close the breaker; True when it was open (the store has just come back)."""
        if not self.open:
            return False
        log.warning("%s answers again", self._what)
        self.open = False
        return True

    async def probe(self, ping: Callable[[], Awaitable[object]], timeout_s: float) -> bool:
        """Ask the store once, bounded by `timeout_s`; True when it has just come back."""
        try:
            async with asyncio.timeout(timeout_s):
                await ping()
        except Exception as exc:  # noqa: BLE001 - any failure to answer keeps the breaker open
            self.failed(exc)
            return False
        return self.succeeded()
