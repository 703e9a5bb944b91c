"""GPU-time attribution: a deployment's busy GPU time, shared among the requests running on it.

While n requests are in flight on a deployment with g GPUs, each accrues dt * g / n. A running sum
`share` (GPU-seconds one request would have accrued since start-up) makes that O(1): a request
keeps the value of `share` when it starts and takes the difference when it ends. The requests'
shares add up to the deployment's busy GPU time; time with nothing in flight is counted as idle.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class GpuClock:
    __slots__ = ("_clock", "_last", "_running", "_share", "busy_gpu_s", "gpus", "idle_s", "since")

    def __init__(self, gpus: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.gpus = gpus
        self._clock = clock
        self.since = self._last = clock()
        self._running = 0
        self._share = 0.0
        self.busy_gpu_s = 0.0  # GPU-seconds with at least one request in flight
        self.idle_s = 0.0  # wall seconds with none

    def _advance(self) -> None:
        now = self._clock()
        elapsed = now - self._last
        self._last = now
        if self._running:
            self._share += elapsed * self.gpus / self._running
            self.busy_gpu_s += elapsed * self.gpus
        else:
            self.idle_s += elapsed

    def begin(self) -> float:
        """A request starts running here; keep the returned mark for `end`."""
        self._advance()
        self._running += 1
        return self._share

    def end(self, mark: float) -> float:
        """The request ends; returns its GPU-seconds."""
        self._advance()
        self._running -= 1
        return self._share - mark

    def utilisation(self) -> dict[str, float]:
        self._advance()
        wall = self._last - self.since
        capacity = wall * self.gpus
        return {
            "gpus": self.gpus,
            "busy_gpu_seconds": self.busy_gpu_s,
            "idle_seconds": self.idle_s,
            "utilisation": self.busy_gpu_s / capacity if capacity > 0 else 0.0,
        }
