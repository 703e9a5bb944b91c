"""The per-request series an operator watches: what they count, and that tenants cannot make them unbounded."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from tenantgate.domain import Principal, Usage
from tenantgate.metering.request_metrics import RequestMetrics
from tenantgate.scheduling.metrics import MAX_TENANT_LABELS, desired_deployments


def principal(n: int) -> Principal:
    return Principal(f"t{n}", f"tenant-{n}", f"k{n}", None, "growth", None, None)


def test_requests_tokens_and_stream_timings_are_counted_per_tenant_and_deployment() -> None:
    registry = CollectorRegistry()
    metrics = RequestMetrics(registry)
    acme = principal(1)
    metrics.finished(acme, "vllm-a", 200, None, Usage(10, 21), ttft_s=0.2, duration_s=1.2, streamed=True)
    metrics.finished(acme, "vllm-a", 200, None, Usage(5, 3), ttft_s=0.5, duration_s=0.5, streamed=False)
    metrics.finished(acme, None, 429, "rate_limit_exceeded", Usage(), ttft_s=None, duration_s=0.001, streamed=False)
    metrics.finished(acme, "vllm-a", 502, "upstream_error", Usage(), ttft_s=None, duration_s=0.1, streamed=True)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("tenantgate_requests_total", tenant="tenant-1", outcome="ok") == 2
    assert value("tenantgate_requests_total", tenant="tenant-1", outcome="refused") == 1
    assert value("tenantgate_requests_total", tenant="tenant-1", outcome="server_error") == 1
    assert value("tenantgate_tokens_total", tenant="tenant-1", kind="prompt") == 15
    assert value("tenantgate_tokens_total", tenant="tenant-1", kind="completion") == 24
    assert value("tenantgate_deployment_requests_total", deployment="vllm-a", outcome="server_error") == 1
    # Only the successful stream is timed: its first token at 0.2 s, then 20 tokens in 1.0 s.
    assert value("tenantgate_ttft_seconds_count", deployment="vllm-a") == 1
    assert value("tenantgate_ttft_seconds_sum", deployment="vllm-a") == 0.2
    assert value("tenantgate_time_per_output_token_seconds_sum", deployment="vllm-a") == 1.0 / 20


def test_tenants_past_the_label_limit_share_one_series() -> None:
    registry = CollectorRegistry()
    metrics = RequestMetrics(registry)
    for n in range(MAX_TENANT_LABELS + 50):
        metrics.finished(principal(n), None, 200, None, Usage(1, 1), ttft_s=None, duration_s=0.01, streamed=False)
    tenants = {
        sample.labels["tenant"]
        for family in registry.collect() if family.name == "tenantgate_requests"
        for sample in family.samples if sample.name == "tenantgate_requests_total"
    }  # fmt: skip
    assert len(tenants) == MAX_TENANT_LABELS + 1 and "other" in tenants
    assert registry.get_sample_value("tenantgate_requests_total", {"tenant": "other", "outcome": "ok"}) == 50


def test_the_autoscaling_signal_follows_load_and_the_predicted_wait() -> None:
    # 4 deployments half busy, no wait: 2 would do.
    assert desired_deployments(4, in_flight=64, budget=128, longest_wait_s=0.0, target_s=2.0) == 2
    # Full, and the longest predicted wait is 3 times the target: 3 times the capacity clears it in time.
    assert desired_deployments(4, in_flight=128, budget=128, longest_wait_s=6.0, target_s=2.0) == 12
    # Idle, or every deployment down with work waiting: never below 1.
    assert desired_deployments(4, in_flight=0, budget=128, longest_wait_s=0.0, target_s=2.0) == 1
    assert desired_deployments(0, in_flight=0, budget=0, longest_wait_s=5.0, target_s=2.0) == 3
