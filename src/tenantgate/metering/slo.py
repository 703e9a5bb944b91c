"""Time-to-first-token targets per plan (`ttft_slo_ms`): how many streams met them.

Counted for streamed requests that succeeded: a non-streamed answer's first byte is its last, so its
time to first byte says nothing about the first token. Attainment is `met="true"` over the total.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class TtftSlo:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "tenantgate_ttft_slo_requests", "Streamed requests of plans with a TTFT target, by whether the first "
            "token came within it", ["plan", "met"], registry=registry,
        )  # fmt: skip
        self._children: dict[tuple[str, bool], Counter] = {}

    def observe(self, plan: str, ttft_ms: float, target_ms: float) -> None:
        met = ttft_ms <= target_ms
        child = self._children.get((plan, met))
        if child is None:
            child = self._children[(plan, met)] = self.requests.labels(plan, "true" if met else "false")
        child.inc()
