"""The same gateway (this checkout) under several Python interpreters, measured in turns as bench/ab.py
measures two builds: one instant simulated engine, bench/run.py's configuration, one gateway under load
at a time, alone on core 1 when there are two cores or more, the turns alternating.

Each interpreter is a venv with tenantgate installed from this checkout:

    python3.13 -m venv /tmp/venv313 && /tmp/venv313/bin/pip install -e .
    python bench/interpreters.py --python /tmp/venv313/bin/python [--python ...] [--rounds 5]

Prints the median of each metric and its ratio to this venv's interpreter (the first column).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from ab import one_turn
from builds import GATEWAY_CORE, medians, serve_args
from procs import TENANTGATE, free_port, spawn, stop, wait_http
from run import make_key

SOURCE = Path(__file__).resolve().parents[1] / "src"


def version(python: str) -> str:
    return subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", action="append", required=True, help="another venv's interpreter (repeatable)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run")
    parser.add_argument("--streams", type=int, default=1000, help="50-token streams per turn")
    options = parser.parse_args()
    if GATEWAY_CORE:
        os.sched_setaffinity(0, {0} | set(range(2, os.cpu_count() or 2)))
    pythons = {f"python {version(p)}": p for p in [sys.executable, *options.python]}
    workdir = Path(tempfile.mkdtemp(prefix="tg-interpreters-"))
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    processes = [spawn([*TENANTGATE, "sim-engine", "--instant", "--port", str(up_port)])]
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in pythons}
    try:
        wait_http(upstream + "/health")
        gateways = {}
        for index, (name, python) in enumerate(pythons.items()):
            args, env, url = serve_args(f"python{index}", upstream, workdir, SOURCE)
            process = spawn([*GATEWAY_CORE, python, *args[1:]], env)  # args[0] is this interpreter
            processes.append(process)
            wait_http(url + "/readyz")
            gateways[name] = (process, url, make_key(url))
        for round_ in range(options.rounds):
            order = list(pythons) if round_ % 2 == 0 else list(reversed(pythons))
            for name in order:
                process, url, key = gateways[name]
                samples[name].append(one_turn(url, key, process.pid, options.seconds, options.streams))
                print(f"round {round_ + 1} {name}: {samples[name][-1]}", flush=True)
    finally:
        for process in reversed(processes):
            stop(process)
    first = next(iter(samples))
    print(f"\nmedian of {options.rounds} alternating turns; ratios against {first}")
    medians(samples)


if __name__ == "__main__":
    main()
