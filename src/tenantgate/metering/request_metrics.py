"""Per-request counters the operator watches: requests and tokens per tenant, requests, TTFT and time
per output token per deployment, refused attempts by reason, and time-to-first-token targets per
plan (`ttft_slo_ms`).

Tenants are labelled by slug, at most MAX_TENANT_LABELS of them (the first seen); the rest share
`tenant="other"`, so the series stay bounded however many tenants there are. `outcome` is one of
ok, refused (429: a limit or a full queue), client_error, client_closed and server_error (the
error codes themselves are in the usage events).

The TTFT target is counted for streamed requests that succeeded: a non-streamed answer's first byte
is its last, so it says nothing about the first token. Attainment is `met="true"` over the total.
Refusals (429: a limit, a quota, a full queue) are attempts, not requests that failed: they are
counted here and apart from errors in the usage rollups.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram

from tenantgate.domain import CLIENT_CLOSED, REFUSED_STATUS, Principal, Usage
from tenantgate.metering.velocity import VelocityWatch
from tenantgate.scheduling.metrics import MAX_TENANT_LABELS, OTHER

LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
OVERHEAD_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)
PER_TOKEN_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 1)
Metric = TypeVar("Metric", Counter, Histogram)


class RequestMetrics:
    def __init__(self, registry: CollectorRegistry, velocity: VelocityWatch | None = None) -> None:
        self.velocity = velocity
        self.slo = Counter(
            "tenantgate_ttft_slo_requests", "Streamed requests of plans with a TTFT target, by whether the first "
            "token came within it", ["plan", "met"], registry=registry,
        )  # fmt: skip
        self.refusals = Counter(
            "tenantgate_requests_rejected", "Attempts refused with 429, by reason", ["reason"], registry=registry
        )
        self.requests = Counter(
            "tenantgate_requests",
            "Requests that ended, by tenant and outcome",
            ["tenant", "outcome"],
            registry=registry,
        )
        self.tokens = Counter(
            "tenantgate_tokens", "Tokens metered, by tenant and kind (prompt, completion)", ["tenant", "kind"],
            registry=registry,
        )  # fmt: skip
        self.served = Counter(
            "tenantgate_deployment_requests", "Requests a deployment served, by outcome", ["deployment", "outcome"],
            registry=registry,
        )  # fmt: skip
        self.first_token = Histogram(
            "tenantgate_ttft_seconds", "Time to first token of successful streams", ["deployment"],
            buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.per_token = Histogram(
            "tenantgate_time_per_output_token_seconds", "Time per output token after the first, successful streams",
            ["deployment"], buckets=PER_TOKEN_BUCKETS, registry=registry,
        )  # fmt: skip
        self.overhead = Histogram(
            "tenantgate_gateway_overhead_seconds", "The gateway's own time on a request before an engine got it: "
            "authentication, parsing, admission and placement, queue wait excluded", buckets=OVERHEAD_BUCKETS,
            registry=registry,
        )  # fmt: skip
        self._slo: dict[tuple[str, bool], Counter] = {}
        self._refusals: dict[str, Counter] = {}
        self._children: dict[tuple[object, Hashable], object] = {}  # (metric, labels) -> child, looked up once
        self._tenants: dict[str, str] = {}  # tenant id -> its label

    def _child(self, metric: Metric, labels: tuple[str, ...]) -> Metric:
        child = self._children.get((id(metric), labels))
        if child is None:
            child = self._children[(id(metric), labels)] = metric.labels(*labels)
        return child  # type: ignore[return-value]

    def _tenant(self, principal: Principal) -> str:
        label = self._tenants.get(principal.tenant_id)
        if label is None:
            label = principal.tenant_slug if len(self._tenants) < MAX_TENANT_LABELS else OTHER
            self._tenants[principal.tenant_id] = label
        return label

    def finished(
        self, principal: Principal, deployment: str | None, status: int, error_type: str | None, usage: Usage,
        ttft_s: float | None, duration_s: float, streamed: bool,
    ) -> None:  # fmt: skip
        if self.velocity is not None:
            self.velocity.seen(principal.tenant_id, principal.tenant_slug, principal.key_id)
        tenant = self._tenant(principal)
        outcome = outcome_of(status)
        self._child(self.requests, (tenant, outcome)).inc()
        if usage.prompt_tokens:
            self._child(self.tokens, (tenant, "prompt")).inc(usage.prompt_tokens)
        if usage.completion_tokens:
            self._child(self.tokens, (tenant, "completion")).inc(usage.completion_tokens)
        if deployment is None:
            return
        self._child(self.served, (deployment, outcome)).inc()
        if streamed and status == 200 and ttft_s is not None:
            self._child(self.first_token, (deployment,)).observe(ttft_s)
            if usage.completion_tokens > 1:
                per_token = (duration_s - ttft_s) / (usage.completion_tokens - 1)
                self._child(self.per_token, (deployment,)).observe(per_token)

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


def outcome_of(status: int) -> str:
    if status < 400:
        return "ok"
    if status == REFUSED_STATUS:
        return "refused"
    if status == CLIENT_CLOSED:
        return "client_closed"
    return "client_error" if status < 500 else "server_error"
