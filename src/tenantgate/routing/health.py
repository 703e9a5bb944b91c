"""A deployment's health: the latest active probe plus a passive circuit breaker.

The breaker opens after `failures_to_open` consecutive failures (connection errors, 5xx before the
first byte) and refuses traffic for `cooldown_s`; after that, requests are let through again and the
first failure re-opens it at once, the first success closes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Health:
    def __init__(
        self, failures_to_open: int = 3, cooldown_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failures_to_open = failures_to_open
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.probe_ok = True
        self.failures = 0
        self.open_until: float | None = None

    def success(self) -> None:
        self.failures = 0
        self.open_until = None

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.failures_to_open:
            self.open_until = self.clock() + self.cooldown_s

    @property
    def available(self) -> bool:
        return self.probe_ok and (self.open_until is None or self.clock() >= self.open_until)

    @property
    def state(self) -> str:
        if not self.probe_ok:
            return "probe_failed"
        if self.open_until is None:
            return "healthy"
        return "circuit_open" if self.clock() < self.open_until else "half_open"
