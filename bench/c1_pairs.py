"""Latency at one connection, before and after: both builds serve at once, and one client sends them
requests in pairs (before then after, after then before, in turn) on a kept-alive connection each,
so whatever the machine does meanwhile falls on both alike. Non-streamed chat requests to an instant
simulated engine, with bench/run.py's configuration; the gateways on core 1, the client and the
engine on core 0. On a small noisy machine a change of a tenth of a millisecond at c=1 shows here
where `bench/ab.py`'s alternating wrk runs cannot separate it from the drift between runs.
`--stream`: 16-token streams instead, timed to their last byte.
Usage: python bench/c1_pairs.py --before REF [--after REF] [--pairs 10000] [--stream]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from builds import GATEWAY_CORE, add_refs, checkouts, serve_args
from procs import TENANTGATE, free_port, spawn, stop, wait_http
from run import make_key

CHAT = {"model": "sim-small", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 16}
BODY = json.dumps(CHAT)
STREAM_BODY = json.dumps({**CHAT, "stream": True})
WARM_UP = 300


def timed(connection: http.client.HTTPConnection, headers: dict[str, str], body: str = BODY) -> float:
    """Seconds from sending one request to having its whole answer (a stream: its last byte)."""
    began = time.perf_counter()
    connection.request("POST", "/v1/chat/completions", body, headers)
    response = connection.getresponse()
    response.read()
    took = time.perf_counter() - began
    if response.status != 200:
        raise SystemExit(f"answered {response.status}; the latencies would be meaningless")
    return took


def summary(latencies: list[float]) -> str:
    cuts = statistics.quantiles(latencies, n=100)
    return (f"p50 {statistics.median(latencies) * 1e3:.3f} ms, p90 {cuts[89] * 1e3:.3f}, "
            f"p99 {cuts[98] * 1e3:.3f}, mean {statistics.fmean(latencies) * 1e3:.3f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    add_refs(parser)
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--stream", action="store_true", help="16-token streams, timed to their last byte")
    options = parser.parse_args()
    body = STREAM_BODY if options.stream else BODY
    workdir = Path(tempfile.mkdtemp(prefix="tg-c1-pairs-"))
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    processes = [spawn([*TENANTGATE, "sim-engine", "--instant", "--port", str(up_port)])]
    with checkouts(options.before, options.after, workdir) as trees:
        try:
            wait_http(upstream + "/health")
            clients = {}
            for name, tree in trees.items():
                args, env, url = serve_args(name, upstream, workdir, tree / "src")
                processes.append(spawn([*GATEWAY_CORE, *args], env))
                wait_http(url + "/readyz")
                headers = {"Authorization": f"Bearer {make_key(url)}", "Content-Type": "application/json"}
                host, port = url.removeprefix("http://").split(":")
                clients[name] = (http.client.HTTPConnection(host, int(port), timeout=30), headers)
            if GATEWAY_CORE:
                os.sched_setaffinity(0, {0})
            for connection, headers in clients.values():
                for _ in range(WARM_UP):
                    timed(connection, headers, body)
            latencies: dict[str, list[float]] = {name: [] for name in clients}
            for pair in range(options.pairs):
                for name in ("before", "after") if pair % 2 == 0 else ("after", "before"):
                    latencies[name].append(timed(*clients[name], body))
        finally:
            for process in reversed(processes):
                stop(process)
    after = options.after or "this checkout"
    what = "16-token streams" if options.stream else "whole answers"
    print(f"{options.pairs} pairs of {what} at one connection; before = {options.before}, after = {after}")
    for name, measured in latencies.items():
        print(f"{name}: {summary(measured)}")
    old, new = statistics.median(latencies["before"]), statistics.median(latencies["after"])
    print(f"p50 after/before {new / old:.3f} ({(new - old) * 1e6:+.0f} µs)")
    print(f"({time.strftime('%Y-%m-%d %H:%M')}, {workdir})")


if __name__ == "__main__":
    main()
