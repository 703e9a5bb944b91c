"""Billing records: usage rollups, credit grants, invoices. Plain dataclasses shared with storage."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ddsketch.ddsketch import BaseDDSketch
from ddsketch.mapping import LogarithmicMapping
from ddsketch.store import DenseStore

SKETCH_ACCURACY = 0.01  # relative accuracy of the percentiles (1 %)
# One mapping for every sketch (what DDSketch(SKETCH_ACCURACY) makes): nothing changes it once made,
# and making one for each sketch, three a rollup row, took 3.2 of the 4.8 us a new sketch cost.
SKETCH_MAPPING = LogarithmicMapping(SKETCH_ACCURACY)


def new_sketch() -> BaseDDSketch:
    return BaseDDSketch(SKETCH_MAPPING, DenseStore(), DenseStore(), 0.0)


@dataclass(frozen=True, slots=True)
class RollupKey:
    """The dimensions of a rollup row; '' stands for none (no user, never reached a deployment)."""

    bucket: datetime  # start of the hour or UTC day
    tenant_id: str
    key_id: str
    user_id: str
    endpoint: str
    model: str
    deployment: str
    pool: str


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """One tenant's use of one model over a range, summed by the database: no percentiles."""

    tenant_id: str
    model: str
    requests: int
    errors: int
    rejected: int
    prompt_tokens: int
    completion_tokens: int
    gpu_seconds: float
    charged_micros: int
    gpu_cost_micros: int
    slo_requests: int = 0
    slo_met: int = 0
    queue_waits: int = 0
    queue_wait_ms_sum: float = 0.0


@dataclass(slots=True)
class Rollup:
    key: RollupKey
    requests: int = 0  # attempts that were admitted (refused ones are in `rejected`)
    errors: dict[str, int] = field(default_factory=dict)  # error type -> admitted requests that failed
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    estimated: int = 0  # requests whose usage the gateway counted (cut streams)
    gpu_seconds: float = 0.0
    charged_micros: int = 0  # what the tenant is charged for usage (the events' cost)
    gpu_cost_micros: int = 0  # the operator's cost of the GPU time, at the deployment's cost per GPU-hour
    ttft_ms: BaseDDSketch = field(default_factory=new_sketch)
    queue_wait_ms: BaseDDSketch = field(default_factory=new_sketch)
    latency_ms: BaseDDSketch = field(default_factory=new_sketch)
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> attempts refused with a 429
    slo_requests: int = 0  # streams of plans with a TTFT target that succeeded
    slo_met: int = 0  # ... whose first token came within the target
    queue_waits: int = 0  # requests that reached the fair queue (the sketch's count, kept as a number)
    queue_wait_ms_sum: float = 0.0  # their waits added up: a mean without reading the sketch

    def counts_only(self) -> Rollup:
        """This row without its latency sketches: what a month row keeps."""
        return Rollup(
            self.key, self.requests, dict(self.errors), self.prompt_tokens, self.completion_tokens, self.cached_tokens,
            self.estimated, self.gpu_seconds, self.charged_micros, self.gpu_cost_micros, rejected=dict(self.rejected),
            slo_requests=self.slo_requests, slo_met=self.slo_met, queue_waits=self.queue_waits,
            queue_wait_ms_sum=self.queue_wait_ms_sum,
        )  # fmt: skip

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def totals(self) -> UsageTotals:
        return UsageTotals(
            self.key.tenant_id, self.key.model, self.requests, self.error_count, self.rejected_count,
            self.prompt_tokens, self.completion_tokens, self.gpu_seconds, self.charged_micros, self.gpu_cost_micros,
            self.slo_requests, self.slo_met, self.queue_waits, self.queue_wait_ms_sum,
        )  # fmt: skip

    @property
    def rejected_count(self) -> int:
        return sum(self.rejected.values())

    def merge(self, other: Rollup, sketches: bool = True) -> None:
        """Add `other` into this row (its latency sketches too, unless `sketches` is false)."""
        self.requests += other.requests
        for kind, count in other.errors.items():
            self.errors[kind] = self.errors.get(kind, 0) + count
        for reason, count in other.rejected.items():
            self.rejected[reason] = self.rejected.get(reason, 0) + count
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_tokens += other.cached_tokens
        self.estimated += other.estimated
        self.gpu_seconds += other.gpu_seconds
        self.charged_micros += other.charged_micros
        self.gpu_cost_micros += other.gpu_cost_micros
        self.slo_requests += other.slo_requests
        self.slo_met += other.slo_met
        self.queue_waits += other.queue_waits
        self.queue_wait_ms_sum += other.queue_wait_ms_sum
        if not sketches:
            return
        for mine, theirs in (
            (self.ttft_ms, other.ttft_ms),
            (self.queue_wait_ms, other.queue_wait_ms),
            (self.latency_ms, other.latency_ms),
        ):
            if theirs.count:
                mine.merge(theirs)


@dataclass(frozen=True, slots=True)
class CreditGrant:
    """Prepaid credit: burned down by invoices, soonest-expiring first, then oldest first."""

    id: str
    tenant_id: str
    amount_micros: int
    granted_at: datetime
    expires_at: datetime | None
    note: str


@dataclass(frozen=True, slots=True)
class FinalInvoice:
    """A finalised invoice: its document never changes; corrections are credit notes."""

    id: str
    tenant_id: str
    month: str  # YYYY-MM
    total_micros: int
    document: dict[str, object]
    finalized_at: datetime
    credits: tuple[tuple[str, int], ...] = ()  # (grant id, micros applied)


@dataclass(frozen=True, slots=True)
class CreditNote:
    id: str
    invoice_id: str
    tenant_id: str
    amount_micros: int
    reason: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Webhook:
    tenant_id: str
    url: str
    secret: str
    created_at: datetime
