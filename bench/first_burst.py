"""Many connections' first requests at once, before and after: each turn starts a fresh gateway of each
build (no total counted yet, as after a restart or as a day begins: each period total is first read
from the recorded usage), makes its key, and at once sends it `--connections` connections' requests
for `--seconds` with wrk; the builds alternate which goes first. `--runs 2` runs wrk again at once
with as many new connections, against the same, now busy, gateway (each run's figures apart). Prints
each turn and the medians of req/s, p50 and p99. The gateway runs on core 1 and wrk and the instant
simulated engine on core 0.
Usage: python bench/first_burst.py --before REF [--after REF] [--rounds 3] [--connections 128] [--seconds 5]
       [--runs 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from builds import GATEWAY_CORE, add_refs, checkouts, medians, serve_args
from loads import wrk
from procs import TENANTGATE, free_port, spawn, stop, wait_http
from run import make_key


def burst(
    name: str, upstream: str, workdir: Path, source: Path, connections: int, seconds: int, runs: int
) -> dict[str, float]:
    args, env, url = serve_args(name, upstream, workdir, source)
    gateway = spawn([*GATEWAY_CORE, *args], env)
    measured: dict[str, float] = {}
    try:
        wait_http(url + "/readyz")
        key = make_key(url)
        for run in range(1, runs + 1):
            result = wrk(url, key, connections, seconds)
            if result["errors"]:
                raise SystemExit(f"{name} answered {result['errors']:.0f} requests with errors")
            after = "" if runs == 1 else f"_run{run}"
            measured |= {f"rps{after}": result["rps"], f"p50_ms{after}": result["p50_ms"],
                         f"p99_ms{after}": result["p99_ms"]}  # fmt: skip
    finally:
        stop(gateway)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser()
    add_refs(parser)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=1, help="wrk runs in a row against each fresh gateway")
    options = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tg-first-burst-"))
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    engine = spawn(["taskset", "-c", "0", *TENANTGATE, "sim-engine", "--instant", "--port", str(up_port)])
    samples: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    if GATEWAY_CORE:
        os.sched_setaffinity(0, {0})  # wrk, started from here, too
    try:
        wait_http(upstream + "/health")
        with checkouts(options.before, options.after, workdir) as trees:
            for turn in range(options.rounds):
                for name in ("before", "after") if turn % 2 == 0 else ("after", "before"):
                    measured = burst(f"{name}-{turn}", upstream, workdir, trees[name] / "src", options.connections,
                                     options.seconds, options.runs)  # fmt: skip
                    samples[name].append(measured)
                    print(f"turn {turn + 1} {name}: {measured}", flush=True)
    finally:
        stop(engine)
    after = options.after or "this checkout"
    print(f"\nmedian of {options.rounds} turns, {options.connections} connections from a fresh start, "
          f"{options.seconds} s each; before = {options.before}, after = {after}")  # fmt: skip
    medians(samples)
    print(f"({time.strftime('%Y-%m-%d %H:%M')}, {workdir})")


if __name__ == "__main__":
    main()
