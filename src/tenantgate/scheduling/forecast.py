"""Measurements behind the predicted start time: served cost per second and expected output length.

Nothing here is a constant guess: the rate is what the deployment actually served while it was
saturated, and the output length is each tenant's recent history (the VTC-predict estimator: an
average over about the last five requests).
"""

from __future__ import annotations

import math


class ServiceRate:
    """Cost units served per second, averaged over windows in which work was waiting throughout.

    Windows with an empty queue say how much was asked, not what the deployment can do, so they
    are not sampled. `value` is None until one saturated window has been seen.
    """

    def __init__(self, window_s: float = 2.0, smoothing: float = 0.3) -> None:
        self.window_s = window_s
        self.smoothing = smoothing
        self.value: float | None = None
        self._start: float | None = None
        self._cost = 0.0
        self._saturated = True

    def record(self, cost: float, now: float, saturated: bool) -> None:
        if self._start is None:
            self._start, self._saturated = now, saturated
        self._cost += cost
        self._saturated = self._saturated and saturated
        elapsed = now - self._start
        if elapsed < self.window_s:
            return
        if self._saturated:
            sample = self._cost / elapsed
            self.value = sample if self.value is None else self.value + self.smoothing * (sample - self.value)
        self._start, self._cost, self._saturated = now, 0.0, saturated


class OutputPredictor:
    """Expected output tokens per tenant: a running average that forgets with a window of about five."""

    def __init__(self, window: int = 5) -> None:
        self.window = window
        self._mean: dict[str, float] = {}

    def observe(self, tenant: str, output_tokens: int) -> None:
        mean = self._mean.get(tenant)
        self._mean[tenant] = (
            float(output_tokens) if mean is None else (mean * (self.window - 1) + output_tokens) / self.window
        )

    def expect(self, tenant: str, max_output: int) -> float:
        mean = self._mean.get(tenant)
        return float(max_output) if mean is None else min(float(max_output), mean)


class ArrivalRates:
    """Cost arriving per second, per tenant: an exponentially decaying sum over about `horizon_s`."""

    def __init__(self, horizon_s: float = 60.0) -> None:
        self.horizon_s = horizon_s
        self._sums: dict[str, tuple[float, float]] = {}  # tenant -> (decayed sum, at)

    def record(self, tenant: str, cost: float, now: float) -> None:
        total, at = self._sums.get(tenant, (0.0, now))
        self._sums[tenant] = (total * math.exp((at - now) / self.horizon_s) + cost, now)

    def rates(self, now: float) -> dict[str, float]:
        return {
            tenant: total * math.exp((at - now) / self.horizon_s) / self.horizon_s
            for tenant, (total, at) in self._sums.items()
        }
