"""Before and after on the hot path: this checkout against an earlier commit, measured in turns.

Both gateways run at once (the earlier one from a temporary git worktree), against one instant
simulated upstream, with the same configuration as `bench/run.py` (every limit kind active,
in-process counters). Only one is under load at a time, and the turns alternate, so the machine's
drift over the run falls on both alike. Prints the median of each metric and after/before. On a
small shared machine the gateway's CPU time per request (at c=64) and per streamed chunk move less
than req/s, which also depends on what the load generator and the upstream get of the cores.
With two or more cores the gateway under test runs alone on core 1.
With `--redis URL` both use Redis counters (TENANTGATE_REDIS_URL) instead.
With `--also N`, each turn first also measures req/s and p99 at N connections. The garbage collector's
runs and time per request at c=64, and the usage events written meanwhile per request served (below 1
when the usage writer falls behind), come from the gateway's /metrics. The CPU of a load (c=64, the
streams) is counted from its start until the gateway rests again: what it deferred (usage writes,
rollups) is its own, and what the load before it deferred is not.
Usage: python bench/ab.py --before REF [--after REF] [--rounds 5] [--seconds 5] [--redis URL] [--also 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).parent))

from builds import GATEWAY_CORE, add_refs, checkouts, medians, serve_args
from loads import streams, wrk
from procs import TENANTGATE, cpu_seconds, free_port, quiet, spawn, stop, wait_http
from run import ADMIN, STREAM_TOKENS, make_key


def start_gateway(
    name: str, upstream: str, workdir: Path, source: Path, redis: str | None
) -> tuple[subprocess.Popen[bytes], str]:
    """A gateway whose package comes from `source` (a checkout's src directory)."""
    args, env, url = serve_args(name, upstream, workdir, source)
    if redis:
        env["TENANTGATE_REDIS_URL"] = redis
    process = spawn([*GATEWAY_CORE, *args], env)
    wait_http(url + "/readyz")
    return process, url


WATCHED = ("python_gc_collections_total", "tenantgate_gc_seconds_total", "tenantgate_usage_written_total")


def watched(url: str) -> dict[str, float]:
    """The garbage collector's runs and seconds and the usage events written so far, from /metrics."""
    text = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"}).text
    totals = dict.fromkeys(WATCHED, 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in totals:
                totals[sample.name] += sample.value
    return totals


def one_turn(
    url: str, key: str, pid: int, seconds: int, stream_total: int, also: int | None = None
) -> dict[str, float]:
    extra = {}
    if also:  # a steady load below saturation: its tail shows what holds the event loop up
        at = wrk(url, key, also, seconds)
        extra = {f"rps_c{also}": at["rps"], f"p99_ms_c{also}": at["p99_ms"]}
        if at["errors"]:
            raise SystemExit(f"{url} answered with errors; its numbers would be meaningless")
    c1 = wrk(url, key, 1, seconds)
    quiet(pid)  # each load's CPU is counted until what it left behind (usage writes, rollups) is done
    before, watched_before = cpu_seconds(pid), watched(url)
    c64 = wrk(url, key, 64, seconds)
    requests = max(1.0, c64["rps"] * seconds)
    runs, spent, written = (after - watched_before[name] for name, after in watched(url).items())
    quiet(pid)
    cpu_per_request = (cpu_seconds(pid) - before) / requests * 1e6
    before = cpu_seconds(pid)
    stream = streams(url, key, concurrency=16, total=stream_total, tokens=STREAM_TOKENS)
    quiet(pid)
    if c1["errors"] or c64["errors"] or stream["failures"]:
        raise SystemExit(f"{url} answered with errors; its numbers would be meaningless")
    return {
        "rps_c1": c1["rps"],
        "p50_ms_c1": c1["p50_ms"],
        "rps_c64": c64["rps"],
        "p99_ms_c64": c64["p99_ms"],
        "cpu_us_per_request": cpu_per_request,
        "cpu_us_per_chunk": (cpu_seconds(pid) - before) / max(1, stream["chunks"]) * 1e6,
        "gc_runs_per_1k_c64": runs / requests * 1000,
        "gc_us_per_request": spent / requests * 1e6,  # 0 for a build that does not time its collections
        # below 1: the usage writer fell behind during the load (the CPU it owed is counted: see `quiet`)
        "usage_written_per_request_c64": written / requests,
        **extra,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    add_refs(parser)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run")
    parser.add_argument("--streams", type=int, default=1000, help="50-token streams per turn")
    parser.add_argument("--redis", help="Redis counters for both gateways (default: in-process)")
    parser.add_argument("--also", type=int, help="also req/s and p99 at this many connections, first in each turn")
    options = parser.parse_args()
    if GATEWAY_CORE:
        os.sched_setaffinity(0, {0} | set(range(2, os.cpu_count() or 2)))
    workdir = Path(tempfile.mkdtemp(prefix="tg-ab-"))
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    processes = [spawn([*TENANTGATE, "sim-engine", "--instant", "--port", str(up_port)])]
    samples: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    with checkouts(options.before, options.after, workdir) as trees:
        try:
            wait_http(upstream + "/health")
            gateways = {}
            for name, tree in trees.items():
                process, url = start_gateway(name, upstream, workdir, tree / "src", options.redis)
                processes.append(process)
                gateways[name] = (process, url, make_key(url))
            for round_ in range(options.rounds):
                order = ("before", "after") if round_ % 2 == 0 else ("after", "before")
                for name in order:
                    process, url, key = gateways[name]
                    turn = one_turn(url, key, process.pid, options.seconds, options.streams, options.also)
                    samples[name].append(turn)
                    print(f"round {round_ + 1} {name}: {turn}", flush=True)
        finally:
            for process in reversed(processes):
                stop(process)
    after = options.after or "this checkout"
    counters = f"Redis counters at {options.redis}" if options.redis else "in-process counters"
    print(f"\nmedian of {options.rounds} alternating turns; before = {options.before}, after = {after}; {counters}")
    medians(samples)
    print(f"({time.strftime('%Y-%m-%d %H:%M')}, {workdir})")


if __name__ == "__main__":
    main()
