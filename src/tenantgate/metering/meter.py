"""One usage event per authenticated request, built when the request ends however it ends."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tenantgate.billing.prices import PriceBook
from tenantgate.clock import utcnow
from tenantgate.domain import REFUSED_STATUS, Principal, Usage, UsageEvent
from tenantgate.metering.codec import recorded_model
from tenantgate.metering.recorder import UsageRecorder
from tenantgate.metering.request_metrics import RequestMetrics
from tenantgate.tracing import end_span

if TYPE_CHECKING:
    from opentelemetry.trace import Span

_NO_USAGE = Usage()


@dataclass(frozen=True, slots=True)
class Served:
    """Where the request ran and for how long it waited and held GPUs there."""

    deployment: str | None = None
    pool: str | None = None
    queue_wait_ms: int | None = None
    gpu_seconds: float = 0.0
    overhead_s: float | None = None  # the gateway's own time before the engine got it (queue wait excluded)


_NOWHERE = Served()


class RequestMeter:
    __slots__ = (
        "_done",
        "_first_byte",
        "_started",
        "endpoint",
        "metrics",
        "model",
        "prices",
        "principal",
        "recorder",
        "request_id",
        "slo_target_ms",
        "span",
        "streamed",
    )  # fmt: skip

    def __init__(
        self, recorder: UsageRecorder, prices: PriceBook, principal: Principal, request_id: str, endpoint: str,
        model: str, started: float, metrics: RequestMetrics | None = None, slo_target_ms: float | None = None,
        streamed: bool = False, span: Span | None = None,
    ) -> None:  # fmt: skip
        self.recorder = recorder
        self.streamed = streamed
        self.span = span  # the request's trace span, when tracing is on
        self.metrics = metrics
        self.slo_target_ms = slo_target_ms  # a stream of a plan with a TTFT target
        self.prices = prices
        self.principal = principal
        self.request_id = request_id
        self.endpoint = endpoint
        self.model = model
        self._started = started
        self._first_byte: float | None = None
        self._done = False

    def first_byte(self) -> None:
        if self._first_byte is None:
            self._first_byte = time.perf_counter()

    def finish(
        self, status: int, error_type: str | None, usage: Usage | None = None, served: Served = _NOWHERE,
        kept: Usage | None = None,
    ) -> None:  # fmt: skip
        """Record the event, priced at the price in force now; idempotent so every exit path may call it.
        `kept`: the answer came from the response cache, and this is what it used when it was made."""
        if self._done:
            return
        self._done = True
        now = time.perf_counter()
        ttft = None if self._first_byte is None else (self._first_byte - self._started) * 1000
        usage = usage or _NO_USAGE
        slo_met = None
        if self.slo_target_ms is not None and ttft is not None and status == 200:
            slo_met = ttft <= self.slo_target_ms
        if self.metrics is not None:
            if status == REFUSED_STATUS:
                self.metrics.rejected(error_type or "rate_limit_exceeded")
            elif slo_met is not None:
                self.metrics.ttft(self.principal.plan, slo_met)
            ttft_s = None if ttft is None else ttft / 1000
            self.metrics.finished(
                self.principal, served.deployment, status, error_type, usage, ttft_s, now - self._started, self.streamed
            )
            if served.overhead_s is not None:
                self.metrics.overhead.observe(served.overhead_s)
        if self.span is not None:
            end_span(self.span, status, error_type, usage, served.deployment, served.queue_wait_ms, ttft)
        created = utcnow()
        cost, version = self.prices.cost(self.model, usage, served.gpu_seconds, created)
        saved = 0 if kept is None else self.prices.cost(self.model, kept, 0.0, created)[0]
        self.recorder.record(
            UsageEvent(
                request_id=self.request_id,
                tenant_id=self.principal.tenant_id,
                key_id=self.principal.key_id,
                user_id=self.principal.user_id,
                model=recorded_model(self.model),
                deployment=served.deployment,
                endpoint=self.endpoint,
                status=status,
                error_type=error_type,
                usage=usage,
                ttft_ms=ttft,
                latency_ms=(now - self._started) * 1000,
                queue_wait_ms=served.queue_wait_ms,
                created_at=created,
                pool=served.pool,
                gpu_seconds=served.gpu_seconds,
                cost_micros=cost,
                price_version=version,
                ttft_slo_met=slo_met,
                cache_hit=kept is not None,
                saved_micros=saved,
            )
        )
