"""What an engine says about its own load: requests running, requests waiting, KV cache in use.

Read from the Prometheus text the engines publish, under each engine's documented names (vLLM,
SGLang, TGI, llama.cpp). Only the few lines that matter go through the parser, because a vLLM
/metrics page is mostly histograms and is scraped twice a second.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True, slots=True)
class EngineDialect:
    engine: str
    running: str
    waiting: str
    kv_usage: tuple[str, ...] = ()  # 0..1, the first one present counts


DIALECTS = (
    EngineDialect("vllm", "vllm:num_requests_running", "vllm:num_requests_waiting",
                  ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")),
    EngineDialect("sglang", "sglang:num_running_reqs", "sglang:num_queue_reqs", ("sglang:token_usage",)),
    EngineDialect("tgi", "tgi_batch_current_size", "tgi_queue_size"),
    EngineDialect("llama.cpp", "llamacpp:requests_processing", "llamacpp:requests_deferred",
                  ("llamacpp:kv_cache_usage_ratio",)),
)  # fmt: skip
_SHARES = frozenset(name for d in DIALECTS for name in d.kv_usage)
_NAMES = tuple(sorted({name for d in DIALECTS for name in (d.running, d.waiting)} | _SHARES))


@dataclass(frozen=True, slots=True)
class EngineLoad:
    engine: str
    running: int
    waiting: int
    kv_usage: float | None = None


def read_engine_load(text: str) -> EngineLoad | None:
    """The load in a /metrics page, summed over its label sets; None when no known engine's gauges are in it."""
    wanted = "\n".join(line for line in text.splitlines() if line.startswith(_NAMES))
    values: dict[str, float] = {}  # counts summed over label sets (data-parallel ranks), shares at their highest
    try:
        for family in text_string_to_metric_families(wanted):
            for sample in family.samples:
                before = values.get(sample.name)
                if before is None:
                    values[sample.name] = sample.value
                elif sample.name in _SHARES:
                    values[sample.name] = max(before, sample.value)
                else:
                    values[sample.name] = before + sample.value
    except ValueError:
        return None  # not Prometheus text after all
    for dialect in DIALECTS:
        if dialect.running in values and dialect.waiting in values:
            kv = next((values[name] for name in dialect.kv_usage if name in values), None)
            return EngineLoad(dialect.engine, round(values[dialect.running]), round(values[dialect.waiting]), kv)
    return None


def metrics_url(base_url: str) -> str:
    """Where an OpenAI-compatible engine publishes its metrics: /metrics at the root of its API."""
    root = base_url.removesuffix("/v1")
    return root + "/metrics"
