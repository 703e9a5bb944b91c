"""A deployment's health: the latest active probe plus a passive circuit breaker.

The breaker opens after `failures_to_open` consecutive failures (connection errors, 5xx before the
first byte) and refuses traffic for `cooldown_s`. Then it is half-open: placement lets requests
through until one is sent (the trial), and none while that trial is out; the trial's failure
re-opens the circuit at once, its success closes it.
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
        self.trial = False  # half-open: one request is out to test the deployment

    def sending(self) -> bool:
        """A request goes to the deployment now. True if it is the half-open circuit's trial."""
        if self.open_until is None:
            return False
        self.trial = True
        return True

    def success(self) -> None:
        self.failures = 0
        self.open_until = None
        self.trial = False

    def failure(self) -> bool:
        """Count a failure; True when it opened (or re-opened) the circuit."""
        self.failures += 1
        self.trial = False
        if self.failures < self.failures_to_open:
            return False
        self.open_until = self.clock() + self.cooldown_s
        return True

    def no_verdict(self) -> None:
        """The trial ended without an answer: let the next request try."""
        self.trial = False

    @property
    def available(self) -> bool:
        if not self.probe_ok:
            return False
        return self.open_until is None or (self.clock() >= self.open_until and not self.trial)

    @property
    def state(self) -> str:
        if not self.probe_ok:
            return "probe_failed"
        if self.open_until is None:
            return "healthy"
        return "circuit_open" if self.clock() < self.open_until else "half_open"
