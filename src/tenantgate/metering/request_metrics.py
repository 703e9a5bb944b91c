"""Per-request counters the operator watches: refused attempts by reason, and time-to-first-token
targets per plan (`ttft_slo_ms`).

The TTFT target is counted for streamed requests that succeeded: a non-streamed answer's first byte
is its last, so it says nothing about the first token. Attainment is `met="true"` over the total.
Refusals (429: a limit, a quota, a full queue) are attempts, not requests that failed: they are
counted here and apart from errors in the usage rollups.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class RequestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.slo = Counter(
            "tenantgate_ttft_slo_requests", "Streamed requests of plans with a TTFT target, by whether the first "
            "token came within it", ["plan", "met"], registry=registry,
        )  # fmt: skip
        self.refusals = Counter(
            "tenantgate_requests_rejected", "Attempts refused with 429, by reason", ["reason"], registry=registry
        )
        self._slo: dict[tuple[str, bool], Counter] = {}
        self._refusals: dict[str, Counter] = {}

    def ttft(self, plan: str, met: bool) -> None:
        child = self._slo.get((plan, met))
        if child is None:
            child = self._slo[(plan, met)] = self.slo.labels(plan, "true" if met else "false")
        child.inc()

    def rejected(self, reason: str) -> None:
        child = self._refusals.get(reason)
        if child is None:  # reasons are the gateway's own error codes: a short, fixed list
            child = self._refusals[reason] = self.refusals.labels(reason)
        child.inc()
