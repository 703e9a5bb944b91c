"""What an operator's Prometheus reads after a tenant's requests: its requests and tokens, and the
gateway's own overhead on each, apart from the engine's time and the queue's."""

from __future__ import annotations

import time

import openai
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.procs import Gateway


def samples(gw: Gateway) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with gw.admin() as admin:
        text = admin.get("/metrics").text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_process_reports_its_memory_and_descriptors_once(gw: Gateway) -> None:
    with gw.admin() as admin:
        names = [family.name for family in text_string_to_metric_families(admin.get("/metrics").text)]
    assert len(names) == len(set(names))  # no collector registered twice
    process = samples(gw)
    assert process[("process_resident_memory_bytes", frozenset())] > 10 * 2**20
    assert process[("process_open_fds", frozenset())] > 0
    assert ("python_gc_collections_total", frozenset({("generation", "0")})) in process
    assert process[("tenantgate_gc_seconds_total", frozenset({("generation", "2")}))] > 0  # start-up's own


def test_requests_tokens_and_the_gateway_overhead_are_counted(gw: Gateway) -> None:
    key = gw.tenant_with_key("metered-metrics")
    api = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    before = samples(gw)
    took = 0.0
    completion_tokens = 0
    for _ in range(3):
        start = time.perf_counter()
        answer = api.chat.completions.create(
            model="sim-small", messages=[{"role": "user", "content": "hi"}], max_tokens=3
        )
        took += time.perf_counter() - start
        assert answer.usage is not None
        completion_tokens += answer.usage.completion_tokens
    start = time.perf_counter()
    stream = api.chat.completions.create(
        model="sim-small", messages=[{"role": "user", "content": "hi"}], max_tokens=3, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    for chunk in stream:
        if chunk.usage is not None:
            completion_tokens += chunk.usage.completion_tokens
    took += time.perf_counter() - start
    after = samples(gw)

    def added(name: str, **labels: str) -> float:
        at = (name, frozenset(labels.items()))
        return after.get(at, 0.0) - before.get(at, 0.0)

    assert added("tenantgate_requests_total", tenant="metered-metrics", outcome="ok") == 4
    assert added("tenantgate_tokens_total", tenant="metered-metrics", kind="completion") == completion_tokens
    # Each of the four was timed once, and the gateway's part is a small share of what the client waited.
    assert added("tenantgate_gateway_overhead_seconds_count") == 4
    overhead = added("tenantgate_gateway_overhead_seconds_sum")
    assert 0 < overhead < took / 2, (overhead, took)
