"""The libraries of the request path, each against its alternative, measured (issue: performance).

The stack: the floor proxy (bench/floor_proxy.py) as the gateway runs it (uvicorn, uvloop, httptools,
aiohttp) and with one part swapped at a time: httpx, rnet or pyreqwest as the upstream client (the
last two are Rust's reqwest/hyper under Python, on a tokio runtime of their own; installed into
bench/.clients on first use; each also reading answers whole, as the gateway does with non-streamed
ones, with aiohttp beside them), asyncio's own event loop, h11 as the HTTP parser. All run at once, each
pinned to core 1 (a Rust client's threads too), against one instant simulated engine, and take turns
under load: req/s at c=1 and c=64, the proxy's CPU per request at c=64 (all its threads) and, for the
stacks that relay chunk by chunk, its CPU per chunk of 300 50-token streams at concurrency 16. Medians
of the turns, and each variant against the gateway's own stack.

JSON: the request path's two JSON jobs, parsing a chat request (a short one and one with a 32 KB
prompt) and encoding a usage event, with orjson, msgspec and the standard library; the best of 5
runs each, in this process. msgspec is installed into bench/.msgspec on first use.
Usage: python bench/libraries.py [--rounds 5] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).parent))

from loads import streams, wrk
from procs import PYTHON, TENANTGATE, cpu_seconds, free_port, spawn, stop, wait_http

HERE = Path(__file__).parent
MSGSPEC_DIR, MSGSPEC_PIN = HERE / ".msgspec", "msgspec==0.22.0"
STREAMS = 300  # per turn, for the CPU per streamed chunk
CLIENTS_DIR, CLIENT_PINS = HERE / ".clients", ("rnet==2.4.2", "pyreqwest==0.15.1")
CORE = ["taskset", "-c", "1"] if (os.cpu_count() or 1) >= 2 else []
STACKS = {
    "uvicorn+uvloop+httptools+aiohttp (the gateway's)": [],
    "httpx as the upstream client": ["--client", "httpx"],
    "rnet 2.4.2 as the upstream client": ["--client", "rnet"],
    "pyreqwest 0.15.1 as the upstream client": ["--client", "pyreqwest"],
    "aiohttp, each answer read whole": ["--whole"],
    "rnet, each answer read whole": ["--client", "rnet", "--whole"],
    "pyreqwest, each answer read whole": ["--client", "pyreqwest", "--whole"],
    "asyncio's event loop": ["--loop", "asyncio"],
    "h11 as the HTTP parser": ["--http", "h11"],
}
SHORT = orjson.dumps({"model": "sim-small", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 16})
LONG = orjson.dumps({"model": "sim-small", "max_tokens": 64, "messages": [
    {"role": "system", "content": "You are terse."},
    *({"role": "user" if n % 2 else "assistant", "content": "word " * 200} for n in range(32)),
]})  # fmt: skip
EVENT = {
    "request_id": "5f2c0a9e3b1d000000000001", "tenant_id": "t" * 24, "key_id": "k" * 12, "user_id": None,
    "model": "sim-small", "deployment": "sim-1", "pool": "main", "endpoint": "chat/completions", "status": 200,
    "error_type": None, "prompt_tokens": 120, "completion_tokens": 64, "cached_tokens": 0, "usage_estimated": False,
    "ttft_ms": 12.5, "latency_ms": 80.1, "queue_wait_ms": 0.0, "gpu_seconds": 0.0123, "cost_micros": 431,
    "price_version": "sim-small@2026-11-01T00:00:00Z", "ttft_slo_met": None, "cache_hit": False, "saved_micros": 0,
    "created_at": datetime(2026, 11, 27, 9, 0, tzinfo=UTC),
}  # fmt: skip


def stack_turn(url: str, pid: int, seconds: int, streamed: bool) -> dict[str, float]:
    c1 = wrk(url, "unused", 1, seconds)
    before = cpu_seconds(pid)
    c64 = wrk(url, "unused", 64, seconds)
    cpu_us = (cpu_seconds(pid) - before) / max(1.0, c64["rps"] * seconds) * 1e6
    if c1["errors"] or c64["errors"]:
        raise SystemExit(f"{url} answered with errors; its numbers would be meaningless")
    turn = {"rps_c1": c1["rps"], "rps_c64": c64["rps"], "cpu_us_per_request": cpu_us}
    if streamed:  # 50-token streams relayed chunk by chunk: the proxy's CPU per chunk
        before = cpu_seconds(pid)
        relayed = streams(url, "unused", concurrency=16, total=STREAMS, tokens=50)
        if relayed["failures"]:
            raise SystemExit(f"{url} failed streams; its numbers would be meaningless")
        turn["cpu_us_per_chunk"] = (cpu_seconds(pid) - before) / max(1, relayed["chunks"]) * 1e6
    return turn


def install(target: Path, pins: tuple[str, ...]) -> None:
    if not (target / ".installed").exists():
        print(f"installing {' '.join(pins)} into {target} (first run only)", flush=True)
        subprocess.run([PYTHON, "-m", "pip", "install", "--quiet", "--target", str(target), *pins], check=True)
        (target / ".installed").touch()


def compare_stacks(rounds: int, seconds: int) -> None:
    install(CLIENTS_DIR, CLIENT_PINS)
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    core0 = ["taskset", "-c", "0"] if CORE else []
    processes = [spawn([*core0, *TENANTGATE, "sim-engine", "--instant", "--port", str(up_port)])]
    try:
        wait_http(upstream + "/health")
        proxies = {}
        for name, options in STACKS.items():
            port = free_port()
            proxy = [*CORE, PYTHON, str(HERE / "floor_proxy.py"), str(port), upstream, *options]
            processes.append(spawn(proxy, {"PYTHONPATH": str(CLIENTS_DIR)}))
            proxies[name] = (f"http://127.0.0.1:{port}", processes[-1].pid)
        for url, _ in proxies.values():
            wait_http(url + "/v1/models")
            wrk(url, "unused", 64, 2)  # warm: connections to the upstream made
        turns: dict[str, list[dict[str, float]]] = {name: [] for name in STACKS}
        names = list(STACKS)
        for round_ in range(rounds):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:  # each starts a round in turn
                url, pid = proxies[name]
                turns[name].append(stack_turn(url, pid, seconds, "--whole" not in STACKS[name]))
                print(f"round {round_ + 1} {name}: {turns[name][-1]}", flush=True)
    finally:
        for process in processes:
            stop(process)
    base = {metric: statistics.median(t[metric] for t in turns[names[0]]) for metric in turns[names[0]][0]}
    print(f"\nmedians of {rounds} turns; ratios against the gateway's stack")
    print("| stack | req/s c=1 | req/s c=64 | CPU µs per request c=64 | CPU µs per streamed chunk |")
    print("|---|---|---|---|---|")
    for name in names:
        median = {metric: statistics.median(t[metric] for t in turns[name]) for metric in turns[name][0]}
        metrics = ("rps_c1", "rps_c64", "cpu_us_per_request", "cpu_us_per_chunk")
        cells = [f"{median[m]:,.1f} ({median[m] / base[m]:.2f}x)" if m in median else "—" for m in metrics]
        print(f"| {name} | " + " | ".join(cells) + " |")


def msgspec_json() -> object:
    install(MSGSPEC_DIR, (MSGSPEC_PIN,))
    sys.path.insert(0, str(MSGSPEC_DIR))
    import msgspec

    return msgspec.json


def best_us(work: Callable[[], object], repeat: int = 5, number: int = 20_000) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            work()
        runs.append((time.perf_counter() - started) / number * 1e6)
    return min(runs)


def compare_json() -> None:
    msgspec = msgspec_json()
    jobs: dict[str, dict[str, Callable[[], object]]] = {
        f"parse a short chat request ({len(SHORT)} B)": {
            "orjson": lambda: orjson.loads(SHORT), "msgspec": lambda: msgspec.decode(SHORT),  # type: ignore[attr-defined]
            "json": lambda: json.loads(SHORT),
        },
        f"parse a chat request with a long prompt ({len(LONG)} B)": {
            "orjson": lambda: orjson.loads(LONG), "msgspec": lambda: msgspec.decode(LONG),  # type: ignore[attr-defined]
            "json": lambda: json.loads(LONG),
        },
        "encode a usage event (the journal's line)": {
            "orjson": lambda: orjson.dumps(EVENT), "msgspec": lambda: msgspec.encode(EVENT),  # type: ignore[attr-defined]
            "json": lambda: json.dumps(EVENT, default=datetime.isoformat).encode(),
        },
    }  # fmt: skip
    print("\nJSON, µs per call, best of 5 runs (ratio against orjson)")
    print("| job | orjson | msgspec | json (standard library) |")
    print("|---|---|---|---|")
    for job, libraries in jobs.items():
        times = {
            library: best_us(work, number=2_000 if "long" in job else 20_000) for library, work in libraries.items()
        }
        cells = [f"{times[lib]:.2f} ({times[lib] / times['orjson']:.2f}x)" for lib in ("orjson", "msgspec", "json")]
        print(f"| {job} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run")
    options = parser.parse_args()
    if CORE:  # this script and the load stay off the proxies' core
        os.sched_setaffinity(0, {0} | set(range(2, os.cpu_count() or 2)))
    compare_json()
    compare_stacks(options.rounds, options.seconds)
    print(f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
