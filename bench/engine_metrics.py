"""CPU cost of reading an engine's load: parsing a vLLM-sized /metrics page, and one whole scrape
(HTTP GET against the simulated engine, then parsing), as the capacity-discovery loop does twice a
second per deployment.

Usage: python bench/engine_metrics.py [--n 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from tenantgate.providers.http import Sessions
from tenantgate.providers.openai_compat import OpenAICompatProvider
from tenantgate.routing.catalog import Deployment
from tenantgate.routing.engine_load import read_engine_load
from tenantgate.sim.config import SimConfig
from tenantgate.sim.server import start_sim_engine
from tenantgate.sim.wire import metrics_text

HISTOGRAMS = ("time_to_first_token_seconds", "e2e_request_latency_seconds", "request_prompt_tokens",
              "request_generation_tokens", "inter_token_latency_seconds", "request_queue_time_seconds",
              "request_prefill_time_seconds", "request_decode_time_seconds", "iteration_tokens_total",
              "request_inference_time_seconds")  # fmt: skip


def vllm_sized_page() -> str:
    """The three gauges the gateway reads among ten 30-bucket histograms, about the size of vLLM's page."""
    lines = [metrics_text(("m",), 8, 3, 0.42).decode()]
    for name in HISTOGRAMS:
        lines.append(f"# HELP vllm:{name} A histogram.\n# TYPE vllm:{name} histogram\n")
        for bucket in range(30):
            lines.append(f'vllm:{name}_bucket{{le="{bucket * 0.5}",model_name="m"}} {bucket * 7}.0\n')
        lines.append(f'vllm:{name}_sum{{model_name="m"}} 1234.5\nvllm:{name}_count{{model_name="m"}} 210.0\n')
    return "".join(lines)


async def scrape_cost(n: int) -> float:
    runner, port = await start_sim_engine("127.0.0.1", 0, SimConfig(instant=True))
    provider = OpenAICompatProvider(Sessions(connect_timeout_s=2, read_timeout_s=5))
    deployment = Deployment("sim", "p", "", "openai", f"http://127.0.0.1:{port}/v1", frozenset({"m"}), None,
                            metrics_url=f"http://127.0.0.1:{port}/metrics")  # fmt: skip
    try:
        await provider.engine_load(deployment)  # connection set up once, as in the loop
        started = time.process_time()
        for _ in range(n):
            assert await provider.engine_load(deployment) is not None
        return (time.process_time() - started) / n * 1e6  # both ends run in this process: an upper bound
    finally:
        await provider.aclose()
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    n = parser.parse_args().n
    page = vllm_sized_page()
    started = time.perf_counter()
    for _ in range(n):
        assert read_engine_load(page) is not None
    parse_us = (time.perf_counter() - started) / n * 1e6
    scrape_us = asyncio.run(scrape_cost(n))
    print(json.dumps({"page_bytes": len(page), "parse_us": round(parse_us, 1),
                      "scrape_cpu_us_both_ends": round(scrape_us, 1), "n": n}))  # fmt: skip


if __name__ == "__main__":
    main()
